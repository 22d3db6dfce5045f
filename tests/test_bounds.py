"""Bounded, named inputs: every numeric setting has an upper bound the error states, an empty or comment-only file
says "empty", and the inputs the catalogue-file and saved-adapter work added fail in one line naming the file.

Property-based (hypothesis), like tests/test_reliability_suites.py and tests/test_reliability_data.py; the example
counts are recorded in README "Reliability".
"""

from __future__ import annotations

import json
import tempfile
import textwrap
import typing
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from benchmark import planner
from benchmark.errors import UserError
from benchmark.registry import bounds, catalogues
from benchmark.registry.formats import dapt_jsonl, glue_jsonl, llm_adapters, squad_v1, text
from benchmark.registry.spec import EvalConfig, Resources, TrainConfig
from benchmark.registry.stages import AdaptStage

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# A valid suite the mutations start from: one trial, nothing loaded (planning only).
BASE = {"name": "bounded", "version": "1",
        "defaults": {"model": "tiny-llama", "method": "lora", "train_data": "emb-math_10k", "eval_data": ["emb-gsm8k"],
                     "train": {"epochs": 1, "batch_size": 8, "micro_batch_size": 8},
                     "eval": {"num_beams": 1, "batch_size": 8}}}

# Every numeric setting a suite (or catalogue, or stored spec) holds -> its upper bound. A numeric field added to
# one of these dataclasses without a bound here fails test_every_numeric_setting_is_listed_with_its_bound.
SECTIONS = {"train": TrainConfig, "eval": EvalConfig, "resources": Resources, "adapt": AdaptStage}
UPPER = {
    "train.epochs": bounds.EPOCHS, "train.batch_size": bounds.BATCH, "train.micro_batch_size": 8,  # its batch_size
    "train.learning_rate": 10, "train.warmup_steps": bounds.STEPS, "train.weight_decay": bounds.WEIGHT_DECAY,
    "train.max_grad_norm": bounds.GRAD_NORM, "train.cutoff_len": bounds.TOKENS, "train.val_set_size": bounds.EXAMPLES,
    "train.max_train_examples": bounds.EXAMPLES, "train.max_steps": bounds.STEPS, "train.seed": bounds.SEED,
    "train.early_stopping_patience": bounds.EPOCHS, "train.doc_stride": bounds.TOKENS, "train.max_seconds": bounds.SECONDS,
    "eval.num_beams": bounds.BEAMS, "eval.max_new_tokens": bounds.TOKENS, "eval.batch_size": bounds.BATCH,
    "eval.max_eval_examples": bounds.EXAMPLES, "eval.max_answer_length": bounds.TOKENS,
    "resources.cpus": bounds.CPUS, "resources.gpus": bounds.GPUS, "resources.memory_gb": bounds.MEMORY_GB,
    "adapt.epochs": bounds.EPOCHS, "adapt.max_steps": bounds.STEPS, "adapt.batch_size": bounds.BATCH,
    "adapt.learning_rate": 1, "adapt.warmup_ratio": 1, "adapt.mlm_probability": 1, "adapt.max_length": bounds.TOKENS,
    "adapt.max_documents": bounds.EXAMPLES, "adapt.seed": bounds.SEED,
}


def _numeric(hint) -> str | None:
    """'int' or 'float' for a numeric field's type hint (optional or not), else None."""
    args = set(typing.get_args(hint) or (hint,)) - {type(None)}
    return "int" if args == {int} else "float" if args == {float} else None


def numeric_fields() -> dict[str, str]:
    return {f"{section}.{name}": kind for section, cls in SECTIONS.items()
            for name, hint in typing.get_type_hints(cls).items() if (kind := _numeric(hint))}


def plan_rejects(suite: dict) -> str:
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / "bounded.yaml"
        file.write_text(yaml.safe_dump(suite), encoding="utf-8")
        with pytest.raises(UserError) as caught:
            planner.plan(str(file))
        message = str(caught.value)
        assert "\n" not in message and str(file) in message, message
        return message


def with_setting(path: str, value) -> dict:
    suite = json.loads(json.dumps(BASE))
    section, name = path.split(".")
    if section == "adapt":
        suite["defaults"]["adapt"] = [{"kind": "tapt", name: value}]
    else:
        suite["defaults"].setdefault(section, {})[name] = value
    return suite


def test_every_numeric_setting_is_listed_with_its_bound():
    assert set(numeric_fields()) == set(UPPER)


def test_the_base_suite_and_settings_at_their_bounds_plan():
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / "bounded.yaml"
        suite = with_setting("eval.num_beams", bounds.BEAMS)
        suite["defaults"]["train"].update(epochs=bounds.EPOCHS, seed=bounds.SEED, cutoff_len=bounds.TOKENS)
        file.write_text(yaml.safe_dump(suite))
        [trial] = planner.plan(str(file))[1]
        assert trial.spec.eval.num_beams == bounds.BEAMS and trial.spec.train.seed == bounds.SEED


