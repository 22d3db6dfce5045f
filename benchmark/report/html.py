"""build(): read the store, write the report folder.

    index.html                 what was run (suites, versions, trial counts, hardware, compute hours), links
    NN-<table>.html            one page per paper table, with its figures (PNG) and exports (CSV, Markdown, LaTeX;
                               NN-<table>-pareto.csv: the Pareto figure's data; NN-<table>-cost.csv: the cost
                               table's, each run row's mean cost as stored)
    trials/<trial_id>.html     one page per trial (drill-down)
    quirks-<protocol>.html     the quirk ledger of a study, when the results hold quirk variants (quirks.py);
    quirks.csv                 its numbers, one row per quirk and dataset

The pages are self-contained (inline CSS, local PNGs, no script, no CDN), so the folder can be opened
from a file share or a CI artifact. Jinja2 autoescaping is on: dataset names, outputs, errors, labels
and published sources come from data and are escaped.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from benchmark.report.collapse import SEED_SPREAD_POINTS, flag_table
from benchmark.report.cost import MEASURES, NOT_RECORDED, cost_frame, cost_rows
from benchmark.report.drilldown import trial_page
from benchmark.report.exports import ORIENTATION_HEADING, orientation_frame, table_frame, table_latex, table_markdown
from benchmark.report.pareto import pareto_frame
from benchmark.report.plots import write_figures
from benchmark.report.published import with_published
from benchmark.report.quirks import CSV as QUIRKS_CSV
from benchmark.report.quirks import NOT_MEASURED, quirks_frame, studies
from benchmark.report.summary import failed_trials, run_summary, suite_lines
from benchmark.report.tables import build_tables
from benchmark.report.trials import Trial, collect_trials
from benchmark.report.uncertainty import bootstrap_interval
from benchmark.store import Store, safe_name


def _environment() -> Environment:
    return Environment(loader=PackageLoader("benchmark.report", "templates"),
                       autoescape=select_autoescape(enabled_extensions=("html", "j2"), default=True),
                       trim_blocks=True, lstrip_blocks=True)


def _slug(i: int, title: str) -> str:
    """A file name for a table; the number keeps two tables that slug alike apart."""
    return f"{i:02d}-{re.sub(r'[^A-Za-z0-9_-]+', '_', title).strip('_')[:60] or 'table'}"


def trial_file(trial_id: str) -> str:
    return f"trials/{safe_name(trial_id, 'trial_id')}.html"


def _interval_fn(store: Store):
    def interval(trial: Trial, dataset: str, metric: str, value: float):
        try:
            predictions = store.read_predictions(trial.suite, trial.trial_id, dataset)
        except (FileNotFoundError, ValueError):
            return None
        return bootstrap_interval(predictions, metric, value)
    return interval


def _clear(out: Path) -> None:
    """Remove what an earlier build wrote (pages, figures, exports), so nothing stale is linked or found."""
    for pattern in ("[0-9][0-9]-*", "trials/*.html", "quirks-*.html", QUIRKS_CSV):
        for path in out.glob(pattern):
            path.unlink()


def _write_table(env: Environment, table, i: int, out: Path) -> dict:
    slug = _slug(i, table.title)
    section = {"table": table, "page": f"{slug}.html", "csv": f"{slug}.csv", "markdown": f"{slug}.md",
               "latex": f"{slug}.tex", "published_csv": None, "pareto_csv": f"{slug}-pareto.csv",
               "cost_csv": f"{slug}-cost.csv", "flags": flag_table(table)}
    table_frame(table).to_csv(out / section["csv"], index=False)
    pareto_frame(table).to_csv(out / section["pareto_csv"], index=False)
    cost_frame(table).to_csv(out / section["cost_csv"], index=False)
    published = orientation_frame(table)
    if published is not None:
        section["published_csv"] = f"{slug}-published.csv"
        published.to_csv(out / section["published_csv"], index=False)
    (out / section["markdown"]).write_text(f"## {table.title}\n\n" + table_markdown(table), encoding="utf-8")
    (out / section["latex"]).write_text(table_latex(table), encoding="utf-8")
    section["figures"] = write_figures(table, out, slug)
    html = env.get_template("table.html.j2").render(
        title=table.title, table=table, section=section, orientation_heading=ORIENTATION_HEADING, link=trial_file,
        spread=SEED_SPREAD_POINTS, cost_headings=[m.heading for m in MEASURES], costs=cost_rows(table),
        not_recorded=NOT_RECORDED)
    (out / section["page"]).write_text(html, encoding="utf-8")
    return section


def _write_quirks(env: Environment, store: Store, trials: list[Trial], suites: list[str], out: Path) -> list:
    """The quirk ledger's pages and CSV; nothing when no quirk variant or rescore record is stored."""
    found = studies(store, trials, store.read_evals(suites))
    if found:
        quirks_frame(found).to_csv(out / QUIRKS_CSV, index=False)
    for study in found:
        page = env.get_template("quirks.html.j2").render(title=study.title, study=study, csv=QUIRKS_CSV,
                                                         not_measured=NOT_MEASURED)
        (out / study.page).write_text(page, encoding="utf-8")
    return found


def build(suites: list[str], results_root, out_dir, title: str | None = None) -> Path:
    out = Path(out_dir)
    (out / "trials").mkdir(parents=True, exist_ok=True)
    _clear(out)
    store = Store(results_root)
    frame = store.read(list(suites))
    trials = collect_trials(frame)
    env = _environment()
    tables = with_published(build_tables(frame, _interval_fn(store)))
    sections = [_write_table(env, table, i, out) for i, table in enumerate(tables, start=1)]
    for trial in trials:
        context = trial_page(trial, frame[frame["trial_id"] == trial.trial_id], store)
        page = env.get_template("trial.html.j2").render(title=f"trial {trial.trial_id}", **context)
        (out / trial_file(trial.trial_id)).write_text(page, encoding="utf-8")
    ledger = _write_quirks(env, store, trials, list(suites), out)
    html = env.get_template("index.html.j2").render(
        title=title or "peft-bench report: " + ", ".join(suites),
        generated=datetime.now(UTC).isoformat(timespec="seconds"), suites=suite_lines(list(suites), trials),
        summary=run_summary(list(suites), trials), failed=failed_trials(trials), sections=sections,
        spread=SEED_SPREAD_POINTS, quirk_studies=ledger, quirks_csv=QUIRKS_CSV)
    index = out / "index.html"
    index.write_text(html, encoding="utf-8")
    return index
