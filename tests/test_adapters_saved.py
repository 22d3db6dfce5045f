"""Adapters kept (issue 16): each ok trial stores what it trained beside its result, in its library's format;
`peft-bench eval` loads it on the base model and gives the trial's stored predictions exactly."""

import json
import os
import shutil
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from benchmark.cli import main
from benchmark.scheduler.command import RunOptions, run_trial_argv
from benchmark.store import Store
from benchmark.store import adapters as stored_adapters
from benchmark.store.fs import Location
from tests.kept_trials import copy_results, kept

CAUSAL = ("lora", "series", "prefix")


def folder_bytes(folder):
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def adapter_folder(results, method):
    spec = kept().specs[method]
    return results / spec.suite / "adapters" / spec.trial_id


@pytest.mark.parametrize("method", [*CAUSAL, "unipelt"])
def test_every_ok_trial_keeps_its_adapter_and_the_row_records_its_size(method):
    spec = kept().specs[method]
    folder = adapter_folder(kept().results, method)
    rows = Store(kept().results).read([spec.suite])
    sizes = set(rows[rows["trial_id"] == spec.trial_id]["adapter_bytes"])
    assert sizes == {folder_bytes(folder)} and folder_bytes(folder) > 0
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["method"] == method
    assert {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} == {*manifest["files"], "manifest.json"}
    assert not [p for p in folder.parent.iterdir() if ".tmp-" in p.name]  # published whole: no staging left


def test_peft_methods_are_in_peft_format_and_load_with_peft_model_from_pretrained():
    import torch
    from peft import PeftModel, get_peft_model_state_dict
    from safetensors.torch import load_file

    from benchmark import models
    from benchmark.registry.catalogue import model as model_entry

    for method in ("lora", "prefix"):
        folder = adapter_folder(kept().results, method)
        base, _ = models.load(model_entry("tiny-llama"))
        loaded = PeftModel.from_pretrained(base, str(folder))
        saved = load_file(str(folder / "adapter_model.safetensors"))
        state = get_peft_model_state_dict(loaded)  # peft's own names, as save_pretrained writes them
        assert saved and set(saved) == set(state)
        assert all(torch.equal(state[name], tensor) for name, tensor in saved.items())
        assert not (folder / "head.safetensors").exists()  # a causal LM has no task head of its own


def test_in_house_and_adapters_methods_are_in_their_formats():
    series = adapter_folder(kept().results, "series")
    assert json.loads((series / "method.json").read_text())["method"] == "series"
    from safetensors.torch import load_file

    names = set(load_file(str(series / "parameters.safetensors")))
    assert names and all("adapter_down" in n or "adapter_up" in n for n in names)
    unipelt = adapter_folder(kept().results, "unipelt")
    assert (unipelt / "unipelt" / "adapter_config.json").exists()  # adapters' save_adapter layout
    head = load_file(str(unipelt / "head.safetensors"))
    assert set(head) == {"classifier.dense.weight", "classifier.dense.bias", "classifier.out_proj.weight",
                         "classifier.out_proj.bias"}


def test_eval_from_the_kept_adapters_gives_the_stored_predictions_exactly(tmp_path, capsys):
    results = copy_results(tmp_path)
    before = Store(results).read()
    for suite in kept().suites.values():
        assert main(["eval", str(suite), "--results", str(results)]) == 0
    store = Store(results)
    for method, spec in kept().specs.items():
        for eval_data in spec.eval_data:
            stored = store.read_predictions(spec.suite, spec.trial_id, eval_data)
            again = store.read_eval_predictions(spec.suite, spec.trial_id, "eval", spec.eval.protocol, eval_data)
            assert stored.equals(again), (method, eval_data)
    evals = store.read_evals()
    assert set(evals["source"]) == {"eval"} and len(evals) == sum(len(s.eval_data) for s in kept().specs.values())
    trial_rows = before.set_index(["trial_id", "eval_data", "metric", "split"])["value"]
    for row in evals.itertuples():
        assert row.value == trial_rows[(row.trial_id, row.eval_data, row.metric, "test")]
    assert store.read().equals(before)  # the trials' own rows untouched
    capsys.readouterr()
    # Stored evals are skipped: a rerun evaluates nothing and writes nothing.
    mtimes = {p: p.stat().st_mtime_ns for p in results.rglob("*")}
    assert main(["eval", str(kept().suites["causal"]), "--results", str(results)]) == 0
    assert "0 evaluated, 6 already stored" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in results.rglob("*")} == mtimes


