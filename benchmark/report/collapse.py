"""Collapsed and unstable runs: cells a reader should not take at face value, flagged where they are shown.

A dataset cell is flagged
- collapsed, when one of its seeds scores at or below the dataset's chance level: the table's chance row
  (tables.py, from the catalogue's answer options: 1/k for k options, 0 for an open answer such as a number;
  columns scored by another metric than accuracy have none, so only the spread applies to them);
- unstable, when its seeds spread more than SEED_SPREAD_POINTS (max - min of the seeds' scores).

Reruns of the LLM-Adapters protocol report such collapses (11.5 on WinoGrande, whose chance is 50), and a
mean over seeds hides one seed that collapsed. The flags sit on the cells (a marker whose tooltip says
why) and each one is listed on the index page.
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmark.report.cells import Cell, Table

SEED_SPREAD_POINTS = 10.0  # percent points, max - min over the seeds of one cell; more is flagged unstable
_EPS = 1e-9  # a score stored as 20.000000001 for chance 20 is at chance


@dataclass(frozen=True)
class Flag:
    """One flagged cell, as the index lists it."""

    row: str
    dataset: str  # the column's label
    score: str  # the cell's text
    chance: str  # "-" where the column has no chance level
    why: str


def reasons(values: list[float], chance: float | None) -> list[str]:
    """Why the seeds' values of one cell are flagged: "collapsed: ..." and/or "unstable: ..."; [] when neither."""
    found = []
    if chance is not None:
        low = [v for v in values if v <= chance + _EPS]
        if low and len(values) == 1:
            found.append(f"collapsed: {low[0]:.1f} is at or below the chance level {chance:.1f}")
        elif low:
            found.append(f"collapsed: {len(low)} of {len(values)} seeds at or below the chance level {chance:.1f}: "
                         + ", ".join(f"{v:.1f}" for v in low))
    if len(values) > 1 and max(values) - min(values) > SEED_SPREAD_POINTS:
        found.append(f"unstable: the {len(values)} seeds spread {max(values) - min(values):.1f} points "
                     f"({min(values):.1f} to {max(values):.1f}; more than {SEED_SPREAD_POINTS:g} is flagged)")
    return found


def _chance_cells(table: Table) -> list[Cell] | None:
    return next((row.cells for row in table.reference if row.kind == "chance"), None)


def flag_table(table: Table) -> list[Flag]:
    """Set the flags of the table's run cells (dataset columns; the average is theirs combined) and list them."""
    chance_cells = _chance_cells(table)
    flags = []
    for row in table.rows:
        for i in range(len(table.keys)):
            cell = row.cells[i]
            chance = chance_cells[i].value if chance_cells is not None else None
            cell.flags = reasons(cell.values, chance)
            if cell.flags:
                flags.append(Flag(row.label, table.columns[i], cell.text, "-" if chance is None else f"{chance:.1f}",
                                  "; ".join(cell.flags)))
    return flags
