"""Property-based tests: a malformed suite fails with one UserError line naming the file, never a traceback.

Each test mutates a valid suite (suites/smoke.yaml) in one way, writes it to a file and plans it
(parse, expand, resolve every trial) as `peft-bench validate` does. The example counts are recorded in
README "Reliability".
"""

import copy
import math
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmark import planner
from benchmark.errors import UserError
from benchmark.paths import SUITES_DIR
from benchmark.registry.catalogue import datasets, models
from benchmark.registry.suite import MAX_TRIALS, TOP_KEYS, setting_paths

BASE = yaml.safe_load((SUITES_DIR / "smoke.yaml").read_text())
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Safe-dumpable text without surrogates (which cannot be written as UTF-8).
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
NAMES = st.from_regex(r"[A-Za-z][A-Za-z0-9_\-]{0,15}", fullmatch=True)
SCALARS = st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=False), st.booleans(), TEXT, st.none())
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                        st.dictionaries(NAMES, inner, max_size=3)), max_leaves=6)


def check_rejected(suite: dict) -> str:
    """Write `suite` and plan it; it must raise UserError, one line, naming the file."""
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / "mutant.yaml"
        file.write_text(yaml.safe_dump(suite, allow_unicode=True), encoding="utf-8")
        with pytest.raises(UserError) as caught:
            planner.plan(str(file))
        message = str(caught.value)
        assert "\n" not in message and "\r" not in message, message
        assert str(file) in message, message
        return message


def at(suite: dict, path: tuple):
    """The container holding the last key of `path`, and that key."""
    node = suite
    for key in path[:-1]:
        node = node.setdefault(key, {}) if isinstance(node, dict) else node[key]  # `embedded` is not in the base
    return node, path[-1]


# Fields of the smoke suite with their kind; a value of another kind must be refused.
TYPED_FIELDS = {
    ("name",): "str", ("version",): "version", ("description",): "str", ("defaults",): "dict", ("grid",): "dict",
    ("overrides",): "list", ("defaults", "model"): "str", ("defaults", "method"): "str",
    ("defaults", "train"): "dict", ("defaults", "eval"): "dict", ("defaults", "train", "epochs"): "number",
    ("defaults", "train", "batch_size"): "int", ("defaults", "train", "learning_rate"): "number",
    ("defaults", "train", "max_train_examples"): "int?", ("defaults", "eval", "num_beams"): "int",
    ("defaults", "eval", "protocol"): "str", ("grid", "method"): "list", ("grid", "task"): "list",
    ("overrides", 0, "when"): "dict", ("overrides", 0, "set"): "dict", ("overrides", 1, "set", "method_args"): "dict",
    ("overrides", 0, "set", "train.learning_rate"): "number", ("exclude",): "list", ("embedded",): "dict",
    ("embedded", "grid"): "dict", ("embedded", "set"): "dict", ("embedded", "overrides"): "list",
    ("allow_contaminated_train",): "bool", ("grid", "task", 0, "eval_data"): "list",
}


