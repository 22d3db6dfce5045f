"""The HTML report: a table per suite and catalogue table, figures, CSV/Markdown exports. Reads the store and the catalogue."""

from benchmark.report.html import build

__all__ = ["build"]
