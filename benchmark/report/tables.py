"""From store rows to report tables: one table per eval family, rows model x method, columns datasets.

Every cell says what happened: a number (mean ± std and n when several seeds share it),
"not run" or "failed", never a blank or a 0 that could be mistaken for a result. The paper's
numbers are added to these tables afterwards by benchmark/report/published.py.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field

import pandas as pd

NOT_RUN, FAILED, INCOMPLETE, UNKNOWN = "not run", "failed", "incomplete", "unknown"
NOT_PUBLISHED = "-"  # a published row without a number for the column (never 0)
UNKNOWN_FAMILY = "unknown"  # eval datasets only ever seen in failed trials: no metric names their family


@dataclass(frozen=True)
class PaperNote:
    """The paper's number for a run cell (benchmark/report/published.py) and the difference run - paper."""

    value_text: str  # as printed ("37.5"), or the mean of printed numbers for a computed average
    delta: float | None  # run - paper; None when the run has no number for the cell
    refs: tuple[int, ...]  # the footnotes naming the sources (several for an average over tables)
    title: str  # the sources in words, for a tooltip

    @property
    def delta_text(self) -> str:
        if self.delta is None:
            return ""
        text = f"{self.delta:+.1f}"
        return "+0.0" if text == "-0.0" else text

    @property
    def text(self) -> str:
        """'paper 37.5 [1], +0.4': what the exports append to the run's text."""
        refs = "".join(f" [{r}]" for r in self.refs)
        return f"paper {self.value_text}{refs}" + (f", {self.delta_text}" if self.delta is not None else "")


@dataclass
class Cell:
    text: str
    value: float | None = None  # the mean, used to pick the best and to plot
    best: bool = False
    paper: PaperNote | None = None  # the paper's number for the same cell; None: nothing is shown

    @property
    def kind(self) -> str:
        """CSS class: a number, a failure, or a placeholder for something not measured."""
        if self.text == FAILED:
            return "failed"
        return "missing" if self.text in (NOT_RUN, INCOMPLETE, UNKNOWN, NOT_PUBLISHED) else "value"

    @property
    def export_text(self) -> str:
        """The text of the CSV and Markdown copies: the run's value, then the paper's in brackets."""
        return f"{self.text} ({self.paper.text})" if self.paper else self.text


@dataclass
class Row:
    label: str
    model: str
    method_label: str  # "lora (r=8)": what the plot writes beside the marker
    cells: list[Cell]  # one per dataset column, then Average, then Trainable params
    average: float | None
    trainable_params: int | None
    method: str = ""
    kind: str = "run"  # run | paper | baseline (published rows) | chance
    refs: tuple[int, ...] = ()  # footnotes naming the sources of a published row
    title: str = ""  # those sources in words, for a tooltip

    @property
    def export_label(self) -> str:
        """'GPT-3.5 (baseline) [1]' for a published row; a run's label as it is."""
        if self.kind not in ("paper", "baseline"):
            return self.label
        return f"{self.label} ({self.kind})" + "".join(f" [{r}]" for r in self.refs)


@dataclass
class Table:
    family: str
    columns: list[str]
    rows: list[Row]
    protocols: list[str] = field(default_factory=list)
    reference: list[Row] = field(default_factory=list)  # rows that are not runs: published rows, the chance level
    keys: list[tuple[str, str | None]] = field(default_factory=list)  # (dataset, metric) of each value column
    sources: list[str] = field(default_factory=list)  # footnotes: sources[i] is note [i + 1]
    notes: list[str] = field(default_factory=list)  # how the published numbers were matched
    orientation: list[Row] = field(default_factory=list)  # published rows shown apart (embedded runs)
    orientation_columns: list[str] = field(default_factory=list)


CHANCE_LABEL = "chance (uniform guess over the answer options)"
LETTER_OPTIONS = 5  # AQuA: A-E


def chance_level(dataset: str) -> float | None:
    """Accuracy (%) of a uniform guess among the dataset's answer options: 1/k for choice and letter
    answers, 0 for open numeric answers; None when the catalogue does not say (unknown dataset or metric)."""
    from benchmark.registry import catalogue

    entry = catalogue.datasets().get(dataset)
    if entry is None or entry.metric != "accuracy":
        return None
    if entry.answer == "choice" and entry.labels:
        return 100.0 / len(entry.labels)
    return {"letter": 100.0 / LETTER_OPTIONS, "number": 0.0}.get(entry.answer)


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


