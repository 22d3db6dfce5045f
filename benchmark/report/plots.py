"""The report's figures (PNG): score vs trainable parameters, the Pareto view of score vs three costs, ablation
lines and bars, a difference heatmap.

Each function writes one PNG and returns its alt text, or None (and no file) when the table has
nothing to draw. The alt text says what the figure shows; the numbers are in the table beside it.

Figures are drawn on an explicit Agg canvas rather than through pyplot, so building a report
never changes the process-wide matplotlib backend or leaks figures.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from benchmark.report import pareto
from benchmark.report.cells import Table


def _short(label: str, limit: int = 28) -> str:
    """A marker's label: the method with its arguments when short, else the method name alone (the table has the rest)."""
    return label if len(label) <= limit else label.split(" (", 1)[0]


def plot_params(table: Table, path: Path) -> str | None:
    """Average score against trainable parameters (log x); None when no run row has both.

    The paper's rows that print a parameter count are drawn as hollow markers labelled "paper";
    baselines, the chance level and runs that trained nothing (zero-shot) as horizontal lines. Neither of the first
    two is ever drawn as a run.
    """
    points = [row for row in table.rows if row.average is not None and row.trainable_params]
    if not points:
        return None
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
    for row in table.rows:  # a run that trained nothing (zero-shot) has no place on a log axis: a line, as baselines
        if row.trainable_params == 0 and row.average is not None:
            axes.axhline(row.average, linestyle="-.", color="grey", linewidth=1, label=f"{row.label} (nothing trained)")
    for reference in table.reference:
        if reference.kind in ("baseline", "chance") and reference.average is not None:
            axes.axhline(reference.average, linestyle="--" if reference.kind == "chance" else ":", color="grey",
                         linewidth=1, label=reference.method_label if reference.kind == "chance"
                         else f"{_short(reference.label)} (baseline)")
    axes.set_xscale("log")
    axes.set_xlabel("trainable parameters (log scale)")
    axes.set_ylabel("average score (%)")
    axes.set_title(f"{table.title}: average score vs trainable parameters")
    axes.grid(True, which="major", alpha=0.3)
    axes.legend(fontsize=8, title="model")
    figure.tight_layout()
    figure.savefig(path, format="png")
    return (f"{table.title}: average score of each model and method plotted against its number of trainable "
            "parameters (log scale)")


def _canvas(width: float, height: float):
    figure = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(figure)
    return figure


def _value_text(value) -> str:
    return "+".join(map(str, value)) if isinstance(value, list) else str(value)


def sweeps(table: Table) -> dict[tuple[str, str], list]:
    """(method, argument) -> the run rows of that method that differ in that argument only.

    An ablation varies one method argument at a time (bottleneck size, LoRA r, prefix tokens,
    target modules); rows of a method whose other arguments agree form one sweep."""
    found: dict[tuple[str, str], list] = {}
    for method in dict.fromkeys(r.method for r in table.rows):
        rows = [r for r in table.rows if r.method == method and r.average is not None]
        keys = sorted({k for r in rows for k in r.args})
        for key in keys:
            values = {json.dumps(r.args.get(key), sort_keys=True) for r in rows}
            fixed = {json.dumps({k: v for k, v in r.args.items() if k != key and k != "alpha"}, sort_keys=True)
                     for r in rows}  # LoRA's alpha follows r (alpha = 2r) in the grid, not a second axis
            if len(values) > 1 and len(fixed) == 1:
                found[(method, key)] = rows
    return found


def plot_sweep_lines(table: Table, path: Path) -> str | None:
    """Numeric sweeps (bottleneck size, r, virtual tokens) as lines: average score against the value."""
    numeric = {k: rows for k, rows in sweeps(table).items()
               if all(isinstance(r.args.get(k[1]), int | float) and not isinstance(r.args.get(k[1]), bool) for r in rows)}
    if not numeric:
        return None
    figure = _canvas(7, 4.5)
    axes = figure.add_subplot()
    for (method, key), rows in numeric.items():
        rows = sorted(rows, key=lambda r: r.args[key])
        axes.plot([r.args[key] for r in rows], [r.average for r in rows], marker="o", label=f"{method}: {key}")
    axes.set_xscale("log", base=2)
    axes.set_xlabel("swept value (log2 scale)")
    axes.set_ylabel("average score (%)")
    axes.set_title(f"{table.title}: hyper-parameter sweeps")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, format="png")
    names = "; ".join(f"{m} {k}" for m, k in numeric)
    return f"{table.title}: average score as one setting varies, a line per sweep ({names})"


def plot_sweep_bars(table: Table, path: Path) -> str | None:
    """Non-numeric sweeps (placement: target modules) as grouped bars: a group per method, a bar per value."""
    groups = {k: rows for k, rows in sweeps(table).items()
              if not all(isinstance(r.args.get(k[1]), int | float) for r in rows)}
    if not groups:
        return None
    figure = _canvas(max(6.0, 1.6 * sum(len(r) for r in groups.values())), 4.8)
    axes = figure.add_subplot()
    x = 0.0
    ticks, labels = [], []
    for (method, key), rows in groups.items():
        for i, row in enumerate(rows):
            bar = axes.bar(x + i, row.average, width=0.8, color=f"C{i % 10}")
            axes.bar_label(bar, labels=[f"{row.average:.1f}"], fontsize=7)
            ticks.append(x + i)
            labels.append(f"{method}\n{_value_text(row.args.get(key))}")
        x += len(rows) + 1
    axes.set_xticks(ticks, labels, fontsize=7, rotation=30, ha="right")
    axes.set_ylabel("average score (%)")
    axes.set_title(f"{table.title}: placement ablation")
    axes.grid(True, axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, format="png")
    names = "; ".join(f"{m} by {k}" for m, k in groups)
    return f"{table.title}: average score of each variant as grouped bars ({names})"


