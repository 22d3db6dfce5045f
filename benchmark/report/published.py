"""The paper's numbers beside this run's: suites/baselines/*.yaml (benchmark/baselines.py) in the report.

The rules, applied to each report table (one catalogue table of one suite):

1. Columns. A report column (dataset, metric) stands for the published column its catalogue entry
   names (`published_as`, default the dataset's name); an embedded twin stands for the real dataset
   whose `embedded_twin` it is. The metric must agree too (a run's accuracy never meets the paper's F1).
2. Tables. A baseline table fits when it has at least one of the report's columns. Fitting tables
   are ranked by their `compare` field (primary before fallback; `never` tables are left out), then
   by file order. Each cell takes its number from the first ranked table that prints one, so a
   historical (fallback) table supplies only the columns the current one no longer prints.
3. Rows. A run row meets the published row (without a variant) of the same catalogue model alias and
   method name. The paper's hyper-parameters may differ from the run's; the run's label says which
   it used.
4. Average. The paper's printed average when all of a row's paper numbers come from one table whose
   columns are exactly the report's; otherwise the mean of the row's paper numbers when the paper
   prints every column; otherwise nothing.
5. Published rows that meet no run row (the 175B zero-shot baselines, the paper's other models and
   methods) are reference rows below the runs: never marked best, never plotted as runs.
6. Low-resource tables. A report table of runs trained on K examples (table.k) meets only the baseline
   tables with `train_examples: K`; every other report table meets only tables without it.
7. Per-metric columns. A published table may print one column per metric (<name>_em, <name>_f1): the
   report column (<name>, em) stands for <name>_em when no table prints a plain <name> column.
8. Variants. A run of a method whose library default is one of the paper's variants meets that variant's
   row when the paper prints no row without a variant (the baselines file's `run_variants`).
9. Embedded runs (a synthetic twin dataset, or a tiny model) are a rehearsal: no difference is shown,
   and every published row goes to a separate block, labelled for orientation only. A table that
   mixes embedded and real runs is treated as embedded (report them from separate result roots).

A cell without a paper number shows nothing extra; a published row without a number shows "-".
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from benchmark import baselines
from benchmark.baselines import BaselineRow, BaselineTable
from benchmark.registry import catalogue
from benchmark.report.cells import NOT_PUBLISHED, Cell, PaperNote, Row, Table

ORIENTATION_NOTE = ("A rehearsal: this run's model is not the paper's (a tiny model, or real weights the paper did not "
                    "use) or its data are synthetic twins of these datasets (emb-X stands in for X). The published "
                    "numbers, the paper's models on real data, are shown apart for orientation only, with no "
                    "differences.")
COMPARE_NOTE = ("Under each run value: the paper's number for the same model, method and dataset, and the "
                "difference (this run - paper). Runs meet published rows by model alias and method name; the "
                "paper's hyper-parameters may differ. The paper's average is its printed one when all of a row's "
                "numbers come from one table with exactly these columns, else the mean of its numbers in "
                "these columns.")
REFERENCE_NOTE = "Published rows (paper, baseline) are below the runs; they are never marked best."
_SCALES = {"K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}


def ranked_tables(root: Path | None = None) -> list[BaselineTable]:
    """Every table that may meet a run, primary before fallback, file order within a rank."""
    root = Path(root or baselines.BASELINES_DIR)
    tables = [t for path in sorted(root.glob("*.yaml")) for t in baselines.load(path.stem, root)]
    rank = {c: i for i, c in enumerate(baselines.COMPARE)}
    # A low-resource table is `never` for full-data runs but the comparison for runs with its K (rule 6).
    return sorted((t for t in tables if t.compare != "never" or t.train_examples), key=lambda t: rank[t.compare])


def real_dataset(name: str) -> tuple[str, bool]:
    """The published dataset a report column stands for, and whether the column's data is synthetic."""
    entries = catalogue.datasets()
    real = [e.name for e in entries.values() if e.embedded_twin == name and e.role == "eval"]
    if len(real) == 1:
        return real[0], True
    entry = entries.get(name)
    if entry is None and name.startswith("emb-"):  # a twin the catalogue does not list (yet): the naming convention
        return name[len("emb-"):], True
    return name, bool(entry and entry.embedded)


