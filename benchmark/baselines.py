"""Published numbers (suites/baselines/<name>.yaml) as validated tables, each row with its source.

A report puts these beside a run: the paper's number for the same cell and the baselines
(full fine-tuning, DAPT+TAPT, 175B zero-shot). Values stay exactly as printed; the loader only
checks their shape, so a typo in a file fails loudly instead of showing up as a wrong cell.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from pathlib import Path

from benchmark import metrics as metric_table
from benchmark.errors import UserError, did_you_mean
from benchmark.paths import SUITES_DIR
from benchmark.registry.yamlio import check_keys, field_path, load_yaml, require

BASELINES_DIR = SUITES_DIR / "baselines"
KINDS = ("paper", "baseline")  # paper: a PEFT result as published; baseline: a comparison row
UNITS = ("percent",)
# How a report uses a table (benchmark/report/published.py): primary tables supply the paper's number
# for a cell first, fallback (historical) tables only cells no primary table has, never tables are
# not compared with runs at all (a contaminated split, a different training regime such as K-shot).
COMPARE = ("primary", "fallback", "never")
# The metric table's names, and what only published tables print (an average, cost ratios).
METRICS = (*metric_table.names(), "average", "relative_params", "relative_time")
FILE_KEYS = {"name", "description", "vocabulary", "tables", "param_counts", "run_variants", "params_note"}
TABLE_KEYS = {"id", "title", "source", "metric", "unit", "columns", "notes", "rows", "std", "domains", "compare",
              "train_examples"}
ROW_KEYS = {"model", "method", "kind", "values", "params", "note", "label", "variant", "source", "extra"}
PARAM_KEYS = {"source", "notes", "counts", "model", "total"}


@dataclass(frozen=True)
class MeanStd:
    """A cell printed as 'mean (std)' over seeds."""
    mean: float
    std: float


@dataclass(frozen=True)
class BaselineRow:
    model: str
    method: str
    kind: str
    values: dict  # column -> float | MeanStd | None (None: printed as missing)
    params: str | None = None  # trainable parameters as printed ("4.2M")
    note: str | None = None
    label: str | None = None  # the row name as printed
    variant: str | None = None  # tells apart rows with the same model and method ("AP", "L=50")
    source: str | None = None  # overrides the table's source
    extra: dict = field(default_factory=dict)  # further printed numbers without a column

    def value(self, column: str) -> float | None:
        """The number for `column` (the mean of a mean/std cell); None when not printed."""
        cell = self.values.get(column)
        return cell.mean if isinstance(cell, MeanStd) else cell


@dataclass(frozen=True)
class BaselineTable:
    id: str
    title: str
    source: str
    metric: str | dict  # one metric for all columns, or column -> metric
    unit: str
    columns: tuple[str, ...]
    rows: tuple[BaselineRow, ...]
    notes: tuple[str, ...] = ()
    std: bool = False  # cells may be {mean, std}
    domains: dict = field(default_factory=dict)  # column -> domain (DAPT tasks)
    file: str = ""
    compare: str = "primary"  # primary | fallback | never: see COMPARE
    # K of a low-resource protocol (UniPELT Table 1): the table is the comparison for runs trained on K
    # examples only, and for no other run (so it stays `never` for full-data runs).
    train_examples: int | None = None
    # method -> the variant row a run of that method meets where the table prints no row without a variant
    # (the file's `run_variants`: a library's default configuration is one of the paper's variants).
    run_variants: dict = field(default_factory=dict)
    params_note: str = ""  # the file's `params_note`: how its papers count trainable parameters

    def metric_of(self, column: str) -> str:
        return self.metric if isinstance(self.metric, str) else self.metric[column]

    def find(self, model: str, method: str, variant: str | None = None) -> BaselineRow | None:
        return next((r for r in self.rows if (r.model, r.method, r.variant) == (model, method, variant)), None)


def _fail(file, where: str, msg: str):
    raise UserError(f"{file}: {where}: {msg}")


def _choice(value, allowed, file, where: str) -> str:
    if value not in allowed:
        _fail(file, where, f"got {value!r}{did_you_mean(value, allowed)}; allowed: {', '.join(map(str, allowed))}")
    return value


def _number(value, file, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        _fail(file, where, f"got {value!r}; allowed: a number")
    return float(value)


def _cell(value, std_allowed: bool, file, where: str):
    if value is None:
        return None
    if isinstance(value, dict):
        if not std_allowed:
            _fail(file, where, f"got {value!r}; allowed: a number or null (set std: true on the table for mean/std cells)")
        check_keys(value, {"mean", "std"}, file, where)
        return MeanStd(*(_number(require(value, k, object, file, where), file, field_path(where, k)) for k in ("mean", "std")))
    return _number(value, file, where)


def _strings(value, file, where: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(s, str) for s in items):
        _fail(file, where, f"got {value!r}; allowed: a string or a list of strings")
    return tuple(items)


def _row(body, table: dict, vocab: dict, file, where: str) -> BaselineRow:
    check_keys(body, ROW_KEYS, file, where)
    names = {k: _choice(require(body, k, str, file, where), vocab[k], file, field_path(where, k)) for k in ("model", "method")}
    kind = _choice(require(body, "kind", str, file, where), KINDS, file, field_path(where, "kind"))
    values_at = field_path(where, "values")
    check_keys(require(body, "values", dict, file, where), set(table["columns"]), file, values_at)
    values = {c: _cell(v, table["std"], file, field_path(values_at, c)) for c, v in body["values"].items()}
    extra = body.get("extra", {})
    if not isinstance(extra, dict):
        _fail(file, field_path(where, "extra"), f"got {extra!r}; allowed: a mapping of name -> number")
    extra = {str(k): _number(v, file, field_path(field_path(where, "extra"), k)) for k, v in extra.items()}
    optional = {k: require(body, k, str, file, where) for k in ("params", "note", "label", "variant", "source") if k in body}
    return BaselineRow(**names, kind=kind, values=values, extra=extra, **optional)


def _table(body, vocab: dict, file, where: str) -> BaselineTable:
    check_keys(body, TABLE_KEYS, file, where)
    text = {k: require(body, k, str, file, where) for k in ("id", "title", "source")}
    columns = require(body, "columns", list, file, where)
    if not columns or not all(isinstance(c, str) for c in columns) or len(set(columns)) != len(columns):
        _fail(file, field_path(where, "columns"), f"got {columns!r}; allowed: a non-empty list of distinct names")
    metric = body.get("metric")
    metric_at = field_path(where, "metric")
    if isinstance(metric, dict):
        check_keys(metric, set(columns), file, metric_at)
        for col in columns:
            _choice(metric.get(col), METRICS, file, field_path(metric_at, col))
    else:
        _choice(metric, METRICS, file, metric_at)
    unit = _choice(body.get("unit"), UNITS, file, field_path(where, "unit"))
    std = require(body, "std", bool, file, where) if "std" in body else False
    domains = require(body, "domains", dict, file, where) if "domains" in body else {}
    check_keys(domains, set(columns), file, field_path(where, "domains"))
    context = {"columns": columns, "std": std}
    rows = tuple(_row(r, context, vocab, file, field_path(field_path(where, "rows"), i))
                 for i, r in enumerate(require(body, "rows", list, file, where)))
    seen = set()
    for i, row in enumerate(rows):  # find() must find one row per (model, method, variant)
        key = (row.model, row.method, row.variant)
        if key in seen:
            _fail(file, field_path(field_path(where, "rows"), i), f"duplicate model/method/variant {key}; add a distinct variant")
        seen.add(key)
    notes = _strings(body["notes"], file, field_path(where, "notes")) if "notes" in body else ()
    compare = _choice(body.get("compare", "primary"), COMPARE, file, field_path(where, "compare"))
    k = body.get("train_examples")
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        _fail(file, field_path(where, "train_examples"), f"got {k!r}; allowed: an integer >= 1 (the K of a low-resource table)")
    return BaselineTable(**text, metric=metric, unit=unit, columns=tuple(columns), rows=rows, notes=notes,
                         std=std, domains=dict(domains), file=str(file), compare=compare, train_examples=k)


def _run_variants(data: dict, tables: tuple[BaselineTable, ...], vocab: dict, file) -> dict:
    """The file's `run_variants: {method: variant}`, each variant one the file prints for that method."""
    body = data.get("run_variants", {}) or {}
    if not isinstance(body, dict):
        _fail(file, "run_variants", f"got {body!r}; allowed: a mapping of method -> variant")
    for method, variant in body.items():
        _choice(method, vocab["method"], file, field_path("run_variants", method))
        printed = sorted({r.variant for t in tables for r in t.rows if r.method == method and r.variant})
        _choice(variant, printed, file, field_path("run_variants", method))
    return dict(body)


