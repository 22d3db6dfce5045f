"""The user's own catalogues: --catalogue FILE, $PEFT_BENCH_CATALOGUE and a suite's own sections.

Everything here runs from a temp folder outside the checkout (the working directory changed there): a
save_pretrained model directory and LLM-Adapters-format data declared by a catalogue file beside them,
with no edit under suites/.
"""

from __future__ import annotations

import json
import os
import re
import textwrap
from pathlib import Path

import pytest

from benchmark import cli, planner
from benchmark.errors import UserError
from benchmark.paths import SUITES_DIR
from benchmark.registry import catalogues, plan
from benchmark.registry.spec import TrialSpec
from benchmark.scheduler.command import RunOptions, job_path, run_trial_argv

CATALOGUE = """
models:
  my-llama: {source: ./models/my-llama, family: llama, description: a save_pretrained copy}
tables:
  my_math: {title: "My math"}
datasets:
  my-math-train: {format: llm-adapters, path: data/train.json, task_family: math, role: train}
  my-math-test: {format: llm-adapters, path: data/test.json, task_family: math, answer: number,
                 max_new_tokens: 8, table: my_math}
"""
SUITE = """
name: my-suite
version: "1"
defaults:
  model: my-llama
  method: lora
  train_data: my-math-train
  eval_data: [my-math-test]
  train: {epochs: 1, batch_size: 2, micro_batch_size: 2, max_steps: 2, warmup_steps: 0, cutoff_len: 64,
          learning_rate: 1.0e-3}
  eval: {num_beams: 1, batch_size: 4, max_eval_examples: 4}
"""