def test_the_kept_weights_matter_without_them_eval_predicts_otherwise(tmp_path, monkeypatch):
    """The guard of the equality above: the method injected fresh (the trial's seed, nothing loaded) predicts
    differently for every method, so an eval that ignored the kept folder would fail it."""
    from benchmark import methods
    from benchmark.methods import saving

    monkeypatch.setattr(saving, "load", lambda base, method, config, folder: methods.get(method).inject(base, config))
    results = copy_results(tmp_path)
    for suite in kept().suites.values():
        assert main(["eval", str(suite), "--results", str(results)]) == 0
    store = Store(results)
    for method, spec in kept().specs.items():
        differ = [not store.read_predictions(spec.suite, spec.trial_id, e).equals(
                  store.read_eval_predictions(spec.suite, spec.trial_id, "eval", spec.eval.protocol, e))
                  for e in spec.eval_data]
        assert any(differ), method


@pytest.mark.parametrize("damage", ["truncate", "delete", "no-manifest"])
def test_a_damaged_adapter_folder_is_one_line_naming_folder_and_file_and_nothing_is_stored(tmp_path, capsys, damage):
    results = copy_results(tmp_path)
    method = "lora" if damage != "delete" else "unipelt"
    folder = adapter_folder(results, method)
    victim = {"truncate": "adapter_model.safetensors", "delete": "unipelt/pytorch_adapter.bin",
              "no-manifest": "manifest.json"}[damage]
    if damage == "truncate":
        os.truncate(folder / victim, 100)
    else:
        (folder / victim).unlink()
    suite = kept().suites["encoder" if method == "unipelt" else "causal"]
    files = sorted(p for p in results.rglob("*"))
    assert main(["eval", str(suite), "--results", str(results)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(folder) in err and victim in err, err
    assert sorted(p for p in results.rglob("*")) == files  # nothing stored, nothing touched
    assert main(["doctor", "--results", str(results)]) == 1
    assert victim in capsys.readouterr().out


def test_no_save_adapters_keeps_nothing_and_the_trial_id_is_unchanged(tmp_path, capsys):
    spec = kept().specs["lora"]
    results = tmp_path / "results"
    argv = ["run-trial", str(kept().suites["causal"]), spec.trial_id, "--results", str(results), "--no-save-adapters"]
    assert main(argv) == 0, capsys.readouterr()
    assert Store(results).ok_trial_ids(spec.suite) == {spec.trial_id}
    assert not (results / spec.suite / "adapters").exists()
    assert Store(results).read()["adapter_bytes"].isna().all()
    # Every launcher's command line carries the option.
    assert run_trial_argv(RunOptions(suite="s", save_adapters=False), "t", ["pb"])[-1] == "--no-save-adapters"
    assert "--no-save-adapters" not in run_trial_argv(RunOptions(suite="s"), "t", ["pb"])
    # Eval of a trial that kept nothing says so and stores nothing.
    assert main(["eval", str(kept().suites["causal"]), "--filter", "method=lora", "--results", str(results)]) == 0
    out = capsys.readouterr().out
    assert f"{spec.trial_id}: no adapter kept" in out and not (results / spec.suite / "evals").exists()


def test_a_rerun_does_not_rewrite_a_kept_folder(tmp_path):
    from benchmark.paths import data_dir
    from benchmark.scheduler import core

    results = copy_results(tmp_path)
    folder = adapter_folder(results, "series")
    spec = kept().specs["series"]
    before = {p: (p.stat().st_mtime_ns, p.stat().st_ino) for p in folder.rglob("*")}
    skipped = core.run_and_store(spec, str(data_dir(None)), str(results))
    assert skipped.status == core.LEASED  # stored ok already: not run again
    # A writer that died after publishing the folder and before the trial file: the rerun trains and stores the
    # trial, and keeps the folder it finds.
    for trial_file in (results / spec.suite / "trials").glob(f"{spec.trial_id}*.parquet"):
        trial_file.unlink()
    result = core.run_and_store(spec, str(data_dir(None)), str(results))
    assert result.status == "ok" and not os.path.exists(result.adapter_dir)  # the staging folder is removed
    assert {p: (p.stat().st_mtime_ns, p.stat().st_ino) for p in folder.rglob("*")} == before
    assert not [p for p in folder.parent.iterdir() if ".tmp-" in p.name]


def test_an_object_store_publishes_every_file_then_the_manifest(tmp_path):
    """Without a folder rename (an object store), the manifest goes last: a folder without it is refused."""
    (tmp_path / "bucket").mkdir()
    fs = pafs.SubTreeFileSystem(str(tmp_path / "bucket"), pafs.LocalFileSystem())
    loc = Location(fs, "", "mock://bucket")
    staged = adapter_folder(kept().results, "unipelt")
    assert not loc.local and stored_adapters.publish(loc, staged, "s/adapters/t")
    assert stored_adapters.check(loc, "s/adapters/t")["method"] == "unipelt"
    assert not stored_adapters.publish(loc, staged, "s/adapters/t")  # already there: left as it is
    local = stored_adapters.fetch(loc, "s/adapters/t")
    assert folder_bytes(local) == folder_bytes(staged)
    shutil.rmtree(local)
    fs.delete_file("s/adapters/t/manifest.json")
    with pytest.raises(Exception, match="mock://bucket/s/adapters/t: manifest.json: missing"):
        stored_adapters.check(loc, "s/adapters/t")


def _model_with_head(family: str):
    """A tiny random model of the family (tests/test_methods_matrix.py's shapes); encoders with a fresh
    sequence-classification head, whose parameters are returned as the task head."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from benchmark.registry.catalogue import CAUSAL_FAMILIES
    from tests.test_methods_matrix import tiny

    base = tiny(family)
    if family in CAUSAL_FAMILIES:
        return base, []
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(base.config).float().eval()
    model.load_state_dict(base.state_dict(), strict=False)
    return model, list(model.classifier.parameters())


def _every_method():
    from benchmark import methods

    return [(name, methods.get(name).model_families[-1]) for name in methods.names()]


@pytest.mark.parametrize("method,family", _every_method())
def test_every_method_saves_and_loads_back_to_the_same_outputs(method, family):
    """Every registered method (one family each): what trained, saved, then loaded on a fresh base whose head was
    drawn otherwise, computes the same outputs exactly."""
    import torch

    from benchmark import methods
    from benchmark.methods import saving
    from tests.test_methods_matrix import ARGS, VOCAB, output, perturb_trainable

    config = methods.build_config(method, ARGS.get((method, family), {}))
    model, head = _model_with_head(family)
    model = methods.get(method).inject(model, config)
    for p in head:
        p.requires_grad_(True)
    perturb_trainable(model)
    ids = torch.randint(3, VOCAB, (2, 7), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = output(model.eval(), ids)
    folder, size = saving.save(model, method, config, head)
    fresh, fresh_head = _model_with_head(family)
    with torch.no_grad():
        for p in fresh_head:  # another head than the trained one: only the kept head can restore it
            p.add_(1.0)
    try:
        assert (folder is None) == (not methods.get(method).trains and not head)
        loaded = saving.load(fresh, method, config, folder)
        with torch.no_grad():
            assert torch.equal(output(loaded, ids), expected)
        if folder is not None:
            assert size == folder_bytes(Path(folder))
    finally:
        if folder is not None:
            shutil.rmtree(folder)