@functools.cache  # files do not change during a run; reports look up many cells
def _load_file(name: str, root: Path) -> tuple[BaselineTable, ...]:
    file = root / f"{name}.yaml"
    if not file.is_file():
        known = sorted(p.stem for p in root.glob("*.yaml"))
        raise UserError(f"baselines {name!r}: no file {file}{did_you_mean(name, known)}; allowed: {', '.join(known)}")
    data = load_yaml(file)
    check_keys(data, FILE_KEYS, file, "")
    vocab_body = require(data, "vocabulary", dict, file, "")
    check_keys(vocab_body, {"models", "methods"}, file, "vocabulary")
    vocab = {k[:-1]: _strings(require(vocab_body, k, list, file, "vocabulary"), file, f"vocabulary.{k}") for k in ("models", "methods")}
    tables = tuple(_table(t, vocab, file, f"tables[{i}]") for i, t in enumerate(require(data, "tables", list, file, "")))
    variants = _run_variants(data, tables, vocab, file)
    params_note = require(data, "params_note", str, file, "") if "params_note" in data else ""
    tables = tuple(dataclasses.replace(t, run_variants=variants, params_note=params_note) for t in tables)
    ids = [t.id for t in tables]
    if len(set(ids)) != len(ids):
        _fail(file, "tables", f"duplicate table ids in {ids}")
    if "param_counts" in data:  # the paper's printed counts, for readers of the file: validated, not read by code
        check_keys(data["param_counts"], PARAM_KEYS, file, "param_counts")
        require(data["param_counts"], "counts", dict, file, "param_counts")
    return tables


def load(name: str, root: Path | None = None) -> list[BaselineTable]:
    """The validated tables of suites/baselines/<name>.yaml ("llm_adapters", "pt_unipelt")."""
    return list(_load_file(name, Path(root or BASELINES_DIR)))
