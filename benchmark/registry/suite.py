"""The suite YAML schema: parsing and validation, before any expansion.

A suite file:

    name: smoke                      # required; how results and reports are filed
    version: "1"                     # required; bump when the grid's meaning changes
    description: ...
    defaults:                        # settings every cell starts from
      model: tiny-llama
      method: lora
      method_args: {r: 8}
      train_data: emb-math_10k
      eval_data: [emb-gsm8k]
      train: {epochs: 2, learning_rate: 3.0e-4}
      eval: {num_beams: 4}
      resources: {cpus: 1}
      dtype: float32
    grid:                            # axes, expanded as a cartesian product
      model: [tiny-llama, tiny-gptj]
      method: [lora, {method: series, method_args: {bottleneck_size: 64}, label: series-64}]
      train.learning_rate: [1.0e-4, 3.0e-4]
    overrides:                       # per-cell changes, applied in order
      - when: {method: prefix}
        set: {train.learning_rate: 3.0e-2}
    exclude:                         # cells dropped from the grid
      - {model: tiny-gptj, method: prefix}

A suite may also carry `models:`, `datasets:` and `tables:` sections in the catalogue's schema: entries
for this suite only (registry/catalogues.py; relative paths resolve against the suite file's folder).

Keys in `grid`, `when`, `set` and `exclude` are setting paths: model, method, method_args,
method_args.<arg>, train_data, eval_data, dtype, train.<field>, eval.<field>, resources.<field>.
A grid value that is a mapping sets several paths at once (with an optional display `label`).
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path

from benchmark.errors import UserError, did_you_mean
from benchmark.registry.spec import EvalConfig, Resources, TrainConfig
from benchmark.registry.yamlio import check_keys, field_path, load_yaml, require

CATALOGUE_KEYS = ("models", "datasets", "tables")  # the suite's own catalogue entries
TOP_KEYS = {"name", "version", "description", "defaults", "grid", "overrides", "exclude", "allow_contaminated_train", "ledger",
            "embedded", *CATALOGUE_KEYS}
SECTIONS = {"train": TrainConfig, "eval": EvalConfig, "resources": Resources}
SCALAR_KEYS = {"model", "method", "method_args", "train_data", "eval_data", "dtype", "dev_data", "adapt"}
MAX_TRIALS = 100_000  # a grid larger than this is almost surely a typo


def setting_paths() -> list[str]:
    """Every path a grid axis, `when`, `set` or `exclude` may name."""
    paths = sorted(SCALAR_KEYS) + ["method_args.<arg>"]
    for section, cls in SECTIONS.items():
        paths += [f"{section}.{f.name}" for f in dataclasses.fields(cls)]
    return paths


@dataclass(frozen=True)
class Suite:
    name: str
    version: str
    description: str
    file: Path
    defaults: dict
    grid: dict  # axis path -> list of values (scalars or mappings)
    overrides: list = field(default_factory=list)  # [(when: dict, set: dict)]
    exclude: list = field(default_factory=list)  # [when-style dict]
    allow_contaminated_train: bool = False
    # A quirk ledger (registry/quirks.py): after `run`, its faithful trials are rescored once per extraction quirk
    # flipped (rescore.py --ledger), so the report's quirk page has every quirk without more training.
    ledger: bool = False
    # `--embedded` rehearsal budget: `set` (settings applied after the caps) and `grid` (smaller axis values)
    embedded: dict = field(default_factory=dict)
    catalogue: dict = field(default_factory=dict)  # its models: / datasets: / tables: sections, as written


def _type_ok(value, hint) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return any(_type_ok(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    return True


def _hint_text(hint) -> str:
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string", type(None): "null"}
    args = typing.get_args(hint) or (hint,)
    return " or ".join(names.get(a, getattr(a, "__name__", str(a))) for a in args)


def check_setting(path: str, value, file: Path, where: str) -> None:
    """Validate one setting path and the type of its value (values are range-checked later by the dataclasses)."""
    here = field_path(where, path)
    head, _, rest = path.partition(".")
    if head in SECTIONS:
        cls = SECTIONS[head]
        hints = typing.get_type_hints(cls)
        if not rest:
            check_keys(value, set(hints), file, here)
            for key, sub in value.items():
                check_setting(f"{head}.{key}", sub, file, where)
            return
        if rest not in hints:
            raise UserError(f"{file}: {here}: unknown setting {rest!r}{did_you_mean(rest, hints)}; "
                            f"allowed: {', '.join(f'{head}.{k}' for k in hints)}")
        if not _type_ok(value, hints[rest]):
            raise UserError(f"{file}: {here}: got {value!r}; allowed: {_hint_text(hints[rest])}")
        return
    if head == "method_args":
        if not rest and not isinstance(value, dict):
            raise UserError(f"{file}: {here}: got {value!r}; allowed: a mapping of method arguments")
        return
    if path not in SCALAR_KEYS:
        raise UserError(f"{file}: {here}: unknown setting {path!r}{did_you_mean(path, setting_paths())}; "
                        f"allowed: {', '.join(setting_paths())}")
    if path == "eval_data":
        if not (isinstance(value, list) and value and all(isinstance(v, str) for v in value)):
            raise UserError(f"{file}: {here}: got {value!r}; allowed: a non-empty list of dataset names")
        if len(set(value)) != len(value):  # a repeated name would store the same metric twice for one trial
            raise UserError(f"{file}: {here}: got {value!r}; allowed: a list of distinct dataset names")
    elif path == "adapt":  # the stages themselves are parsed once, per cell, when the spec is built
        if value is not None and not (isinstance(value, list) and all(isinstance(s, dict) for s in value)):
            raise UserError(f"{file}: {here}: got {value!r}; allowed: a list of stages such as [{{kind: tapt}}]")
    elif path == "dev_data" and value is None:
        return
    elif not isinstance(value, str):
        raise UserError(f"{file}: {here}: got {value!r}; allowed: a string")


def _check_settings(mapping, file: Path, where: str) -> dict:
    if not isinstance(mapping, dict):
        raise UserError(f"{file}: {where}: got {mapping!r}; allowed: a mapping of setting paths to values")
    for key, value in mapping.items():
        check_setting(str(key), value, file, where)
    return mapping


def parse_suite(file: Path) -> Suite:
    raw = load_yaml(file)
    check_keys(raw, TOP_KEYS, file, "")
    name = require(raw, "name", str, file, "")
    if not name or ".." in name or name.startswith("/") or any(c in name for c in "\\:*?\"<>|"):
        raise UserError(f"{file}: name: got {name!r}; allowed: letters, digits, '_', '-', '/' (no '..')")
    version = raw.get("version")
    if not isinstance(version, (str, int)) or isinstance(version, bool):
        raise UserError(f"{file}: version: got {version!r}; allowed: a string such as \"1\"")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise UserError(f"{file}: description: got {description!r}; allowed: a string")
    defaults = _check_settings(raw.get("defaults", {}) or {}, file, "defaults")

    grid = raw.get("grid", {}) or {}
    if not isinstance(grid, dict):
        raise UserError(f"{file}: grid: got {grid!r}; allowed: a mapping of axis -> list of values")
    for axis, values in grid.items():
        where = f"grid.{axis}"
        if not isinstance(values, list) or not values:
            raise UserError(f"{file}: {where}: got {values!r}; allowed: a non-empty list of values")
        for i, value in enumerate(values):
            if isinstance(value, dict):
                body = {k: v for k, v in value.items() if k != "label"}
                if not body:
                    raise UserError(f"{file}: {where}[{i}]: an empty mapping sets nothing; allowed: setting paths")
                if "label" in value and not isinstance(value["label"], str):
                    raise UserError(f"{file}: {where}[{i}].label: got {value['label']!r}; allowed: a string")
                _check_settings(body, file, f"{where}[{i}]")
            else:
                check_setting(str(axis), value, file, "grid")

    overrides = []
    for i, rule in enumerate(_list(raw.get("overrides", []) or [], file, "overrides", "{when, set} rules")):
        overrides.append(_parse_override(rule, grid, file, f"overrides[{i}]"))

    exclude = []
    for i, when in enumerate(_list(raw.get("exclude", []) or [], file, "exclude", "mappings of setting path -> value(s)")):
        if not isinstance(when, dict) or not when:
            raise UserError(f"{file}: exclude[{i}]: got {when!r}; allowed: a non-empty mapping of setting path -> value(s)")
        _check_when(when, grid, file, f"exclude[{i}]")
        exclude.append(when)

    allow = raw.get("allow_contaminated_train", False)
    if not isinstance(allow, bool):
        raise UserError(f"{file}: allow_contaminated_train: got {allow!r}; allowed: true or false")
    ledger = raw.get("ledger", False)
    if not isinstance(ledger, bool):
        raise UserError(f"{file}: ledger: got {ledger!r}; allowed: true or false")
    embedded = _parse_embedded(raw.get("embedded", {}) or {}, grid, file)
    return Suite(name=name, version=str(version), description=description, file=file, defaults=defaults,
                 grid=grid, overrides=overrides, exclude=exclude, allow_contaminated_train=allow, ledger=ledger,
                 embedded=embedded,
                 catalogue={key: raw[key] for key in CATALOGUE_KEYS if key in raw})


def _list(value, file: Path, where: str, what: str) -> list:
    # Iterating a scalar would raise a TypeError (a traceback), and a mapping or string would be read key by key.
    if not isinstance(value, list):
        raise UserError(f"{file}: {where}: got {value!r}; allowed: a list of {what}")
    return value


def _parse_override(rule, grid: dict, file: Path, where: str) -> tuple[dict, dict]:
    if not isinstance(rule, dict):
        raise UserError(f"{file}: {where}: got {rule!r}; allowed: a mapping with when and set")
    check_keys(rule, {"when", "set"}, file, where)
    when = rule.get("when")
    if not isinstance(when, dict) or not when:
        raise UserError(f"{file}: {where}.when: got {when!r}; allowed: a non-empty mapping of setting path -> value(s)")
    _check_when(when, grid, file, f"{where}.when")
    setting = rule.get("set")
    if not isinstance(setting, dict) or not setting:
        raise UserError(f"{file}: {where}.set: got {setting!r}; allowed: a non-empty mapping of setting path -> value")
    _check_settings(setting, file, f"{where}.set")
    return when, setting


def _parse_embedded(raw, grid: dict, file: Path) -> dict:
    """embedded: {set, overrides, grid}: what `run --embedded` changes besides its caps (the rehearsal budget):
    settings for every cell, overrides matched on the cell as planned for the real models, smaller axes."""
    if not isinstance(raw, dict):
        raise UserError(f"{file}: embedded: got {raw!r}; allowed: a mapping with set, overrides and/or grid")
    check_keys(raw, {"set", "overrides", "grid"}, file, "embedded")
    rules = raw.get("overrides", []) or []
    if not isinstance(rules, list):
        raise UserError(f"{file}: embedded.overrides: got {rules!r}; allowed: a list of {{when, set}}")
    out = {"set": _check_settings(raw.get("set", {}) or {}, file, "embedded.set"), "grid": {},
           "overrides": [_parse_override(r, grid, file, f"embedded.overrides[{i}]") for i, r in enumerate(rules)]}
    small = raw.get("grid", {}) or {}
    if not isinstance(small, dict):
        raise UserError(f"{file}: embedded.grid: got {small!r}; allowed: a mapping of axis -> list of values")
    for axis, values in small.items():
        if axis not in grid:
            raise UserError(f"{file}: embedded.grid.{axis}: not an axis of grid; allowed: {', '.join(grid)}")
        if not isinstance(values, list) or not values:
            raise UserError(f"{file}: embedded.grid.{axis}: got {values!r}; allowed: a non-empty list of values")
        out["grid"][axis] = values
    return out


def _check_when(when: dict, grid: dict, file: Path, where: str) -> None:
    """`when` keys are setting paths or grid axis names; values a scalar or a list of alternatives."""
    for key in when:
        if key in grid:
            continue
        head = str(key).partition(".")[0]
        if head not in SECTIONS and head != "method_args" and key not in SCALAR_KEYS:
            allowed = sorted(set(setting_paths()) | set(grid))
            raise UserError(f"{file}: {field_path(where, key)}: unknown setting{did_you_mean(key, allowed)}; "
                            f"allowed: {', '.join(allowed)}")
