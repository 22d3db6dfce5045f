"""`peft-bench rescore` (issue 16): the stored outputs re-extracted and re-scored under another protocol, without
a model; the rows sit beside the trial's, marked source=rescore."""

import pytest

from benchmark import metrics
from benchmark.cli import main
from benchmark.evaluation.extract import extract_answer, is_correct
from benchmark.registry.catalogue import dataset
from benchmark.store import Store
from tests.kept_trials import copy_results, kept

CAUSAL = ("lora", "series", "prefix")


@pytest.fixture
def no_model(monkeypatch):
    """Loading any model fails: rescoring must never need one (the session's trials are run first)."""
    from benchmark import models

    kept()

    def refuse(*args, **kwargs):
        raise AssertionError("rescore loaded a model")

    monkeypatch.setattr(models, "load", refuse)
    monkeypatch.setattr(models, "load_cached", refuse)


def test_rescore_strict_changes_only_the_extraction(tmp_path, capsys, no_model):
    results = copy_results(tmp_path)
    before = Store(results).read()
    assert main(["rescore", str(kept().suites["causal"]), "--protocol", "strict", "--results", str(results)]) == 0
    assert "6 rescored" in capsys.readouterr().out
    store = Store(results)
    rows = store.read_evals()
    assert set(rows["source"]) == {"rescore"} and set(rows["protocol"]) == {"strict"} and len(rows) == 6
    for method in CAUSAL:
        spec = kept().specs[method]
        for eval_data in spec.eval_data:
            entry = dataset(eval_data)
            stored = store.read_predictions(spec.suite, spec.trial_id, eval_data)
            new = store.read_eval_predictions(spec.suite, spec.trial_id, "rescore", "strict", eval_data)
            for column in ("id", "prompt", "output", "gold"):
                assert new[column].equals(stored[column]), (method, eval_data, column)
            expected = [extract_answer(entry, output, "strict") for output in stored["output"]]
            assert list(new["extracted"]) == expected
            correct = [is_correct(entry, x, gold, "strict") for x, gold in zip(expected, stored["gold"])]
            assert list(new["correct"]) == correct
            (row,) = rows[(rows["trial_id"] == spec.trial_id) & (rows["eval_data"] == eval_data)].itertuples()
            assert row.value == metrics.percent_true(correct) and row.n_examples == len(stored)
            assert row.method == method and row.trial_id == spec.trial_id  # the trial's own metadata
    assert store.read().equals(before)  # the trials' rows untouched
    # Already rescored: skipped.
    assert main(["rescore", str(kept().suites["causal"]), "--protocol", "strict", "--results", str(results)]) == 0
    assert "0 rescored, 6 already stored" in capsys.readouterr().out


def test_rescoring_equals_evaluating_the_kept_adapter_under_that_protocol(tmp_path):
    """No model (rescore) and the model again (eval --protocol strict) agree on every prediction."""
    results = copy_results(tmp_path)
    suite = str(kept().suites["causal"])
    assert main(["rescore", suite, "--protocol", "strict", "--results", str(results), "--filter", "method=lora"]) == 0
    assert main(["eval", suite, "--protocol", "strict", "--results", str(results), "--filter", "method=lora"]) == 0
    store = Store(results)
    spec = kept().specs["lora"]
    for eval_data in spec.eval_data:
        rescored = store.read_eval_predictions(spec.suite, spec.trial_id, "rescore", "strict", eval_data)
        evaluated = store.read_eval_predictions(spec.suite, spec.trial_id, "eval", "strict", eval_data)
        assert rescored.equals(evaluated)


def test_an_encoder_task_has_nothing_to_rescore_and_says_so(tmp_path, capsys, no_model):
    results = copy_results(tmp_path)
    assert main(["rescore", str(kept().suites["encoder"]), "--protocol", "strict", "--results", str(results)]) == 0
    out = capsys.readouterr().out
    assert "emb-rte: a classification eval set has no answer extraction to redo; skipped" in out
    assert Store(results).read_evals().empty


def test_an_unknown_protocol_is_one_line(tmp_path, capsys):
    for command in ("rescore", "eval"):
        assert main([command, str(kept().suites["causal"]), "--protocol", "lenient", "--results", str(tmp_path)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "--protocol" in err and "llm-adapters, strict" in err


def test_the_report_builds_beside_eval_and_rescore_rows(tmp_path):
    from benchmark.report import build

    results = copy_results(tmp_path)
    suite = str(kept().suites["causal"])
    assert main(["rescore", suite, "--protocol", "strict", "--results", str(results)]) == 0
    index = build([kept().specs["lora"].suite], str(results), tmp_path / "report")
    assert index.exists()