def plot_delta_heatmap(table: Table, path: Path) -> str | None:
    """Datasets x run rows, coloured by this run minus the paper (blue above, red below); blank where unknown."""
    n = len(table.keys)
    rows = [r for r in table.rows if any(c.paper and c.paper.delta is not None for c in r.cells[:n + 1])]
    if not rows:
        return None
    grid = np.array([[c.paper.delta if c.paper and c.paper.delta is not None else np.nan for c in r.cells[:n + 1]]
                     for r in rows], dtype=float)
    limit = max(1.0, float(np.nanmax(np.abs(grid))))
    figure = _canvas(max(6.0, 0.9 * (n + 1) + 3), max(2.5, 0.45 * len(rows) + 1.8))
    axes = figure.add_subplot()
    image = axes.imshow(np.ma.masked_invalid(grid), cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto")
    for (i, j), value in np.ndenumerate(grid):
        if not np.isnan(value):
            axes.text(j, i, f"{value:+.1f}", ha="center", va="center", fontsize=7)
    axes.set_xticks(range(n + 1), table.columns[:n + 1], rotation=30, ha="right", fontsize=8)
    axes.set_yticks(range(len(rows)), [_short(r.label, 40) for r in rows], fontsize=8)
    figure.colorbar(image, ax=axes, label="this run - paper (points)")
    axes.set_title(f"{table.title}: difference to the paper")
    figure.tight_layout()
    figure.savefig(path, format="png")
    return (f"{table.title}: heatmap of datasets by method, each cell this run's score minus the paper's "
            "(blue: above the paper, red: below; empty: no paper number)")


def _run_name(row, models: int) -> str:
    """A frontier point's label: the method, with the model when the table has several."""
    return f"{row.model} / {_short(row.method_label)}" if models > 1 else _short(row.method_label)


def _draw_panel(axes, panel: pareto.Panel, models: int) -> str:
    """One cost's panel: every run, the Pareto-optimal ones joined and named; returns their names for the alt text."""
    axis = panel.axis
    if panel.empty:  # results written before the cost was stored: say so rather than draw an empty axis
        axes.text(0.5, 0.5, f"{axis.name}: not recorded\nfor any run with an average", ha="center", va="center",
                  transform=axes.transAxes, fontsize=10, color="dimgrey")
        axes.set_axis_off()
        return "not recorded for any run"
    optimal = {id(p.row) for p in panel.frontier}
    others = [p for p in panel.points if id(p.row) not in optimal]
    if others:
        axes.scatter([p.cost / axis.scale for p in others], [p.score for p in others], s=40, facecolors="none",
                     edgecolors="grey", label="dominated")
    if panel.frontier:
        axes.plot([p.cost / axis.scale for p in panel.frontier], [p.score for p in panel.frontier], marker="o",
                  color="C0", label="Pareto-optimal")
        for i, p in enumerate(panel.frontier):  # neighbours alternate above and below
            axes.annotate(_run_name(p.row, models), (p.cost / axis.scale, p.score), textcoords="offset points",
                          xytext=(5, 5 if i % 2 == 0 else -11), fontsize=8)
        axes.set_xscale("log")
        axes.xaxis.set_minor_formatter(NullFormatter())  # a narrow panel: labelled minor ticks overlap
    for row in panel.free:
        axes.axhline(row.average, linestyle="-.", color="grey", linewidth=1, label=f"{_short(row.label)} (no {axis.name})")
    title = axis.name + (f" ({panel.unrecorded} run(s) without it not shown)" if panel.unrecorded else "")
    axes.set_title(title, fontsize=9)
    axes.set_xlabel(f"{axis.name} ({axis.unit}, log scale)")
    axes.grid(True, which="major", alpha=0.3)
    axes.legend(fontsize=7)
    return ", ".join(p.row.label for p in panel.frontier) or "no run with a positive value"


def pareto_figure(table: Table):
    """(figure, alt text), or None when no run row has an average."""
    if not any(row.average is not None for row in table.rows):
        return None
    panels = pareto.panels(table)
    figure = _canvas(15, 4.8)
    models = len({row.model for row in table.rows})
    named = []
    for axes, panel in zip(figure.subplots(1, len(panels)), panels):
        named.append(f"{panel.axis.name}: {_draw_panel(axes, panel, models)}")
        axes.set_ylabel("average score (%)")
    figure.suptitle(f"{table.title}: average score vs cost (Pareto-optimal runs joined)", fontsize=10)
    figure.tight_layout()
    alt = (f"{table.title}: average score against trainable parameters, peak memory and training time (three "
           f"panels, log scale); the Pareto-optimal runs joined by a line and named. " + "; ".join(named))
    return figure, alt


def plot_pareto(table: Table, path: Path) -> str | None:
    drawn = pareto_figure(table)
    if drawn is None:
        return None
    figure, alt = drawn
    figure.savefig(path, format="png")
    return alt


FIGURES = (("params", plot_params), ("pareto", plot_pareto), ("sweep", plot_sweep_lines), ("placement", plot_sweep_bars),
           ("delta", plot_delta_heatmap))


def write_figures(table: Table, out: Path, slug: str) -> list[dict]:
    """Every figure the table supports, as {file, alt}; stale files of an earlier build are removed."""
    figures = []
    for name, draw in FIGURES:
        path = out / f"{slug}-{name}.png"
        alt = draw(table, path)
        if alt:
            figures.append({"file": path.name, "alt": alt})
        else:
            path.unlink(missing_ok=True)  # a figure left from an earlier build would mislead
    return figures
