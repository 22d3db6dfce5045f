"""Which report table a dataset belongs to, its title and the column order: the catalogue's data.

An eval entry names its table (`table:`, default its task family) and its position there
(`column:`); the catalogue's `tables:` section gives each table its title. An embedded twin
counts as the dataset it stands in for. A dataset the catalogue does not know (a results folder
written with another catalogue) goes to the page of its stored task family.
"""

from __future__ import annotations

from benchmark.registry import catalogue
from benchmark.registry.catalogue import DatasetEntry
from benchmark.report.published import real_dataset


def _entry(dataset: str) -> DatasetEntry | None:
    return catalogue.datasets().get(real_dataset(dataset)[0])


def group_of(dataset: str, task_family: str) -> str:
    entry = _entry(dataset)
    return entry.table if entry is not None and entry.table else task_family


def title_of(group: str) -> str:
    table = catalogue.tables().get(group)
    return table.title if table is not None else group


def column_order(columns: list[tuple[str, str | None]]) -> list[tuple[str, str | None]]:
    """Numbered columns first in their catalogue order, the others as the suites list them (first
    appearance); a dataset's metrics in the order its entry lists them."""

    def key(item):
        i, (dataset, metric) = item
        entry = _entry(dataset)
        position = entry.column if entry is not None and entry.column is not None else None
        metrics = entry.metrics if entry is not None else ()
        rank = metrics.index(metric) if metric in metrics else len(metrics)
        first = min(j for j, (d, _) in enumerate(columns) if d == dataset)  # a dataset's metrics stay together
        return (position is None, position or 0, first, rank, i)
    return [c for _, c in sorted(enumerate(columns), key=key)]