@pytest.fixture
def outside(tmp_path, monkeypatch):
    """A project folder outside the checkout, the working directory; no user catalogue in the environment."""
    monkeypatch.delenv(catalogues.ENV, raising=False)
    monkeypatch.delenv(catalogues.OLD_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def _embedded_rows(rel: str, n: int) -> list[dict]:
    from benchmark.data.embedded import ensure
    from benchmark.paths import embedded_data_dir

    return json.loads((ensure(embedded_data_dir()) / rel).read_text())[:n]


@pytest.fixture
def project(outside):
    """The user's model (a save_pretrained copy of the embedded tiny-llama), data and catalogue, beside each other."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from benchmark.models import zoo

    built = zoo.ensure("tiny-llama")
    AutoModelForCausalLM.from_pretrained(built).save_pretrained(outside / "models" / "my-llama")
    AutoTokenizer.from_pretrained(built).save_pretrained(outside / "models" / "my-llama")
    (outside / "data").mkdir()
    (outside / "data" / "train.json").write_text(json.dumps(_embedded_rows("ft-training_set/math_10k.json", 8)))
    (outside / "data" / "test.json").write_text(json.dumps(_embedded_rows("dataset/gsm8k/test.json", 4)))
    _write(outside / "suite.yaml", SUITE)
    return _write(outside / "my-catalogue.yaml", CATALOGUE)


def test_a_users_model_and_data_run_end_to_end_from_outside_the_checkout(project, outside, capsys):
    from benchmark.store import Store

    args = ["--catalogue", "my-catalogue.yaml"]
    assert cli.main(["plan", "suite.yaml", "--json", *args]) == 0
    [planned] = json.loads(capsys.readouterr().out)
    assert planned["model_source"] == str(outside / "models" / "my-llama")
    assert planned["catalogue"]["models.my-llama"] == {
        "file": str(project), "entry": {"source": "./models/my-llama", "family": "llama",
                                        "description": "a save_pretrained copy"}}
    assert set(planned["catalogue"]) == {"models.my-llama", "datasets.my-math-train", "datasets.my-math-test",
                                         "tables.my_math"}

    assert cli.main(["data", "check", "suite.yaml", *args]) == 0
    assert cli.main(["params", "--model", "my-llama", "--method", "lora", *args]) == 0
    assert "my-llama / lora: trainable" in capsys.readouterr().out
    assert cli.main(["run-trial", "suite.yaml", planned["trial_id"], "--results", "results", *args]) == 0
    frame = Store(outside / "results").read(["my-suite"])
    assert list(frame["status"]) == ["ok"] and list(frame["trial_id"]) == [planned["trial_id"]]
    stored = TrialSpec.from_dict(json.loads(frame["spec"].iloc[0]))
    assert stored.trial_id == planned["trial_id"] and stored.catalogue_files == [str(project)]
    assert cli.main(["status", "suite.yaml", "--results", "results", *args]) == 0
    assert "1 done, 0 failed, 0 remaining" in capsys.readouterr().out
    assert cli.main(["report", "suite.yaml", "--results", "results", "--out", "reports", *args]) == 0
    pages = "".join(p.read_text() for p in (outside / "reports" / "my-suite").glob("*.html"))
    assert "My math" in pages and "my-llama / lora" in pages
    assert not any("my-llama" in f.read_text() for f in SUITES_DIR.rglob("*.yaml"))  # nothing under suites/


def test_a_worker_given_only_the_spec_rebuilds_the_users_entries(project, outside):
    [trial] = planner.plan("suite.yaml", catalogue=catalogues.load(["my-catalogue.yaml"]))[1]
    spec = TrialSpec.from_dict(json.loads(json.dumps(trial.spec.to_dict())))  # as a Ray worker receives it
    os.chdir(outside.parent)  # another working directory, no --catalogue: the spec alone
    again = planner.resolve(spec)
    assert again.model.source == str(outside / "models" / "my-llama")
    assert again.eval_data[0].path == str(outside / "data" / "test.json") and again.eval_data[0].table == "my_math"
    assert spec.trial_id == trial.trial_id


def test_relative_paths_resolve_against_the_file_that_names_them(outside):
    _write(outside / "elsewhere" / "data" / "x.json", "[]")
    (outside / "elsewhere" / "saved-sst2").mkdir()  # a save_to_disk folder beside the file
    (outside / "elsewhere" / "local-model").mkdir()
    file = _write(outside / "elsewhere" / "cat.yaml", f"""
        models:
          dotted: {{source: ../elsewhere/local-model, family: llama}}
          beside: {{source: local-model, family: llama}}
          hub: {{source: org/some-model, family: llama}}
          absolute: {{source: {outside / 'elsewhere' / 'local-model'}, family: llama}}
        datasets:
          rel: {{format: llm-adapters, path: data/x.json, task_family: math, answer: number}}
          up: {{format: llm-adapters, path: ../elsewhere/data/x.json, task_family: math, answer: number}}
          abs: {{format: llm-adapters, path: {outside / 'elsewhere' / 'data' / 'x.json'}, task_family: math,
                answer: number}}
          hub: {{format: hf, path: "glue:sst2", task_family: classification, labels: [a, b]}}
          saved: {{format: hf, path: "saved-sst2:default", task_family: classification, labels: [a, b]}}
          emb: {{format: llm-adapters, path: dataset/gsm8k/test.json, task_family: math, answer: number,
                embedded: true}}
    """)
    cat = catalogues.load([str(file.relative_to(outside))])
    local = str(outside / "elsewhere" / "local-model")
    assert [cat.models[n].source for n in ("dotted", "beside", "hub", "absolute")] == [local, local, "org/some-model", local]
    data = str(outside / "elsewhere" / "data" / "x.json")
    assert [cat.datasets[n].path for n in ("rel", "up", "abs", "hub", "emb")] == [
        data, data, data, "glue:sst2", "dataset/gsm8k/test.json"]
    assert cat.datasets["saved"].path == str(outside / "elsewhere" / "saved-sst2") + ":default"
    assert cat.user_files == (str(file),) and cat.datasets["rel"].file == str(file)


def test_the_shipped_catalogue_keeps_its_data_root_rule(tmp_path):
    from benchmark.registry.catalogue import parse_datasets

    body = {"format": "llm-adapters", "path": "/abs/x.json", "task_family": "math", "answer": "number"}
    with pytest.raises(UserError, match=r"datasets\.x\.path.*relative to the data root"):
        parse_datasets({"datasets": {"x": body}}, tmp_path / "datasets.yaml")


def test_a_user_entry_may_not_shadow_a_shipped_one_unless_it_says_replaces(outside):
    file = _write(outside / "cat.yaml", "models:\n  tiny-llama: {source: org/x, family: llama}\n")
    with pytest.raises(UserError) as info:
        catalogues.load([str(file)])
    assert str(info.value) == (f"{file}: models.tiny-llama: already declared in {SUITES_DIR / 'models.yaml'}; "
                               "allowed: a new name, or replaces: true on the entry to replace it")
    file.write_text("models:\n  tiny-llama: {source: org/x, family: llama, replaces: true}\n")
    cat = catalogues.load([str(file)])
    assert cat.models["tiny-llama"].source == "org/x" and cat.models["tiny-llama"].file == str(file)
    file.write_text("datasets:\n  newname: {format: llm-adapters, path: x.json, task_family: math, replaces: true}\n")
    with pytest.raises(UserError, match=r"^.*cat.yaml: datasets.newname.replaces: true but no earlier catalogue file "
                                        "declares 'newname'"):
        catalogues.load([str(file)])
    # a later user file against an earlier one: both files named
    first = _write(outside / "first.yaml", "models:\n  mine: {source: org/a, family: llama}\n")
    second = _write(outside / "second.yaml", "models:\n  mine: {source: org/b, family: llama}\n")
    with pytest.raises(UserError, match=rf"^{second}: models.mine: already declared in {first};"):
        catalogues.load([str(first), str(second)])
    # the same file twice (listed in the environment and given with --catalogue) is read once
    assert catalogues.load([str(first), str(first)]).user_files == (str(first),)


def test_a_suite_may_carry_its_own_entries_seen_by_that_suite_only(outside):
    _write(outside / "data" / "test.json", json.dumps(_embedded_rows("dataset/gsm8k/test.json", 4)))
    _write(outside / "own.yaml", SUITE.replace("my-llama", "tiny-llama").replace("my-math-train", "emb-math_10k") + """
datasets:
  my-math-test: {format: llm-adapters, path: data/test.json, task_family: math, answer: number}
""")
    [trial] = planner.plan("own.yaml")[1]
    assert trial.eval_data[0].path == str(outside / "data" / "test.json")
    assert list(trial.spec.catalogue) == ["datasets.my-math-test"]
    assert trial.spec.catalogue_files == [str(outside / "own.yaml")]
    _write(outside / "other.yaml", SUITE.replace("my-llama", "tiny-llama").replace("my-math-train", "emb-math_10k"))
    with pytest.raises(UserError, match=r"other.yaml: cell \(\): eval_data: unknown dataset 'my-math-test'|"
                                        r"other.yaml: defaults: eval_data: unknown dataset 'my-math-test'"):
        planner.plan("other.yaml")
    # a suite's entry shadows like any other
    _write(outside / "shadow.yaml", SUITE + "datasets:\n  gsm8k: {format: llm-adapters, path: x.json, task_family: math}\n")
    with pytest.raises(UserError, match=r"shadow.yaml: datasets.gsm8k: already declared in .*suites/datasets.yaml"):
        planner.plan("shadow.yaml")


def test_the_environment_lists_catalogue_files_and_command_lines_carry_them(outside, monkeypatch, capsys):
    a = _write(outside / "a.yaml", "models:\n  model-a: {source: org/a, family: llama}\n")
    b = _write(outside / "b.yaml", "models:\n  model-b: {source: org/b, family: bloom, embedded_twin: model-a}\n")
    monkeypatch.setenv(catalogues.ENV, os.pathsep.join([str(a), "", str(b)]))
    cat = catalogues.current()
    assert {"model-a", "model-b", "tiny-llama"} <= set(cat.models) and cat.user_files == (str(a), str(b))
    monkeypatch.setenv(catalogues.OLD_ENV, str(a))  # the variable it replaces is refused, not ignored
    with pytest.raises(UserError, match=r"^PEFT_BENCH_DATASETS=.*: no longer read; allowed: PEFT_BENCH_CATALOGUE"):
        catalogues.load()
    monkeypatch.delenv(catalogues.OLD_ENV)
    c = _write(outside / "c.yaml", "models:\n  model-c: {source: org/c, family: gptj}\n")
    assert catalogues.load(["c.yaml"]).user_files == (str(a), str(b), str(c))
    argv = run_trial_argv(RunOptions(suite="s.yaml", catalogues=[str(a), str(c)]), "abc", ["peft-bench"])
    assert argv[-4:] == ["--catalogue", str(a), "--catalogue", str(c)]
    # a Ray Job runs in a copy of the working directory: a file inside it is named relative to it
    from benchmark.scheduler import jobs

    shipped = [job_path(str(a), outside), job_path("/shared/cat.yaml", outside)]
    assert shipped == ["a.yaml", "/shared/cat.yaml"]
    assert jobs.entrypoint(RunOptions(suite="s.yaml", catalogues=shipped)).endswith(
        "--catalogue a.yaml --catalogue /shared/cat.yaml")
    # a Slurm array task plans with the same catalogue files as the command that wrote the script
    _write(outside / "data" / "test.json", "[]")
    _write(outside / "s.yaml", SUITE.replace("my-llama", "tiny-llama").replace("my-math-train", "emb-math_10k")
           .replace("[my-math-test]", "[emb-gsm8k]"))
    assert cli.main(["slurm", "s.yaml", "--array", "--catalogue", "c.yaml", "--results", "results"]) == 0
    script = capsys.readouterr().out
    assert f"--catalogue {a} --catalogue {b} --catalogue {c}" in script


@pytest.mark.parametrize("text, message", [
    ("", r"empty file"),
    ("# nothing\n", r"empty file"),
    ("models: [a, b]\n", r": models: got \['a', 'b'\]; allowed: a mapping"),
    ("modles: {}\n", r": modles: unknown key \(did you mean 'models'\?\); allowed: datasets, models, tables"),
    ("models:\n  m: {source: org/m, family: llama, sorce: x}\n", r": models.m.sorce: unknown key"),
    ("datasets:\n  d: {format: llm-adapters, path: x.json, task_family: maths}\n", r": datasets.d.task_family: got 'maths'"),
    ("models:\n  m: {source: org/m, family: llama, replaces: yes-please}\n", r": models.m.replaces: got 'yes-please'"),
    ("description: only\n", r": description: unknown key"),
    ("tables: {}\n", r": top level: no entries"),
])
def test_a_malformed_catalogue_file_is_one_line_naming_the_file_and_field(outside, capsys, text, message):
    file = _write(outside / "bad.yaml", text)
    assert cli.main(["validate", "--catalogue", "bad.yaml"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith(f"peft-bench: error: {file}"), err
    assert re.search(message, err), err


def test_a_user_entry_is_part_of_the_trial_id_and_shipped_ids_do_not_change(project, outside):
    [before] = plan("suite.yaml", catalogue=catalogues.load(["my-catalogue.yaml"]))[1]
    # (lengths change too: the catalogue is cached per file, size and modification time)
    project.write_text(project.read_text().replace("max_new_tokens: 8", "max_new_tokens: 12"))
    [after] = plan("suite.yaml", catalogue=catalogues.load(["my-catalogue.yaml"]))[1]
    assert after.trial_id != before.trial_id
    assert after.identity()["catalogue"]["datasets.my-math-test"]["max_new_tokens"] == 12
    project.write_text(project.read_text().replace("My math", "My own sums"))  # a table title is display only
    assert plan("suite.yaml", catalogue=catalogues.load(["my-catalogue.yaml"]))[1][0].trial_id == after.trial_id
    shipped = [s.trial_id for s in plan("smoke")[1]]
    assert [s.trial_id for s in plan("smoke", catalogue=catalogues.load(["my-catalogue.yaml"]))[1]] == shipped
    assert all(s.catalogue == {} and "catalogue" not in s.identity() for s in plan("smoke")[1])
