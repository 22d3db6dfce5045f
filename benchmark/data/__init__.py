"""Datasets: one loader per on-disk format, chosen by the catalogue entry's `format`.

`load_examples(entry, data_root)` reads what a DatasetEntry names. LLM-Adapters files give
`Example` rows (the generation tasks); GLUE/DAPT jsonl give `ClassificationExample`s and SQuAD
gives `SquadExample`s, of the split the entry's role implies (train, else the evaluation split).
Embedded entries live under paths.embedded_data_dir(), generated there on first use.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from benchmark import paths
from benchmark.data.example import Example
from benchmark.data.llm_adapters import HINT, missing_file_error
from benchmark.errors import UserError
from benchmark.registry.catalogue import DatasetEntry

__all__ = ["Example", "load_examples", "resolve_root", "dataset_path", "LOADERS"]

# role -> split read from a folder of split files, per format (GLUE hides test labels; DAPT reports test)
EVAL_SPLIT = {"glue-jsonl": "validation", "dapt-jsonl": "test", "squad-v1": "dev", "hf": "validation"}


def resolve_root(entry: DatasetEntry, data_root: Path | str | None, generate: bool = True) -> Path:
    """The folder entry.path is relative to: the embedded data dir (generated unless generate=False)
    for embedded entries, else data_root."""
    if entry.embedded:
        root = paths.embedded_data_dir()
        if generate:
            from benchmark.data.embedded import ensure

            ensure(root)
        return root
    return Path(data_root if data_root is not None else paths.data_dir())


def dataset_path(entry: DatasetEntry, data_root: Path | str | None, generate: bool = True) -> Path:
    return resolve_root(entry, data_root, generate) / entry.path


def _split(entry: DatasetEntry) -> str:
    return "train" if entry.role == "train" else EVAL_SPLIT[entry.format]


def _require(entry: DatasetEntry, path: Path) -> Path:
    if not path.exists():
        raise missing_file_error(entry.name, path, entry.source_note)
    return path


def _llm_adapters(entry: DatasetEntry, path: Path) -> list:
    from benchmark.data.llm_adapters import load_file

    return load_file(path, entry.name, entry.source_note)


def _split_files(module_name: str) -> Callable[[DatasetEntry, Path], list]:
    """A loader for folder-of-splits formats: the role's split file, or the file entry.path names."""

    def load(entry: DatasetEntry, path: Path) -> list:
        import importlib

        module = importlib.import_module(f"benchmark.data.{module_name}")
        file = path if path.is_file() else _require(entry, module.split_path(path, _split(entry)))
        return module.load_file(file)

    return load


def _hf(entry: DatasetEntry, path: Path) -> list:
    """entry.path = "<hub id or local dataset folder>[:<config>]", read by `datasets` (its cache and offline
    mode apply). Rows are read by their fields: LLM-Adapters records (instruction, input, output, answer),
    SQuAD (context, question, answers) or GLUE-style classification (sentence[s], label)."""
    from benchmark.data.glue_jsonl import row_to_example
    from benchmark.data.squad_v1 import SquadExample

    name, _, config = entry.path.partition(":")
    try:
        import datasets

        rows = datasets.load_dataset(name, config or None, split=_split(entry))
    except Exception as exc:  # offline without a cached copy, unknown id, ...
        raise UserError(f"dataset {entry.name!r}: could not load {entry.path!r} with `datasets` "
                        f"({type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}); {entry.source_note} {HINT}") from None
    if {"instruction", "output"} <= set(rows.column_names):  # the LLM-Adapters record, e.g. a hub mirror of math_10k
        from benchmark.data.llm_adapters import parse_rows

        return parse_rows([{"input": "", **r} for r in rows], Path(entry.path), entry.name)
    if "context" in rows.column_names and "answers" in rows.column_names:
        return [SquadExample(id=str(r["id"]), question=r["question"], context=r["context"],
                             answers=tuple(r["answers"]["text"]), answer_starts=tuple(r["answers"]["answer_start"]),
                             title=r.get("title", "")) for r in rows]
    return [row_to_example(r, str(i), f"{entry.path}: row {i}") for i, r in enumerate(rows)]


LOADERS: dict[str, Callable[[DatasetEntry, Path], list]] = {
    "llm-adapters": _llm_adapters,
    "glue-jsonl": _split_files("glue_jsonl"),
    "dapt-jsonl": _split_files("dapt_jsonl"),
    "squad-v1": _split_files("squad_v1"),
}


def load_examples(entry: DatasetEntry, data_root: Path | str | None) -> list:
    """Every example of the dataset an entry names; UserError (one line) when missing or malformed."""
    if entry.format == "hf":
        return _hf(entry, Path(entry.path))
    if entry.format not in LOADERS:
        raise UserError(f"dataset {entry.name!r}: format {entry.format!r}; allowed: {', '.join([*LOADERS, 'hf'])}")
    path = _require(entry, dataset_path(entry, data_root))
    return LOADERS[entry.format](entry, path)