@FAST
@given(st.sampled_from(sorted(UPPER)), st.one_of(st.integers(1, 10**6), st.sampled_from([10**9, 10**30])))
def test_a_setting_over_its_bound_is_one_line_naming_the_field_and_the_bound(path, excess):
    kind = numeric_fields()[path]
    value = UPPER[path] + excess if kind == "int" else float(UPPER[path] + excess)
    message = plan_rejects(with_setting(path, value))
    field = path.split(".", 1)[1]
    assert f"{field}: got {value!r}" in message, message
    assert "allowed:" in message and (str(UPPER[path]) in message or path == "train.micro_batch_size"), message


@FAST
@given(st.sampled_from(sorted(UPPER)), st.sampled_from([float("inf"), float("-inf"), float("nan"), -1, -(10**30)]))
def test_infinite_or_negative_settings_are_refused(path, value):
    kind = numeric_fields()[path]
    assume(not (kind == "int" and isinstance(value, float)))  # a float for an int is a type error, tested elsewhere
    plan_rejects(with_setting(path, value))


def test_the_issue_cases_name_their_bound():
    assert "eval.num_beams: got 1000000000000000000000000000000; allowed: an integer in 1..64" in plan_rejects(
        with_setting("eval.num_beams", 10**30))
    assert "train.epochs: got 1e+30; allowed: a number in (0, 1000]" in plan_rejects(with_setting("train.epochs", 1e30))


# -- empty and comment-only files --------------------------------------------------------------------------------
BLANK = st.lists(st.sampled_from(["", " ", "\t", "   "]), max_size=5).map("\n".join)
COMMENTS = st.lists(st.one_of(st.sampled_from(["", "  "]), st.text(st.characters(blacklist_categories=("Cs", "Cc")),
                                                                     max_size=20).map(lambda t: "# " + t)),
                    max_size=6).map("\n".join)


@FAST
@given(COMMENTS)
def test_an_empty_or_comment_only_suite_or_catalogue_says_empty(content):
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / "empty.yaml"
        file.write_text(content, encoding="utf-8")
        for load in (planner.plan, lambda f: catalogues.load([f])):
            with pytest.raises(UserError) as caught:
                load(str(file))
            message = str(caught.value)
            assert "\n" not in message and message.startswith(str(file)) and "empty" in message, message


LOADERS = {
    "llm-adapters": (lambda p: llm_adapters.load_file(p, "d"), "test.json", ["", "[]", " [ ] "]),
    "squad-v1": (squad_v1.load_file, "dev-v1.1.json", ["", '{"version": "1.1", "data": []}',
                                                       '{"data": [{"title": "t", "paragraphs": []}]}']),
    "glue-jsonl": (glue_jsonl.load_file, "validation.jsonl", [""]),
    "dapt-jsonl": (dapt_jsonl.load_file, "test.jsonl", [""]),
    "text": (text.load_file, "corpus.txt", [""]),
}


@FAST
@given(st.sampled_from(sorted(LOADERS)), BLANK, st.integers(0, 2))
def test_an_empty_data_file_says_empty_naming_it(fmt, blank, which):
    load, name, bodies = LOADERS[fmt]
    body = bodies[which % len(bodies)] + blank
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / name
        file.write_text(body, encoding="utf-8")
        with pytest.raises(UserError) as caught:
            load(file)
        message = str(caught.value)
        assert "\n" not in message and message.startswith(f"{file}: empty"), message


# -- the user's catalogue files (issue 16): every entry's settings ------------------------------------------------
CATALOGUE = """
models:
  my-llama: {source: ./m, family: llama, resources: {cpus: 1, gpus: 0, memory_gb: 4}}
tables:
  mine: {title: Mine}
datasets:
  my-test: {format: llm-adapters, path: test.json, task_family: math, answer: number, max_new_tokens: 8,
            table: mine, column: 1}
"""
CATALOGUE_SLOTS = {  # entry field -> a value of the right kind over its bound
    ("models", "my-llama", "resources", "cpus"): bounds.CPUS + 1.5,
    ("models", "my-llama", "resources", "gpus"): bounds.GPUS + 1,
    ("models", "my-llama", "resources", "memory_gb"): float(bounds.MEMORY_GB * 2),
    ("datasets", "my-test", "max_new_tokens"): bounds.TOKENS + 1,
    ("datasets", "my-test", "column"): bounds.COLUMN + 1,
}
JUNK = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 0), st.floats(allow_nan=False).filter(lambda x: x <= 0),
                 st.text(max_size=5), st.lists(st.integers(), max_size=2))


def _catalogue_rejects(body: dict) -> str:
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / "mine.yaml"
        file.write_text(yaml.safe_dump(body), encoding="utf-8")
        with pytest.raises(UserError) as caught:
            catalogues.load([str(file)])
        message = str(caught.value)
        assert "\n" not in message and message.startswith(str(file)), message
        return message


