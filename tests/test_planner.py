"""The planner: every check is a one-line UserError at plan time, before any model or dataset loads, and
the trial it resolves is what the runner uses as given (no catalogue lookup, no second Config)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap

import pytest

from benchmark import methods, metrics, planner
from benchmark.errors import UserError
from benchmark.registry import catalogue
from benchmark.registry.spec import EvalConfig, TrainConfig

BASE = """\
name: planned
version: "1"
description: planner checks
defaults:
  model: tiny-llama
  method: lora
  train_data: emb-math_10k
  eval_data: [emb-gsm8k]
"""


@pytest.fixture
def empty_roots(tmp_path, monkeypatch):
    """A cache and a data dir with nothing in them: planning must not need (or fill) either."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("PEFT_BENCH_CACHE", str(cache))
    monkeypatch.setenv("PEFT_BENCH_DATA", str(tmp_path / "no-data"))
    yield cache
    loaded = sorted(p.name for p in cache.iterdir()) if cache.exists() else []
    assert loaded == [], f"planning loaded or generated {loaded}"  # no zoo model, no embedded data
    assert not (tmp_path / "no-data").exists()


def _suite(tmp_path, extra: str = ""):
    file = tmp_path / "planned.yaml"
    file.write_text(BASE + textwrap.dedent(extra))
    return file


def _refused(file) -> str:
    with pytest.raises(UserError) as info:
        planner.plan(str(file))
    message = str(info.value)
    assert "\n" not in message
    return message


def test_a_method_the_model_family_does_not_support_is_refused(tmp_path, empty_roots):
    file = _suite(tmp_path, "grid:\n  method: [bitfit]\n")
    assert _refused(file) == (f"{file}: cell (method=bitfit): method: method bitfit does not support model family "
                              "'llama'; it supports: bert, roberta")


def test_a_model_that_cannot_carry_the_task_head_is_refused(tmp_path, empty_roots):
    file = _suite(tmp_path, "grid:\n  model: [tiny-bert]\n")
    assert _refused(file) == (f"{file}: cell (model=tiny-bert): model: model tiny-bert: family bert cannot take a causal-lm "
                              "head here; allowed: masked-lm, sequence-classification, question-answering (generation "
                              "tasks run on causal LMs, classification and QA on encoders)")


def test_an_eval_set_of_another_task_kind_is_refused(tmp_path, empty_roots):
    file = _suite(tmp_path, "grid:\n  eval_data: [[emb-gsm8k, emb-sst2]]\n")
    assert _refused(file) == (f"{file}: cell (eval_data=emb-gsm8k+emb-sst2): eval_data: emb-sst2 is a classification "
                              "dataset; allowed: generation datasets like train_data emb-math_10k")


def test_a_dev_set_of_another_task_kind_is_refused(tmp_path, empty_roots):
    file = _suite(tmp_path, """\
        grid:
          model: [tiny-roberta]
        overrides:
          - when: {model: tiny-roberta}
            set: {method: full, train_data: emb-squad-train, eval_data: [emb-squad], dev_data: emb-chemprot-dev}
        """)
    assert _refused(file) == (f"{file}: cell (model=tiny-roberta): dev_data: emb-chemprot-dev is a classification "
                              "dataset; allowed: extractive_qa datasets like train_data emb-squad-train")


def test_an_unknown_metric_name_is_refused(tmp_path, empty_roots, monkeypatch):
    # The catalogue refuses unknown metric names when it loads; an entry that bypassed it still stops here.
    typo = dataclasses.replace(catalogue.dataset("emb-gsm8k"), name="emb-gsm8k-typo", metrics=("acuracy",))
    monkeypatch.setitem(catalogue.datasets(), typo.name, typo)
    file = _suite(tmp_path, "grid:\n  eval_data: [[emb-gsm8k-typo]]\n")
    assert _refused(file) == (f"{file}: cell (eval_data=emb-gsm8k-typo): eval_data: emb-gsm8k-typo: metric 'acuracy' is "
                              f"not known (did you mean 'accuracy'?); allowed: {', '.join(metrics.names())}")


def test_an_unknown_method_argument_is_refused(tmp_path, empty_roots):
    file = _suite(tmp_path, "grid:\n  method_args.rank: [8]\n")
    assert _refused(file) == (f"{file}: cell (method_args.rank=8): method_args: method lora: unknown argument 'rank'; "
                              f"allowed: {', '.join(f.name for f in dataclasses.fields(methods.get('lora').config_cls))}")


def test_an_adapt_corpus_that_is_not_a_corpus_is_refused(tmp_path, empty_roots):
    file = _suite(tmp_path, "grid:\n  adapt: [[{kind: dapt, corpus: emb-gsm8k}]]\n")
    message = _refused(file)
    assert message.startswith(f"{file}: cell (") and message.endswith(
        "adapt[0].corpus: 'emb-gsm8k' is a math dataset; allowed: a dataset of task family corpus (unlabelled text)")


