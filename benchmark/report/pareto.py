"""The Pareto view of a table: which runs no other run beats on both score and cost.

A run row's score is the table's average; its costs are its trainable parameters, its peak memory
(`peak_memory_bytes`) and its training time (`train_seconds`), each the mean over the row's ok trials that
recorded it (cost.py, whose table shows them with the others). On each cost, a
row is Pareto-optimal when no other row costs at most as much and scores at least as well, strictly better
on one of the two. Costs are drawn on log axes (they span orders of magnitude), where a zero cost has no
place: a row that cost nothing on an axis (zero-shot: no parameter trained) is drawn as a line, as in the
parameters figure, and stays out of that frontier. Rows without a complete average are left out.

plots.plot_pareto draws the three panels; `pareto_frame` is the same data as `<table>-pareto.csv`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from benchmark.report.cells import Row, Table
from benchmark.report.cost import MEASURES, PEAK_MEMORY

GIB = 2**30


@dataclass(frozen=True)
class Axis:
    field: str  # the key of Row.costs (cost.row_costs) holding the cost
    name: str  # "peak memory": the panel's subject, in words
    unit: str  # the axis label's unit
    scale: float  # the stored value divided by this is drawn
    column: str  # the CSV column of the stored value


AXES = (
    Axis("trainable_params", "trainable parameters", "count", 1, "Trainable params"),
    Axis("peak_memory_bytes", "peak memory", "GiB", GIB, "Peak memory (bytes)"),
    Axis("train_seconds", "training time", "s", 1, "Training time (s)"),
)


@dataclass(frozen=True)
class Point:
    row: Row
    cost: float  # as stored (bytes, seconds, parameters)
    score: float


@dataclass
class Panel:
    axis: Axis
    points: list[Point]  # rows with a positive cost and an average
    frontier: list[Point]  # the Pareto-optimal points, cheapest first
    free: list[Row]  # rows that cost nothing on this axis: drawn as lines
    unrecorded: int  # rows with an average but no value for this cost

    @property
    def empty(self) -> bool:
        return not self.points and not self.free


def dominates(a: Point, b: Point) -> bool:
    return a.cost <= b.cost and a.score >= b.score and (a.cost < b.cost or a.score > b.score)


def frontier(points: list[Point]) -> list[Point]:
    """The points no other point dominates, cheapest first (a table has tens of rows: all pairs are compared)."""
    optimal = [p for p in points if not any(dominates(q, p) for q in points)]
    return sorted(optimal, key=lambda p: (p.cost, -p.score))


def panel(table: Table, axis: Axis) -> Panel:
    scored = [row for row in table.rows if row.average is not None]
    points, free, unrecorded = [], [], 0
    for row in scored:
        cost = row.costs.get(axis.field)
        if cost is None:
            unrecorded += 1
        elif cost > 0:
            points.append(Point(row, float(cost), row.average))
        else:
            free.append(row)
    return Panel(axis, points, frontier(points), free, unrecorded)


def panels(table: Table) -> list[Panel]:
    return [panel(table, axis) for axis in AXES]


def pareto_frame(table: Table) -> pd.DataFrame:
    """Every run row: its average, its three costs as stored, and whether it is Pareto-optimal on each
    ("yes" / "no"; empty where the row has no point on that panel: no average, no value, or no cost)."""
    optimal = {axis.field: {id(p.row) for p in panel(table, axis).frontier} for axis in AXES}
    placed = {axis.field: {id(p.row) for p in panel(table, axis).points} for axis in AXES}
    records = []
    for row in table.rows:
        record = {"Model / method": row.label, "Average": row.average}
        for axis in AXES:
            record[axis.column] = row.costs.get(axis.field)
        for axis in AXES:
            on = id(row) in placed[axis.field]
            record[f"Pareto: {axis.name}"] = ("yes" if id(row) in optimal[axis.field] else "no") if on else ""
        records.append(record)
    columns = ["Model / method", "Average", *(a.column for a in AXES), *(f"Pareto: {a.name}" for a in AXES)]
    # Nullable integers, as in cost.cost_frame: a parameter or byte count stays a whole number in the CSV.
    counts = {m.key for m in (*MEASURES, PEAK_MEMORY) if m.integer}
    return pd.DataFrame(records, columns=columns).astype({a.column: "Int64" for a in AXES if a.field in counts})