def wrong_for(kind: str, value) -> bool:
    """True when `value` is not acceptable for a field of `kind` (and not a falsy 'absent' for a section)."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    ok = {"str": isinstance(value, str), "version": isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)),
          "dict": isinstance(value, dict), "list": isinstance(value, list) and bool(value),
          "number": number, "int": isinstance(value, int) and not isinstance(value, bool),
          "int?": value is None or (isinstance(value, int) and not isinstance(value, bool)),
          "bool": isinstance(value, bool)}[kind]
    return not ok and bool(value)  # an empty section (`grid:`) means "none", a valid choice


@settings(FAST, max_examples=200)  # 30 fields x many value kinds: the widest net, and the cheapest
@given(st.sampled_from(sorted(TYPED_FIELDS, key=str)), VALUES)
def test_a_wrongly_typed_field_is_a_user_error(path, value):
    from hypothesis import assume

    assume(wrong_for(TYPED_FIELDS[path], value))
    suite = copy.deepcopy(BASE)
    node, key = at(suite, path)
    node[key] = value
    check_rejected(suite)


SECTIONS_WITH_KEYS = {(): TOP_KEYS, ("defaults",): set(setting_paths()) | {"train", "eval", "resources", "method_args"},
                      ("defaults", "train"): None, ("defaults", "eval"): None, ("overrides", 0): {"when", "set"},
                      ("overrides", 0, "set"): set(setting_paths()) | {"train", "eval", "resources", "method_args"},
                      ("overrides", 0, "when"): set(setting_paths()) | {"task", "method"}}


@FAST
@given(st.sampled_from(sorted(SECTIONS_WITH_KEYS, key=str)), NAMES, SCALARS)
def test_an_unknown_key_is_a_user_error(path, key, value):
    from hypothesis import assume

    suite = copy.deepcopy(BASE)
    node = suite
    for part in path:
        node = node[part]
    known = SECTIONS_WITH_KEYS[path] or set(node) | set(setting_paths()) | {p.split(".", 1)[-1] for p in setting_paths()}
    assume(key not in known and key not in node and not key.startswith("method_args"))
    node[key] = value
    message = check_rejected(suite)
    assert key in message and "allowed:" in message


NAME_SLOTS = {("defaults", "model"): models,  # defaults.method is shadowed by the grid axis
              ("grid", "task", 0, "train_data"): datasets, ("grid", "task", 1, "eval_data", 0): datasets,
              ("grid", "method", 2): None}


@FAST
@given(st.sampled_from(sorted(NAME_SLOTS, key=str)), NAMES)
def test_an_unknown_model_method_or_dataset_is_a_user_error(path, name):
    from hypothesis import assume

    from benchmark import methods

    catalogue = NAME_SLOTS[path]
    known = catalogue() if catalogue else methods.names()
    assume(name not in known)
    suite = copy.deepcopy(BASE)
    node, key = at(suite, path)
    node[key] = name
    message = check_rejected(suite)
    assert repr(name) in message or name in message


@FAST
@given(st.sampled_from(["method", "task", "train.seed", "embedded"]), st.booleans())
def test_an_empty_grid_axis_or_an_all_excluding_rule_is_a_user_error(axis, exclude_all):
    suite = copy.deepcopy(BASE)
    if exclude_all:  # every cell excluded: nothing to run is a mistake, not a silent no-op
        suite["exclude"] = [{"method": list(BASE["grid"]["method"])}]
    elif axis == "embedded":
        suite["embedded"] = {"grid": {"method": []}}
    else:
        suite["grid"][axis] = []
    check_rejected(suite)


@settings(max_examples=10, deadline=None)
@given(st.integers(2, 40), st.integers(0, 3))
def test_a_grid_over_the_limit_is_refused_before_expanding(width, extra):
    suite = copy.deepcopy(BASE)
    base_cells = len(BASE["grid"]["task"]) * len(BASE["grid"]["method"])
    # width seeds x enough learning rates to pass MAX_TRIALS (never expanded: refused from the sizes alone)
    rates = math.ceil((MAX_TRIALS + 1) / (base_cells * width)) + extra
    suite["grid"]["train.seed"] = list(range(width))
    suite["grid"]["train.learning_rate"] = [1e-4 + i * 1e-7 for i in range(rates)]
    message = check_rejected(suite)
    assert f"at most {MAX_TRIALS}" in message


@FAST
@given(st.sampled_from(["train.epochs", "train.learning_rate", "train.batch_size", "eval.num_beams"]),
       st.one_of(st.integers(-1000, 0), st.floats(-1e6, 0.0), st.just(float("inf")), st.just(float("nan"))))
def test_an_override_out_of_range_is_a_user_error(path, value):
    suite = copy.deepcopy(BASE)
    suite["overrides"].append({"when": {"method": "lora"}, "set": {path: value}})
    check_rejected(suite)


@pytest.mark.parametrize("mutate", [
    lambda s: s.__setitem__("overrides", 5),  # were TypeError / AttributeError tracebacks before
    lambda s: s.__setitem__("exclude", 5),
    lambda s: s.__setitem__("embedded", {"grid": 5}),
    lambda s: s["grid"]["task"][0].__setitem__("eval_data", ["emb-gsm8k", "emb-gsm8k"]),  # a metric stored twice
])
def test_regressions_found_by_the_properties(mutate):
    suite = copy.deepcopy(BASE)
    mutate(suite)
    check_rejected(suite)


def test_contradictory_overrides_that_merge_two_cells_are_a_user_error():
    suite = copy.deepcopy(BASE)
    # Make the commonsense cells identical to the math cells: two cells, one trial.
    suite["overrides"].append({"when": {"task": "commonsense"}, "set": {
        "train_data": "emb-math_10k", "eval_data": ["emb-gsm8k", "emb-AQuA"], "train.epochs": 2, "train.cutoff_len": 128,
        "eval.max_new_tokens": None}})
    suite["grid"]["task"][0]["eval.max_new_tokens"] = None
    check_rejected(suite)


@pytest.mark.parametrize("path,typo,right", [((), "descripton", "description"), (("defaults",), "modle", "model"),
                                             (("defaults", "train"), "learning_rat", "learning_rate"),
                                             (("defaults", "eval"), "num_beam", "num_beams")])
def test_a_misspelt_key_gets_a_did_you_mean(path, typo, right):
    suite = copy.deepcopy(BASE)
    node = suite
    for part in path:
        node = node[part]
    node[typo] = node.pop(right, "x")
    assert f"did you mean {right!r}" in check_rejected(suite)


def test_the_unmutated_base_suite_is_valid():
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / "smoke.yaml"
        file.write_text(yaml.safe_dump(BASE))
        assert len(planner.plan(str(file))[1]) == 12
