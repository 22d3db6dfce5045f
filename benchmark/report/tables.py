"""From trials to report tables: one table per paper table, rows model x method, columns datasets.

A table is one suite's trials on one catalogue table (an eval dataset's `table:`, whose title the
catalogue's `tables:` section gives), split by the low-resource K when the suite sweeps it. A row is
one model, method (with its arguments and adaptation stages) and training configuration; its cells follow the
learning-rate selection of selection.py and aggregate seeds as mean ± std (n). A single run gets a
bootstrap 95% interval from its stored predictions (uncertainty.py) when an `interval` callback is
given. The paper's numbers are added afterwards by published.py.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable

import pandas as pd

from benchmark import metrics as metric_table
from benchmark.errors import UserError
from benchmark.registry import catalogue
from benchmark.report import groups, selection
from benchmark.report.cells import FAILED, INCOMPLETE, NOT_RUN, UNKNOWN, UNKNOWN_FAMILY, Cell, Row, Table
from benchmark.report.cost import human_count, row_costs
from benchmark.report.trials import Trial, collect_trials, dataset_families

CHANCE_LABEL = "chance (uniform guess over the answer options)"
PARAMS_NOTE = ("Trainable params: the method's parameters the trial trained (requires_grad on the trained model; "
               "an encoder's task head is trained but not counted, in the count or in the total, as the papers "
               "count), with their share of all parameters.")
ENCODER_TASK_FAMILIES = ("classification", "qa")  # scored by a head, not by decoding: no decoding protocol
# (trial_id, dataset, metric, stored value) -> (low, high) or None
IntervalFn = Callable[[Trial, str, str, float], "tuple[float, float] | None"]


def chance_level(dataset: str) -> float | None:
    """The catalogue entry's chance level (DatasetEntry.chance); None for a dataset it does not know."""
    entry = catalogue.datasets().get(dataset)
    return entry.chance if entry is not None else None


def _chance_row(columns: list[tuple[str, str | None]]) -> Row | None:
    levels = [chance_level(d) if m in (None, "accuracy") else None for d, m in columns]
    if all(v is None for v in levels):
        return None
    known = [v for v in levels if v is not None]
    average = statistics.fmean(known) if len(known) == len(levels) else None
    cells = [Cell(f"{v:.1f}", v) if v is not None else Cell(UNKNOWN) for v in levels]
    cells += [Cell(f"{average:.1f}", average) if average is not None else Cell(UNKNOWN), Cell("-")]
    return Row(label=CHANCE_LABEL, model="", method_label="chance", cells=cells, average=average, trainable_params=None,
               kind="chance")


def format_params(trainable: int | None, total: int | None) -> str:
    if trainable is None:
        return UNKNOWN
    text = human_count(trainable)
    if trainable == 0:  # zero-shot (method none): nothing trained
        return f"{text} (0%)"
    if total:
        pct = 100.0 * trainable / total
        text += f" ({pct:.2f}%)" if pct >= 0.01 else f" ({pct:.1e}%)"
    return text


def _value_cell(values: list[float], failed: int) -> Cell:
    if not values:
        return Cell(FAILED if failed else NOT_RUN)
    mean = statistics.fmean(values)
    text = f"{mean:.1f}" if len(values) == 1 else f"{mean:.1f} ± {statistics.stdev(values):.1f} (n={len(values)})"
    if failed:
        text += f", {failed} failed"
    return Cell(text, mean, values=list(values))


def _page_keys(trial: Trial, families: dict[str, str]) -> dict[tuple, list[str]]:
    """(suite, group, K) -> the trial's datasets on that page."""
    pages: dict[tuple, list[str]] = {}
    for dataset in trial.eval_data:
        group = groups.group_of(dataset, families.get(dataset, UNKNOWN_FAMILY))
        pages.setdefault((trial.suite, group, trial.k), []).append(dataset)
    return pages


def build_tables(frame: pd.DataFrame, interval: IntervalFn | None = None) -> list[Table]:
    trials = collect_trials(frame)
    families = dataset_families(frame)
    columns: dict[tuple, list[tuple[str, str | None]]] = {}
    members: dict[tuple, list[Trial]] = {}
    for trial in trials:
        for page, datasets in _page_keys(trial, families).items():
            members.setdefault(page, []).append(trial)
            cols = columns.setdefault(page, [])
            for dataset in datasets:
                for metric in [m for d, m in trial.values if d == dataset] or [None]:
                    if (dataset, metric) not in cols:
                        cols.append((dataset, metric))
    tables = []
    for page in sorted(columns, key=lambda p: (p[0], p[1], p[2] or 0)):
        named = {d for d, m in columns[page] if m is not None}  # a metric seen anywhere replaces the placeholder
        cols = groups.column_order([(d, m) for d, m in columns[page] if m is not None or d not in named])
        encoder = any(_task_family(d, families) in ENCODER_TASK_FAMILIES for d, _ in cols)
        tables.append(_table(page, cols, members[page], interval, encoder))
    return tables


def _task_family(dataset: str, families: dict[str, str]) -> str | None:
    """The stored task family of a dataset's metrics, else its catalogue entry's (a dataset seen only in failed trials)."""
    entry = catalogue.datasets().get(dataset)
    return families.get(dataset) or (entry.task_family if entry is not None else None)


def _rows(trials: list[Trial]) -> dict[tuple, list[Trial]]:
    """Row key -> trials. Rates and seeds share a row when the rate can be selected on dev numbers;
    otherwise each rate is a row of its own (and its label says so)."""
    loose: dict[tuple, list[Trial]] = {}
    for trial in trials:
        loose.setdefault(trial.row_key(with_lr=False), []).append(trial)
    rows: dict[tuple, list[Trial]] = {}
    for key, members in loose.items():
        if selection.selectable(members):
            rows[key] = members
        else:
            for trial in members:
                rows.setdefault(trial.row_key(with_lr=True), []).append(trial)
    return rows


