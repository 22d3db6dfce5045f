"""The HTML report: tables per eval family, figures, CSV/Markdown exports. Reads only the store."""

from benchmark.report.html import build

__all__ = ["build"]
