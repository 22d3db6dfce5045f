"""`peft-bench data check`: for each dataset a suite needs, where it is looked for and how many
examples it holds, or why it cannot be read."""

from __future__ import annotations

from pathlib import Path

from benchmark.data import dataset_path, load_examples
from benchmark.errors import UserError
from benchmark.registry.catalogue import DatasetEntry


def check(entries: list[DatasetEntry], data_root: Path | str | None) -> list[dict]:
    """One row per entry: name, format, path and n_examples, or name, format, path and error."""
    rows = []
    for entry in entries:
        row = {"name": entry.name, "format": entry.format}
        try:
            row["path"] = entry.path if entry.format == "hf" else str(dataset_path(entry, data_root))
            row["n_examples"] = len(load_examples(entry, data_root))
        except UserError as exc:
            row.setdefault("path", entry.path)
            row["error"] = str(exc)
        rows.append(row)
    return rows
