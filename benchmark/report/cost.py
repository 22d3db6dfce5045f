"""What each run row of a table cost: parameters, adapter size, time, tokens and memory, beside its score.

Each cost is the mean over the row's ok trials that recorded it: the seeds and learning-rate candidates of
one row train the same model the same way, so they cost alike, and a failed trial stopped early. Results
written before a column was stored have nulls there; a row where no ok trial recorded a cost shows "-"
(never 0, which would read as free). The table page shows `cost_rows`, `<table>-cost.csv` is `cost_frame`
(the values as stored), and pareto.py draws three of these costs against the score.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from benchmark.report.cells import NOT_PUBLISHED, Row, Table
from benchmark.report.trials import Trial, is_null

NOT_RECORDED = NOT_PUBLISHED  # "-": the same mark the tables use for a number nobody has


def human_count(n: float) -> str:
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= scale:
            return f"{n / scale:.1f}{suffix}"
    return str(round(n))


def _size(n: float) -> str:
    for scale, unit in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{round(n)} B"


def _duration(seconds: float) -> str:
    if seconds >= 7200:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.1f} min" if seconds >= 120 else f"{seconds:.1f} s"


@dataclass(frozen=True)
class Measure:
    key: str  # the stored column, and the key of Row.costs
    heading: str  # the page's column
    column: str  # the CSV column (the value as stored: bytes, seconds, counts)
    text: Callable[[float], str]
    integer: bool = False  # a count or a byte size: the mean is rounded (a fraction of a byte means nothing)


MEASURES = (
    Measure("trainable_params", "Trainable params", "Trainable params", human_count, integer=True),
    Measure("adapter_bytes", "Adapter size", "Adapter size (bytes)", _size, integer=True),
    Measure("train_seconds", "Training time", "Training time (s)", _duration),
    Measure("eval_seconds", "Evaluation time", "Evaluation time (s)", _duration),
    Measure("train_tokens", "Tokens seen in training", "Training tokens", human_count, integer=True),
    Measure("train_peak_memory_bytes", "Training memory, peak", "Training peak memory (bytes)", _size, integer=True),
    Measure("train_p99_memory_bytes", "Training memory, p99", "Training p99 memory (bytes)", _size, integer=True),
    Measure("eval_peak_memory_bytes", "Evaluation memory, peak", "Evaluation peak memory (bytes)", _size, integer=True),
    Measure("eval_p99_memory_bytes", "Evaluation memory, p99", "Evaluation p99 memory (bytes)", _size, integer=True),
)
# The larger of the two phase peaks, and the only memory older results recorded: the Pareto figure's memory
# axis, which the cost table does not repeat beside the two phases it comes from.
PEAK_MEMORY = Measure("peak_memory_bytes", "Peak memory", "Peak memory (bytes)", _size, integer=True)


def mean_over_ok(trials: list[Trial], measure: Measure) -> float | None:
    values = [float(t.meta[measure.key]) for t in trials if t.ok and not is_null(t.meta.get(measure.key))]
    if not values:
        return None
    mean = statistics.fmean(values)
    return round(mean) if measure.integer else mean


def row_costs(trials: list[Trial]) -> dict[str, float | None]:
    """Row.costs of a run row: every measure (and the overall peak memory) by its stored column."""
    return {m.key: mean_over_ok(trials, m) for m in (*MEASURES, PEAK_MEMORY)}


def cost_text(row: Row, measure: Measure) -> str:
    value = row.costs.get(measure.key)
    return NOT_RECORDED if value is None else measure.text(value)


def cost_rows(table: Table) -> list[tuple[str, list[str]]]:
    """(row label, its costs as text), for the page: one per run row, in the table's order."""
    return [(row.label, [cost_text(row, m) for m in MEASURES]) for row in table.rows]


def cost_frame(table: Table) -> pd.DataFrame:
    """The same rows with the costs as stored (empty where none recorded), for `<table>-cost.csv`."""
    frame = pd.DataFrame([[row.label, *(row.costs.get(m.key) for m in MEASURES)] for row in table.rows],
                         columns=["Model / method", *(m.column for m in MEASURES)])
    # Nullable integers: a count with a missing value would otherwise be written as a float ("4000000.0").
    return frame.astype({m.column: "Int64" for m in MEASURES if m.integer})