@dataclass
class Trial:
    """One trial, from the first of its rows (the metadata repeats on every row)."""

    trial_id: str
    suite: str
    status: str
    error: str
    row_key: tuple
    label_parts: dict  # what may distinguish rows: model, method, args, and the shared-config fields
    eval_data: list[str]
    values: dict  # (eval_data, metric) -> value
    trainable_params: int | None
    total_params: int | None
    meta: dict


def is_null(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _loads(text) -> dict | list:
    return {} if is_null(text) else json.loads(text)


def _int(value) -> int | None:
    return None if is_null(value) else int(value)


def _arg_text(args: dict) -> str:
    return ", ".join(f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in sorted(args.items()))


def collect_trials(frame: pd.DataFrame) -> list[Trial]:
    trials = []
    for trial_id, rows in frame.groupby("trial_id", sort=True):
        first = rows.iloc[0]
        spec = _loads(first["spec"])
        train = _loads(first["train_config"])
        train.pop("seed", None)  # seeds of the same configuration share a row (mean ± std)
        args = _loads(first["method_args"])
        # An embedded rehearsal (`run --embedded`) runs a tiny twin in place of the grid's model: name both,
        # so llama-7b's and llama-13b's rehearsals (both tiny-llama) stay apart and say what they stand for.
        cell = _loads(first["cell"]) if "cell" in first.index else {}
        grid_model = cell.get("model") if isinstance(cell, dict) else None
        stands_for = str(grid_model) if grid_model and grid_model != first["model"] else None
        shared = {"train_data": first["train_data"], "protocol": first["protocol"], **train}
        shared = {k: None if is_null(v) else v for k, v in shared.items()}
        ok_rows = rows[rows["metric"].notna() & rows["value"].notna()] if first["status"] == "ok" else rows.iloc[0:0]
        values = {(r.eval_data, r.metric): float(r.value) for r in ok_rows.itertuples()}
        eval_data = list(spec.get("eval_data") or []) + [d for d, _ in values if d not in (spec.get("eval_data") or [])]
        trials.append(Trial(
            trial_id=str(trial_id), suite=str(first["suite"]), status=str(first["status"]),
            error="" if is_null(first["error"]) else str(first["error"]),
            row_key=(first["model"], stands_for, first["method"], json.dumps(args, sort_keys=True),
                     json.dumps(shared, sort_keys=True, default=str)),
            label_parts={"model": str(first["model"]), "stands_for": stands_for, "method": str(first["method"]),
                         "args": args, "shared": shared},
            eval_data=eval_data, values=values,
            trainable_params=_int(first["trainable_params"]), total_params=_int(first["total_params"]),
            meta={k: first[k] for k in first.index}))
    return trials


def dataset_families(frame: pd.DataFrame) -> dict[str, str]:
    known = frame[frame["eval_data"].notna() & frame["eval_family"].notna()]
    return dict(zip(known["eval_data"], known["eval_family"]))


def format_params(trainable: int | None, total: int | None) -> str:
    if trainable is None:
        return UNKNOWN
    text = human_count(trainable)
    if total:
        pct = 100.0 * trainable / total
        text += f" ({pct:.2f}%)" if pct >= 0.01 else f" ({pct:.1e}%)"
    return text


def human_count(n: int) -> str:
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= scale:
            return f"{n / scale:.1f}{suffix}"
    return str(n)


def _value_cell(values: list[float], failed: int) -> Cell:
    if not values:
        return Cell(FAILED if failed else NOT_RUN)
    mean = statistics.fmean(values)
    text = f"{mean:.1f}" if len(values) == 1 else f"{mean:.1f} ± {statistics.stdev(values):.1f} (n={len(values)})"
    if failed:
        text += f", {failed} failed"
    return Cell(text, mean)


def _labels(trials_by_row: dict[tuple, list[Trial]]) -> dict[tuple, str]:
    """"model / method (key args)", plus any shared setting (train data, lr, ...) that differs between rows."""
    shared = [t[0].label_parts["shared"] for t in trials_by_row.values()]
    varying = sorted({k for s in shared for k in s if len({json.dumps(x.get(k), default=str) for x in shared}) > 1})
    labels = {}
    for key, trials in trials_by_row.items():
        parts = trials[0].label_parts
        model = f"{parts['stands_for']} (as {parts['model']})" if parts.get("stands_for") else parts["model"]
        label = f"{model} / {parts['method']}"
        if parts["args"]:
            label += f" ({_arg_text(parts['args'])})"
        if varying:
            label += " [" + ", ".join(f"{k}={parts['shared'].get(k)}" for k in varying) + "]"
        labels[key] = label
    return labels


def method_label(trial: Trial) -> str:
    args = trial.label_parts["args"]
    return trial.label_parts["method"] + (f" ({_arg_text(args)})" if args else "")


def build_tables(frame: pd.DataFrame) -> list[Table]:
    trials = collect_trials(frame)
    families = dataset_families(frame)
    # Column order: as the suites list their eval datasets (first appearance wins).
    columns_by_family: dict[str, list[tuple[str, str | None]]] = {}
    for trial in trials:
        for dataset in trial.eval_data:
            metrics = [m for d, m in trial.values if d == dataset] or [None]
            columns = columns_by_family.setdefault(families.get(dataset, UNKNOWN_FAMILY), [])
            for metric in metrics:
                if (dataset, metric) not in columns:
                    columns.append((dataset, metric))
    for family, columns in columns_by_family.items():  # a metric seen anywhere replaces the placeholder
        named = {d for d, m in columns if m is not None}
        columns_by_family[family] = [(d, m) for d, m in columns if m is not None or d not in named]
    return [_family_table(family, columns, trials) for family, columns in sorted(columns_by_family.items())]


def _column_label(dataset: str, metric: str | None, columns) -> str:
    several = sum(1 for d, _ in columns if d == dataset) > 1
    return f"{dataset} ({metric})" if several else dataset


def _family_table(family: str, columns: list[tuple[str, str | None]], trials: list[Trial]) -> Table:
    datasets = {d for d, _ in columns}
    by_row: dict[tuple, list[Trial]] = {}
    for trial in trials:
        if datasets & set(trial.eval_data):
            by_row.setdefault(trial.row_key, []).append(trial)
    labels = _labels(by_row)
    rows = []
    for key, row_trials in sorted(by_row.items(), key=lambda item: labels[item[0]]):
        ok = [t for t in row_trials if t.status == "ok"]
        cells = [_value_cell([t.values[(d, m)] for t in ok if (d, m) in t.values],
                             sum(1 for t in row_trials if t.status != "ok" and d in t.eval_data))
                 for d, m in columns]
        average = _average_cell(columns, ok, row_trials, cells)
        params = next((t for t in row_trials if t.trainable_params is not None), row_trials[0])
        rows.append(Row(label=labels[key], model=row_trials[0].label_parts["model"], method_label=method_label(row_trials[0]),
                        cells=[*cells, average, Cell(format_params(params.trainable_params, params.total_params))],
                        average=average.value, trainable_params=params.trainable_params,
                        method=row_trials[0].label_parts["method"]))
    _mark_best(rows, len(columns) + 1)
    protocols = sorted({str(t.label_parts["shared"].get("protocol")) for ts in by_row.values() for t in ts})
    chance = _chance_row(columns)
    return Table(family=family, columns=[*(_column_label(d, m, columns) for d, m in columns), "Average", "Trainable params"],
                 rows=rows, protocols=protocols, reference=[chance] if chance else [], keys=list(columns))


def _average_cell(columns, ok: list[Trial], row_trials: list[Trial], cells: list[Cell]) -> Cell:
    """Mean over the family's columns, per trial, for trials that cover every column; a partial
    average would not be comparable with the other rows, so it is shown as incomplete."""
    scored = [(d, m) for d, m in columns if m is not None]
    complete = [statistics.fmean(t.values[c] for c in scored) for t in ok if scored and all(c in t.values for c in scored)]
    if complete:
        return _value_cell(complete, 0)
    if any(c.value is not None for c in cells):
        return Cell(INCOMPLETE)
    return Cell(FAILED if any(t.status != "ok" for t in row_trials) else NOT_RUN)


def _mark_best(rows: list[Row], n_value_columns: int) -> None:
    for i in range(n_value_columns):
        values = [row.cells[i].value for row in rows if row.cells[i].value is not None]
        if not values:
            continue
        best = max(values)  # every metric here (accuracy, F1, EM, MCC, correlation) is higher-is-better
        for row in rows:
            row.cells[i].best = row.cells[i].value is not None and math.isclose(row.cells[i].value, best)
