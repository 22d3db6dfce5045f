"""One figure per eval family: average accuracy against trainable parameters (log scale).

Figures are drawn on an explicit Agg canvas rather than through pyplot, so building a report
never changes the process-wide matplotlib backend or leaks figures.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from benchmark.report.tables import Table


def _short(label: str, limit: int = 28) -> str:
    """A marker's label: the method with its arguments when short, else the method name alone (the table has the rest)."""
    return label if len(label) <= limit else label.split(" (", 1)[0]


def plot_family(table: Table, path: Path) -> bool:
    """Write the PNG; False (no file) when no row has both an average and a parameter count."""
    points = [row for row in table.rows if row.average is not None and row.trainable_params]
    if not points:
        return False
    figure = Figure(figsize=(7, 4.5), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    models = sorted({row.model for row in points})
    markers = "osD^v<>ph*"
    for i, model in enumerate(models):
        rows = [row for row in points if row.model == model]
        axes.scatter([r.trainable_params for r in rows], [r.average for r in rows], marker=markers[i % len(markers)],
                     s=45, label=model)
        for row in rows:
            axes.annotate(_short(row.method_label), (row.trainable_params, row.average), textcoords="offset points",
                          xytext=(5, 4), fontsize=8)
    for reference in table.reference:
        if reference.average is not None:
            axes.axhline(reference.average, linestyle="--", color="grey", linewidth=1, label=reference.method_label)
    axes.set_xscale("log")
    axes.set_xlabel("trainable parameters (log scale)")
    axes.set_ylabel("average score (%)")
    axes.set_title(f"{table.family}: average score vs trainable parameters")
    axes.grid(True, which="major", alpha=0.3)
    axes.legend(fontsize=8, title="model")
    figure.tight_layout()
    figure.savefig(path, format="png")
    return True