def test_a_trial_without_eval_sets_is_refused(empty_roots):
    spec = dataclasses.replace(planner.plan("smoke")[1][0].spec, eval_data=())
    with pytest.raises(UserError) as info:
        planner.resolve(spec)
    assert str(info.value) == (f"trial {spec.trial_id} of suite smoke: eval_data: empty; "
                               "allowed: one or more evaluation datasets")


def test_a_stored_spec_the_catalogue_no_longer_matches_is_refused(empty_roots):
    spec = dataclasses.replace(planner.plan("smoke")[1][0].spec, model_source="embedded:tiny-bloom")
    with pytest.raises(UserError) as info:
        planner.resolve(spec)
    assert str(info.value) == (f"trial {spec.trial_id} of suite smoke: model_source: got 'embedded:tiny-bloom' but "
                               "suites/models.yaml says 'embedded:tiny-llama' for tiny-llama; allowed: the catalogue's "
                               "value (plan the suite again)")


def test_cli_validate_refuses_with_one_line_before_loading_anything(tmp_path):
    file = _suite(tmp_path, "grid:\n  method: [bitfit]\n")
    env = {**os.environ, "PEFT_BENCH_CACHE": str(tmp_path / "cache"), "PEFT_BENCH_DATA": str(tmp_path / "no-data")}
    proc = subprocess.run([sys.executable, "-m", "benchmark", "validate", str(file)], capture_output=True, text=True,
                          env=env)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().count("\n") == 0 and "method bitfit does not support model family 'llama'" in proc.stderr
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_the_resolved_trial_holds_the_entries_and_the_built_config(empty_roots):
    trial = next(t for t in planner.plan("smoke")[1] if t.spec.method == "lora")
    spec = trial.spec
    assert trial.trial_id == spec.trial_id
    assert trial.model is catalogue.model(spec.model) and trial.train_data is catalogue.dataset(spec.train_data)
    assert trial.eval_data == tuple(catalogue.dataset(name) for name in spec.eval_data)
    assert trial.method_config == methods.build_config("lora", spec.method_args)
    assert trial.task.kind == "generation"
    # no dev set: the dev split is held out of the training set and named after it, scored as the first eval set
    assert trial.dev_data is None and trial.dev_name == spec.train_data
    assert trial.scoring_entry is trial.eval_data[0]


def test_adapt_stages_are_resolved_with_their_corpora(empty_roots):
    trials = planner.plan("pt_unipelt/domain", ["stages=dapt_tapt", "task=chemprot"], embedded=True)[1]
    assert trials
    for trial in trials:
        dapt, tapt = trial.adapt_stages
        assert dapt.settings is trial.spec.adapt[0] and dapt.corpus is catalogue.dataset("emb-corpus-biomed")
        assert tapt.settings.kind == "tapt" and tapt.corpus is None
        assert trial.dev_data is catalogue.dataset("emb-chemprot-dev") and trial.dev_name == "emb-chemprot-dev"


def test_the_runner_uses_the_resolved_entries_as_given():
    """A trial whose eval entry is not in the catalogue at all still runs: nothing is looked up again."""
    from benchmark.runner import run_resolved

    trial = next(t for t in planner.plan("smoke")[1] if t.spec.method == "lora")
    spec = dataclasses.replace(trial.spec, train=TrainConfig(epochs=1, batch_size=2, micro_batch_size=2, max_steps=1,
                                                             max_train_examples=4, warmup_steps=0, cutoff_len=64),
                               eval=EvalConfig(num_beams=1, max_new_tokens=4, max_eval_examples=2, batch_size=2))
    renamed = dataclasses.replace(trial.eval_data[0], name="not-in-the-catalogue")
    result = run_resolved(dataclasses.replace(trial, spec=spec, eval_data=(renamed,)), "/nonexistent")
    assert result.status == "ok", result.error
    assert [m.eval_data for m in result.metrics] == ["not-in-the-catalogue"]
    assert result.spec.trial_id == spec.trial_id


def test_datasets_needed_lists_dev_sets_and_adapt_corpora_once(empty_roots):
    """`data check` and `run`'s data check read this list: the dev split and a DAPT corpus are needed too."""
    _, trials = planner.plan("pt_unipelt/domain", filters=["method=full"])
    names = [entry.name for entry in planner.datasets_needed(trials)]
    assert names == sorted(set(names))
    assert any(name.endswith("-dev") for name in names)
    assert any(catalogue.dataset(name).task_family == "corpus" for name in names)
    assert {t.train_data.name for t in trials} <= set(names) and {e.name for t in trials for e in t.eval_data} <= set(names)
