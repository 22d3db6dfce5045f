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
    """Write the PNG; False (no file) when no run row has both an average and a parameter count.

    The paper's rows that print a parameter count are drawn as hollow markers labelled "paper";
    baselines and the chance level as horizontal lines. Neither is ever drawn as a run.
    """
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
    paper = [row for row in table.reference if row.kind == "paper" and row.average is not None and row.trainable_params]
    if paper:
        axes.scatter([r.trainable_params for r in paper], [r.average for r in paper], marker="o", s=55,
                     facecolors="none", edgecolors="black", linewidths=1.2, label="paper")
        for i, row in enumerate(sorted(paper, key=lambda r: r.trainable_params)):  # neighbours: above, below
            axes.annotate(_short(row.label), (row.trainable_params, row.average), textcoords="offset points",
                          xytext=(5, 4 if i % 2 else -10), fontsize=7, color="dimgrey")
    for reference in table.reference:
        if reference.kind in ("baseline", "chance") and reference.average is not None:
            axes.axhline(reference.average, linestyle="--" if reference.kind == "chance" else ":", color="grey",
                         linewidth=1, label=reference.method_label if reference.kind == "chance"
                         else f"{_short(reference.label)} (baseline)")
    axes.set_xscale("log")
    axes.set_xlabel("trainable parameters (log scale)")
    axes.set_ylabel("average score (%)")
    axes.set_title(f"{table.family}: average score vs trainable parameters")
    axes.grid(True, which="major", alpha=0.3)
    axes.legend(fontsize=8, title="model")
    figure.tight_layout()
    figure.savefig(path, format="png")
    return True
