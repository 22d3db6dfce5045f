"""CSV, Markdown and LaTeX copies of a report table, with the same numbers as the HTML.

A run cell with a paper number reads "32.0 ± 2.8 (n=2) (paper 37.5 [1], -5.5)"; a published row is
labelled "GPT-3.5 (baseline) [1]"; [n] is a footnote naming the source. The CSV carries each row's
kind and sources in columns of its own; the Markdown lists the footnotes under the table.
"""

from __future__ import annotations

import pandas as pd

from benchmark.report.cells import Row, Table

ROW_COLUMN, SOURCES_COLUMN = "Row", "Sources"
ORIENTATION_HEADING = "Published numbers, for orientation only (not comparable: another model or synthetic data)"


def _row_sources(table: Table, row: Row) -> str:
    refs = sorted(set(row.refs).union(*(c.paper.refs for c in row.cells if c.paper)))
    return "; ".join(f"[{r}] {table.sources[r - 1]}" for r in refs)


def _frame(table: Table, rows: list[Row], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame([[row.export_label, *(c.export_text for c in row.cells), row.kind, _row_sources(table, row)]
                         for row in rows], columns=["Model / method", *columns, ROW_COLUMN, SOURCES_COLUMN])


def table_frame(table: Table) -> pd.DataFrame:
    """The table as displayed (strings), for CSV export: runs, then published rows and the chance level."""
    return _frame(table, [*table.rows, *table.reference], table.columns)


def orientation_frame(table: Table) -> pd.DataFrame | None:
    """The published block of an embedded run (real dataset names as columns); None when there is none."""
    return _frame(table, table.orientation, table.orientation_columns) if table.orientation else None


def _esc(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _markdown_rows(header: list[str], rows: list[Row]) -> list[str]:
    lines = ["| " + " | ".join(_esc(h) for h in header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [(f"**{_esc(c.text)}**" if c.best else _esc(c.text)) + (f" ({_esc(c.paper.text)})" if c.paper else "")
                 for c in row.cells]  # bold marks the run's value only, never the paper's
        lines.append("| " + " | ".join([_esc(row.export_label), *cells]) + " |")
    return lines


def table_markdown(table: Table) -> str:
    lines = _markdown_rows(["Model / method", *table.columns], [*table.rows, *table.reference])
    if table.orientation:
        lines += ["", f"### {ORIENTATION_HEADING}", ""]
        lines += _markdown_rows(["Published row", *table.orientation_columns], table.orientation)
    for note in table.notes:
        lines += ["", _esc(note)]
    if table.sources:
        lines += ["", *(f"[{i}] {_esc(s)}  " for i, s in enumerate(table.sources, start=1))]
    return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "±": r"$\pm$", "–": "--",
                  "<": r"\textless{}", ">": r"\textgreater{}"}


def latex_escape(text: str) -> str:
    """Every character LaTeX treats specially, escaped: a dataset or method name is data, never markup."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def _latex_rows(rows: list[Row]) -> list[str]:
    lines = []
    for row in rows:
        cells = [latex_escape(c.export_text) for c in row.cells]
        cells = [rf"\textbf{{{t}}}" if c.best else t for t, c in zip(cells, row.cells)]
        lines.append(" & ".join([latex_escape(row.export_label), *cells]) + r" \\")
    return lines


def table_latex(table: Table) -> str:
    """A booktabs tabular (run rows, a rule, then published rows and chance), sources as a footnote list."""
    header = " & ".join(latex_escape(h) for h in ["Model / method", *table.columns]) + r" \\"
    lines = [f"% {latex_escape(table.title)} (peft-bench report; needs \\usepackage{{booktabs}})",
             r"\begin{tabular}{l" + "r" * len(table.columns) + "}", r"\toprule", header, r"\midrule",
             *_latex_rows(table.rows)]
    if table.reference:
        lines += [r"\midrule", *_latex_rows(table.reference)]
    lines += [r"\bottomrule", r"\end{tabular}"]
    lines += [f"% [{i}] {latex_escape(s)}" for i, s in enumerate(table.sources, start=1)]
    return "\n".join(lines) + "\n"
