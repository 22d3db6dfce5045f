"""build(): read the store, write index.html with its figures and the tables as CSV / Markdown.

The page is self-contained (inline CSS, local PNGs, no CDN) so it can be mailed or archived.
Jinja2 autoescaping is on: dataset names, errors, labels and published sources come from data and
are escaped. The paper's numbers are put beside the run's by benchmark/report/published.py.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from benchmark.report.exports import ORIENTATION_HEADING, orientation_frame, table_frame, table_markdown
from benchmark.report.plots import plot_family
from benchmark.report.published import with_published
from benchmark.report.summary import failed_trials, run_summary
from benchmark.report.tables import build_tables, collect_trials
from benchmark.store import Store


def _environment() -> Environment:
    return Environment(loader=PackageLoader("benchmark.report", "templates"),
                       autoescape=select_autoescape(enabled_extensions=("html", "j2"), default=True),
                       trim_blocks=True, lstrip_blocks=True)


def _slug(i: int, family: str) -> str:
    """A file name for a family; the index keeps two families that slug alike apart."""
    return f"{i:02d}-{re.sub(r'[^A-Za-z0-9_-]+', '_', family).strip('_') or 'family'}"


def build(suites: list[str], results_root, out_dir) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    frame = Store(results_root).read(list(suites))
    trials = collect_trials(frame)
    sections = []
    for i, table in enumerate(with_published(build_tables(frame)), start=1):
        slug = _slug(i, table.family)
        table_frame(table).to_csv(out / f"{slug}.csv", index=False)
        published = orientation_frame(table)
        published_csv = out / f"{slug}-published.csv"
        if published is not None:
            published.to_csv(published_csv, index=False)
        else:
            published_csv.unlink(missing_ok=True)  # stale from an earlier build
        (out / f"{slug}.md").write_text(f"## {table.family}\n\n" + table_markdown(table), encoding="utf-8")
        figure = f"{slug}.png"
        has_figure = plot_family(table, out / figure)
        if not has_figure:
            (out / figure).unlink(missing_ok=True)  # a stale figure from an earlier build would mislead
        sections.append({"table": table, "figure": figure if has_figure else None,
                         "csv": f"{slug}.csv", "markdown": f"{slug}.md",
                         "published_csv": published_csv.name if published is not None else None})
    html = _environment().get_template("index.html.j2").render(
        title="peft-bench report: " + ", ".join(suites),
        generated=datetime.now(UTC).isoformat(timespec="seconds"),
        summary=run_summary(list(suites), trials), failed=failed_trials(trials), sections=sections,
        orientation_heading=ORIENTATION_HEADING)
    index = out / "index.html"
    index.write_text(html, encoding="utf-8")
    return index