def _set(body: dict, path: tuple, value) -> dict:
    node = body
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return body


@FAST
@given(st.sampled_from(sorted(CATALOGUE_SLOTS)), st.one_of(st.just("over"), JUNK))
def test_a_catalogue_entry_over_its_bound_or_of_the_wrong_kind_is_one_line(path, value):
    body = yaml.safe_load(CATALOGUE)
    value = CATALOGUE_SLOTS[path] if value == "over" else value
    assume(not (path[-1] == "gpus" and value in (0, 0.0, False) and not isinstance(value, bool)))  # 0 GPUs is valid
    assume(not (path[-1] in ("max_new_tokens", "column", "memory_gb") and value is None))  # null: unset, valid
    message = _catalogue_rejects(_set(body, path, value))
    assert f"{'.'.join(path)}: got" in message, message


def test_the_catalogue_base_is_valid():
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / "mine.yaml"
        file.write_text(textwrap.dedent(CATALOGUE))
        assert "my-test" in catalogues.load([str(file)]).datasets


# -- kept adapters (saved-adapter work): a damaged folder is one line naming the folder and the file --------------
def _adapter(folder: Path) -> Path:
    from benchmark.store.adapters import seal

    folder.mkdir()
    (folder / "adapter_model.safetensors").write_bytes(b"x" * 64)
    (folder / "adapter_config.json").write_text("{}")
    seal(folder, {"method": "lora"})
    return folder


MANIFEST_DAMAGE = st.sampled_from(["truncate-file", "delete-file", "grow-file", "manifest-junk", "manifest-not-json",
                                   "manifest-gone", "manifest-files-junk"])


@FAST
@given(MANIFEST_DAMAGE, st.one_of(st.integers(0, 63), st.text(max_size=8), st.none(), st.lists(st.integers(), max_size=2)))
def test_a_damaged_adapter_folder_is_one_line_naming_folder_and_file(damage, junk):
    from benchmark.store.adapters import MANIFEST, check_complete

    with tempfile.TemporaryDirectory() as tmp:
        folder = _adapter(Path(tmp) / "a1b2")
        weights, manifest = folder / "adapter_model.safetensors", folder / MANIFEST
        if damage == "truncate-file":
            weights.write_bytes(b"x" * (junk if isinstance(junk, int) else 3))
        elif damage == "delete-file":
            weights.unlink()
        elif damage == "grow-file":
            weights.write_bytes(b"x" * 65)
        elif damage == "manifest-junk":
            manifest.write_text(json.dumps(junk))
        elif damage == "manifest-not-json":
            manifest.write_text("{" + str(junk))
        elif damage == "manifest-gone":
            manifest.unlink()
        else:
            manifest.write_text(json.dumps({"format": 1, "files": junk}))
        assume(not (damage == "manifest-files-junk" and junk in ([], "")))  # an empty listing is whole
        with pytest.raises(UserError) as caught:
            check_complete(folder)
        message = str(caught.value)
        assert "\n" not in message and message.startswith(f"adapter folder {folder}"), message


# ---- method arguments and the co-training option ----

METHOD_WIDTHS = [("lora", "r", bounds.WIDTH), ("dora", "r", bounds.WIDTH), ("series", "bottleneck_size", bounds.WIDTH),
                 ("parallel", "bottleneck_size", bounds.WIDTH), ("prefix", "num_virtual_tokens", bounds.TOKENS),
                 ("prompt", "num_virtual_tokens", bounds.TOKENS), ("unipelt", "lora_r", bounds.WIDTH)]


@FAST
@given(case=st.sampled_from(METHOD_WIDTHS), over=st.integers(min_value=1, max_value=10**30))
def test_a_method_width_over_its_bound_is_one_line_naming_it(case, over):
    from benchmark import methods

    method, field, limit = case
    with pytest.raises(UserError) as info:
        methods.build_config(method, {field: limit + over})
    message = str(info.value)
    assert f"method_args.{field}: got" in message and f"..{limit}" in message and "\n" not in message
    methods.build_config(method, {field: limit})  # the bound itself is allowed


@FAST
@given(value=st.one_of(st.text(max_size=6), st.integers(min_value=-10**6, max_value=10**6).map(str)))
def test_co_train_takes_auto_off_or_a_group_size_and_names_the_option_otherwise(value):
    from benchmark.scheduler import groups

    if value in ("auto", "off") or (value.isdigit() and str(int(value)) == value and 1 <= int(value) <= 64):
        parsed = groups.parse_co_train(value)
        assert 1 <= parsed.most <= 64
        return
    with pytest.raises(UserError, match="^--co-train: got .*; allowed: auto, off, or a whole number"):
        groups.parse_co_train(value)
