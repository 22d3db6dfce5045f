"""What each run row of a table cost: parameters, adapter size, time, tokens, memory, inference overhead and
forgetting, beside its score.

Each cost is the mean over the row's ok trials that recorded it: the seeds and learning-rate candidates of
one row train the same model the same way, so they cost alike, and a failed trial stopped early. Results
written before a column was stored have nulls there; a row where no ok trial recorded a cost shows "-"
(never 0, which would read as free). The table page shows `cost_rows`, `<table>-cost.csv` is `cost_frame`
(the values as stored), and pareto.py draws three of these costs against the score.

Two costs are derived per trial from a pair of stored columns measured in that trial, then averaged: the
inference overhead (base decode tokens/s over the adapted model's, or the merged model's: 1.25x is a quarter
slower than the base) and forgetting (the adapted model's loss on the general-text corpus less the base's).
The page shows these; the CSV carries them and the stored pairs they come from.
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
    key: str  # the stored column (a derived cost: its name), and the key of Row.costs
    heading: str  # the page's column
    column: str  # the CSV column (the value as stored: bytes, seconds, counts)
    text: Callable[[float], str]
    integer: bool = False  # a count or a byte size: the mean is rounded (a fraction of a byte means nothing)
    # A cost derived from a trial's stored columns (its meta) rather than read from one; None where it lacks them.
    derive: Callable[[dict], float | None] | None = None

    def of(self, trial: Trial) -> float | None:
        if self.derive is not None:
            return self.derive(trial.meta)
        value = trial.meta.get(self.key)
        return None if is_null(value) else float(value)


def _stored(meta: dict, *keys: str) -> list[float] | None:
    values = [meta.get(k) for k in keys]
    return None if any(is_null(v) for v in values) else [float(v) for v in values]


def _slowdown(adapted_key: str) -> Callable[[dict], float | None]:
    """Base decode tokens/s over the adapted (or merged) model's: how many times slower the adapter decodes."""
    def derive(meta: dict) -> float | None:
        pair = _stored(meta, "base_decode_tokens_per_s", adapted_key)
        return pair[0] / pair[1] if pair and pair[1] > 0 else None
    return derive


def _loss_change(meta: dict) -> float | None:
    pair = _stored(meta, "forgetting_base_loss", "forgetting_loss")
    return pair[1] - pair[0] if pair else None


def _ratio(x: float) -> str:
    return f"{x:.2f}x"


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
    Measure("inference_overhead", "Inference overhead", "Inference overhead (base / adapted tokens/s)", _ratio,
            derive=_slowdown("decode_tokens_per_s")),
    Measure("merged_inference_overhead", "Inference overhead, merged", "Merged inference overhead "
            "(base / merged tokens/s)", _ratio, derive=_slowdown("merged_decode_tokens_per_s")),
    Measure("forgetting", "Forgetting (loss change)", "Forgetting (adapted - base loss)", lambda x: f"{x:+.3f}",
            derive=_loss_change),
)
# The stored values the derived costs come from: in the CSV only.
RAW = (
    Measure("base_decode_tokens_per_s", "Decode tokens/s, base", "Base decode tokens/s", lambda x: f"{x:.1f}"),
    Measure("decode_tokens_per_s", "Decode tokens/s, adapted", "Adapted decode tokens/s", lambda x: f"{x:.1f}"),
    Measure("merged_decode_tokens_per_s", "Decode tokens/s, merged", "Merged decode tokens/s", lambda x: f"{x:.1f}"),
    Measure("forgetting_base_loss", "Forgetting corpus loss, base", "Forgetting base loss", lambda x: f"{x:.4f}"),
    Measure("forgetting_loss", "Forgetting corpus loss, adapted", "Forgetting adapted loss", lambda x: f"{x:.4f}"),
)
# The larger of the two phase peaks, and the only memory older results recorded: the Pareto figure's memory
# axis, which the cost table does not repeat beside the two phases it comes from.
PEAK_MEMORY = Measure("peak_memory_bytes", "Peak memory", "Peak memory (bytes)", _size, integer=True)


def mean_over_ok(trials: list[Trial], measure: Measure) -> float | None:
    values = [v for v in (measure.of(t) for t in trials if t.ok) if v is not None]
    if not values:
        return None
    mean = statistics.fmean(values)
    return round(mean) if measure.integer else mean


def row_costs(trials: list[Trial]) -> dict[str, float | None]:
    """Row.costs of a run row: every measure (and the overall peak memory) by its stored column or derived name."""
    return {m.key: mean_over_ok(trials, m) for m in (*MEASURES, *RAW, PEAK_MEMORY)}


def cost_text(row: Row, measure: Measure) -> str:
    value = row.costs.get(measure.key)
    return NOT_RECORDED if value is None else measure.text(value)


def cost_rows(table: Table) -> list[tuple[str, list[str]]]:
    """(row label, its costs as text), for the page: one per run row, in the table's order."""
    return [(row.label, [cost_text(row, m) for m in MEASURES]) for row in table.rows]


def cost_frame(table: Table) -> pd.DataFrame:
    """The same rows with the costs as stored (empty where none recorded), for `<table>-cost.csv`."""
    columns = (*MEASURES, *RAW)
    frame = pd.DataFrame([[row.label, *(row.costs.get(m.key) for m in columns)] for row in table.rows],
                         columns=["Model / method", *(m.column for m in columns)])
    # Nullable integers: a count with a missing value would otherwise be written as a float ("4000000.0").
    return frame.astype({m.column: "Int64" for m in MEASURES if m.integer})