def published_name(dataset: str) -> str:
    """The column name the published tables use for a report column's dataset (rule 1)."""
    real = real_dataset(dataset)[0]
    entry = catalogue.datasets().get(real)
    return entry.published_name if entry is not None else real


def _is_embedded_model(name: str) -> bool:
    entry = catalogue.models().get(name)
    return bool(entry and entry.is_embedded)


def printed(value: float) -> str:
    """A published number as printed: its decimals (up to two), at least one ("43" -> "43.0")."""
    text = f"{value:.2f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def mean_text(values: list[float]) -> str:
    """The mean of printed numbers to one decimal, rounded as by hand (33.3 and 15.0 -> 24.2, not 24.1)."""
    total = sum((Decimal(printed(v)) for v in values), Decimal(0))
    return str((total / len(values)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def parse_count(text: str | None) -> int | None:
    """'4.2M' -> 4200000; None for '-' or anything else that is not a count."""
    text = (text or "").strip()
    try:
        return int(float(text[:-1]) * _SCALES[text[-1]]) if text[-1:] in _SCALES else int(text)
    except ValueError:
        return None


def _published_column(dataset: str, metric: str | None, printed_columns: set[str]) -> str:
    """Rule 7: (<name>, em) -> <name>_em where the tables print per-metric columns only."""
    per_metric = f"{dataset}_{metric}"
    return per_metric if dataset not in printed_columns and per_metric in printed_columns else dataset


@dataclass(frozen=True)
class Hit:
    value: float
    table: BaselineTable
    row: BaselineRow
    rank: int  # the table's position among the fitting tables

    @property
    def source(self) -> str:
        return f"{self.table.title} [{self.table.id}]: {self.row.source or self.table.source}"


class Matcher:
    """The fitting tables of one report table, and the paper's number for any of its cells."""

    def __init__(self, keys: list[tuple[str, str | None]], tables: list[BaselineTable]):
        printed_columns = {c for t in tables for c in t.columns}
        self.columns = [_published_column(published_name(d), m, printed_columns) for d, m in keys]
        self.synthetic = any(real_dataset(d)[1] for d, _ in keys)
        self.fits = [[t for t in tables if col != "average" and col in t.columns
                      and (metric is None or t.metric_of(col) == metric)]
                     for col, (_, metric) in zip(self.columns, keys)]
        self.scored = [i for i, (_, metric) in enumerate(keys) if metric is not None]  # as the run's Average
        self.tables = [t for t in tables if any(t in fit for fit in self.fits)]

    def cell(self, i: int, key: tuple) -> Hit | None:
        for table in self.fits[i]:
            row = table.find(*key)
            if row is not None and row.value(self.columns[i]) is not None:
                return Hit(row.value(self.columns[i]), table, row, self.tables.index(table))
        return None

    def average(self, hits: list[Hit | None]) -> tuple[float, str, list[Hit]] | None:
        """(value, text, the hits it comes from) per rule 4, or None."""
        used = [hits[i] for i in self.scored]
        if not used or any(h is None for h in used):
            return None
        first = min(used, key=lambda h: h.rank)
        columns = {self.columns[i] for i in self.scored}
        if (all(h.table is first.table for h in used) and set(first.table.columns) - {"average"} == columns
                and first.row.value("average") is not None):
            value = first.row.value("average")
            return value, printed(value), used
        value = statistics.fmean(h.value for h in used)
        return value, mean_text([h.value for h in used]), used

    def keys(self) -> list[tuple]:
        """(model, method, variant) of every published row with a number in these columns, in rank order."""
        seen: dict[tuple, None] = {}
        for table in self.tables:
            for row in table.rows:
                if any(row.value(c) is not None for c, fit in zip(self.columns, self.fits) if table in fit):
                    seen.setdefault((row.model, row.method, row.variant), None)
        return list(seen)


class _Sources:
    """Footnotes of one table, numbered in order of first use."""

    def __init__(self, table: Table):
        self.table = table

    def ref(self, hit: Hit) -> int:
        if hit.source not in self.table.sources:
            self.table.sources.append(hit.source)
        return self.table.sources.index(hit.source) + 1


def _published_row(key: tuple, matcher: Matcher, sources: _Sources) -> Row | None:
    hits = [matcher.cell(i, key) for i in range(len(matcher.columns))]
    found = sorted((h for h in hits if h is not None), key=lambda h: h.rank)
    if not found:
        return None
    refs = tuple(sorted({sources.ref(h) for h in found}))
    first = found[0]
    model, method, variant = key
    label = first.row.label or f"{model} / {method}" + (f" ({variant})" if variant else "")
    average = matcher.average(hits)
    params = next((h.row.params for h in found if h.row.params), None)
    cells = [Cell(printed(h.value), h.value) if h else Cell(NOT_PUBLISHED) for h in hits]
    cells += [Cell(average[1], average[0]) if average else Cell(NOT_PUBLISHED), Cell(params or NOT_PUBLISHED)]
    title = "; ".join(dict.fromkeys(h.source for h in found))
    return Row(label=label, model=model, method_label=label, method=method, cells=cells,
               average=average[0] if average else None, trainable_params=parse_count(params),
               kind=first.row.kind, refs=refs, title=title)


def _published_rows(matcher: Matcher, sources: _Sources, exclude: set[tuple]) -> list[Row]:
    rows = [r for key in matcher.keys() if key not in exclude and (r := _published_row(key, matcher, sources))]
    return sorted(rows, key=lambda r: r.kind != "baseline")  # baselines first; stable: rank order within a kind


def _run_key(row: Row, matcher: Matcher) -> tuple:
    """Rules 3 and 8: the published row a run row meets."""
    key = (row.model, row.method, None)
    variant = next((t.run_variants[row.method] for t in matcher.tables if row.method in t.run_variants), None)
    if variant and not any(matcher.cell(i, key) for i in range(len(matcher.columns))):
        return (row.model, row.method, variant)
    return key


def _annotate(row: Row, matcher: Matcher, sources: _Sources) -> None:
    """Rule 3: the paper's number beside each run cell; an average beside the run's Average."""
    key = _run_key(row, matcher)
    hits = [matcher.cell(i, key) for i in range(len(matcher.columns))]
    for cell, hit in zip(row.cells, hits):
        if hit is not None:
            delta = cell.value - hit.value if cell.value is not None else None
            cell.paper = PaperNote(printed(hit.value), delta, (sources.ref(hit),), hit.source)
    average = matcher.average(hits)
    if average is not None:
        value, text, used = average
        cell = row.cells[len(matcher.columns)]
        delta = cell.value - value if cell.value is not None else None
        cell.paper = PaperNote(text, delta, tuple(sorted({sources.ref(h) for h in used})),
                               "; ".join(dict.fromkeys(h.source for h in used)))


def _orientation_columns(table: Table, matcher: Matcher) -> list[str]:
    labels = table.columns[:len(matcher.columns)]
    real = [r if label == d else f"{r} ({m})" for label, r, (d, m) in zip(labels, matcher.columns, table.keys)]
    return [*real, *table.columns[len(matcher.columns):]]


def add_published(table: Table, tables: list[BaselineTable]) -> Table:
    """Put the published numbers of `tables` (ranked) into `table`, in place; returns it."""
    tables = [t for t in tables if t.train_examples == table.k]  # rule 6
    matcher = Matcher(table.keys, tables)
    if not matcher.tables:
        return table
    for note in dict.fromkeys(t.params_note for t in matcher.tables if t.params_note):  # the papers' counting
        table.params_note += " " + note
    sources = _Sources(table)
    if matcher.synthetic or any(_is_embedded_model(row.model) for row in table.rows):
        table.orientation = _published_rows(matcher, sources, exclude=set())
        table.orientation_columns = _orientation_columns(table, matcher)
        table.notes.append(ORIENTATION_NOTE)
        return table
    for row in table.rows:
        _annotate(row, matcher, sources)
    published = _published_rows(matcher, sources, exclude={_run_key(r, matcher) for r in table.rows})
    table.reference[:0] = published
    if any(c.paper for row in table.rows for c in row.cells):
        table.notes.append(COMPARE_NOTE)
    if published:
        table.notes.append(REFERENCE_NOTE)
    return table


def with_published(report_tables: list[Table], root: Path | None = None) -> list[Table]:
    tables = ranked_tables(root)
    return [add_published(t, tables) for t in report_tables]
