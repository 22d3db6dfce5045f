"""`peft-bench rescore` (issue 16): the stored outputs re-extracted and re-scored under another protocol, without
a model; the rows sit beside the trial's, marked source=rescore."""

import dataclasses

import pytest

from benchmark import metrics
from benchmark.cli import main
from benchmark.evaluation.extract import extract_answer, is_correct
from benchmark.registry.catalogue import dataset
from benchmark.store import Store
from tests.kept_trials import copy_results, kept

CAUSAL = ("lora", "series", "prefix")
# What `rescore --protocol strict` gives an llm-adapters trial: strict's extraction, the trial's own decoding (the
# record's label says so: registry/quirks.replay)
STRICT_EXTRACTION = "llm-adapters.aqua_first_letter-off.first_match_choice-off.last_number-off"
EXTRACTION_OFF = ["--quirk", "aqua_first_letter=off", "--quirk", "first_match_choice=off", "--quirk", "last_number=off"]


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
    assert set(rows["source"]) == {"rescore"} and set(rows["protocol"]) == {STRICT_EXTRACTION} and len(rows) == 6
    for method in CAUSAL:
        spec = kept().specs[method]
        for eval_data in spec.eval_data:
            entry = dataset(eval_data)
            stored = store.read_predictions(spec.suite, spec.trial_id, eval_data)
            new = store.read_eval_predictions(spec.suite, spec.trial_id, "rescore", STRICT_EXTRACTION, eval_data)
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


def test_rescoring_equals_evaluating_the_kept_adapter_under_those_extraction_quirks(tmp_path):
    """No model (rescore) and the model again (eval, the same extraction quirks switched) agree on every prediction."""
    results = copy_results(tmp_path)
    suite = str(kept().suites["causal"])
    assert main(["rescore", suite, *EXTRACTION_OFF, "--results", str(results), "--filter", "method=lora"]) == 0
    assert main(["eval", suite, *EXTRACTION_OFF, "--results", str(results), "--filter", "method=lora"]) == 0
    store = Store(results)
    spec = kept().specs["lora"]
    for eval_data in spec.eval_data:
        rescored = store.read_eval_predictions(spec.suite, spec.trial_id, "rescore", STRICT_EXTRACTION, eval_data)
        evaluated = store.read_eval_predictions(spec.suite, spec.trial_id, "eval", STRICT_EXTRACTION, eval_data)
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
        assert len(err.splitlines()) == 1 and "--protocol" in err and "llm-adapters, pt-unipelt, strict" in err


def test_the_report_builds_beside_eval_and_rescore_rows(tmp_path):
    from benchmark.report import build

    results = copy_results(tmp_path)
    suite = str(kept().suites["causal"])
    assert main(["rescore", suite, "--protocol", "strict", "--results", str(results)]) == 0
    index = build([kept().specs["lora"].suite], str(results), tmp_path / "report")
    assert index.exists()


def test_the_ledger_rescores_each_extraction_quirk_flipped_alone(tmp_path, capsys, no_model):
    """rescore --ledger: one record per extraction quirk per eval set, each labelled with that quirk alone flipped."""
    from benchmark.registry.quirks import label, of_stage

    results = copy_results(tmp_path)
    suite = str(kept().suites["causal"])
    assert main(["rescore", suite, "--ledger", "--results", str(results), "--filter", "method=lora"]) == 0
    store = Store(results)
    rows = store.read_evals()
    spec = kept().specs["lora"]
    flipped = {q.name: label("llm-adapters", {q.name: False}) for q in of_stage("extraction")}
    assert set(rows["protocol"]) == set(flipped.values())
    assert len(rows) == len(flipped) * len(spec.eval_data)
    for eval_data in spec.eval_data:
        entry = dataset(eval_data)
        stored = store.read_predictions(spec.suite, spec.trial_id, eval_data)
        for name, record in flipped.items():
            new = store.read_eval_predictions(spec.suite, spec.trial_id, "rescore", record, eval_data)
            assert list(new["extracted"]) == [extract_answer(entry, out, "llm-adapters", {name: False})
                                              for out in stored["output"]]
    # A quirk variant is not rescored by the ledger (it is compared as a trial) ...
    from benchmark.registry.spec import EvalConfig
    from benchmark.rescore import targets

    variant = dataclasses.replace(spec, eval=EvalConfig(quirks={"dropout_at_eval": True}))
    assert targets(variant, None, {}, ledger=True) == []
    # ... and outside the ledger only extraction quirks move: the variant's decoding stays in the label.
    assert targets(variant, "strict", {}, ledger=False) == [{"aqua_first_letter": False, "dropout_at_eval": True,
                                                             "first_match_choice": False, "last_number": False}]
    # An empty request is one line.
    assert main(["rescore", suite, "--results", str(results)]) == 2
    assert "nothing to change" in capsys.readouterr().err
    assert main(["rescore", suite, "--quirk", "dropout_at_eval", "--results", str(results)]) == 2
    assert "NAME=on or NAME=off" in capsys.readouterr().err