def _labels(by_row: dict[tuple, list[Trial]]) -> dict[tuple, str]:
    """"model / method (key args)", plus any training setting (train data, lr, ...) that differs between rows."""
    shared = {key: dict(ts[0].shared) for key, ts in by_row.items()}
    loose = [ts[0].row_key(with_lr=False) for ts in by_row.values()]
    for key, ts in by_row.items():
        if loose.count(ts[0].row_key(with_lr=False)) > 1:  # split by rate (no dev numbers): the rate tells rows apart
            shared[key]["learning_rate"] = ts[0].learning_rate
    varying = sorted({k for s in shared.values() for k in s
                      if len({json.dumps(x.get(k), default=str) for x in shared.values()}) > 1})
    labels = {}
    for key, trials in by_row.items():
        label = f"{trials[0].model_label} / {trials[0].method_label}"
        if varying:
            label += " [" + ", ".join(f"{k}={shared[key].get(k)}" for k in varying) + "]"
        labels[key] = label
    return labels


def _cell(row_trials: list[Trial], dataset: str, metric: str | None, interval: IntervalFn | None) -> Cell:
    chosen = selection.select(row_trials, dataset, metric)
    cell = _value_cell(chosen.values, chosen.failed)
    cell.title, cell.trials = chosen.explain(), chosen.trial_ids
    if len(chosen.values) == 1 and interval is not None and metric is not None:
        trial = next(t for t in row_trials if t.trial_id == chosen.trial_ids[0])
        cell.interval = interval(trial, dataset, metric, chosen.values[0])
    return cell


def _table(page: tuple, columns: list[tuple[str, str | None]], trials: list[Trial], interval: IntervalFn | None,
           encoder: bool) -> Table:
    suite, group, k = page
    by_row = _rows(trials)
    labels = _labels(by_row)
    rows = []
    for key, row_trials in sorted(by_row.items(), key=lambda item: labels[item[0]]):
        cells = [_cell(row_trials, d, m, interval) for d, m in columns]
        average = _average_cell(columns, row_trials, cells)
        first = row_trials[0]
        params = next((t for t in row_trials if t.trainable_params is not None), first)
        rows.append(Row(label=labels[key], model=first.model, method_label=first.method_label,
                        cells=[*cells, average, Cell(format_params(params.trainable_params, params.total_params))],
                        average=average.value, trainable_params=params.trainable_params,
                        method=first.published_method, trials=[t.trial_id for t in row_trials],
                        args=dict(first.args), costs=row_costs(row_trials)))
    _mark_best(rows, [m for _, m in columns] + [None])
    # The decoding / extraction protocol means something for generation tasks only; encoder tasks are scored
    # by their heads (the metric is in each column's name).
    protocols = [] if encoder else sorted({str(t.shared.get("protocol")) for t in trials})
    chance = _chance_row(columns)
    title = f"{suite}: {groups.title_of(group)}" + (f", K={k} training examples" if k else "")
    return Table(title=title, columns=[*(_column_label(d, m, columns) for d, m in columns), "Average",
                                        "Trainable params (%)"],
                 rows=rows, protocols=protocols, reference=[chance] if chance else [], keys=list(columns),
                 suite=suite, group=group, k=k,
                 params_note=PARAMS_NOTE)


def _column_label(dataset: str, metric: str | None, columns) -> str:
    several = sum(1 for d, _ in columns if d == dataset) > 1
    return f"{dataset} ({metric})" if several else dataset


def _average_cell(columns, row_trials: list[Trial], cells: list[Cell]) -> Cell:
    """The row's average over the table's columns. Trials that cover every column (the LLM-Adapters grids)
    average per trial, so seeds give mean ± std; trials of one task each (GLUE) give the mean of the column
    values. A partial average would not be comparable with the other rows: it is shown as incomplete."""
    scored = [(d, m) for d, m in columns if m is not None]
    ok = [t for t in row_trials if t.ok]
    searched = len({t.learning_rate for t in row_trials}) > 1
    complete = [statistics.fmean(t.values[c] for c in scored) for t in ok if scored and all(c in t.values for c in scored)]
    if complete and not searched:
        return _value_cell(complete, 0)
    values = [c.value for c, (_, m) in zip(cells, columns) if m is not None]
    if scored and all(v is not None for v in values):
        mean = statistics.fmean(values)
        return Cell(f"{mean:.1f}", mean, title="mean of the column values")
    if any(c.value is not None for c in cells):
        return Cell(INCOMPLETE)
    return Cell(FAILED if any(not t.ok for t in row_trials) else NOT_RUN)


def _higher_is_better(metric: str | None) -> bool:
    """The metric table's direction; the Average column (None) and a metric the table does not know: higher."""
    if metric is None:
        return True
    try:
        return metric_table.get(metric).higher_is_better
    except UserError:  # a results folder written with a metric this version no longer has
        return True


def _mark_best(rows: list[Row], metrics: list[str | None]) -> None:
    """Mark the best value of each value column (its metrics, then the Average) by the metric's direction."""
    for i, metric in enumerate(metrics):
        values = [row.cells[i].value for row in rows if row.cells[i].value is not None]
        if not values:
            continue
        best = max(values) if _higher_is_better(metric) else min(values)
        for row in rows:
            row.cells[i].best = row.cells[i].value is not None and math.isclose(row.cells[i].value, best)
