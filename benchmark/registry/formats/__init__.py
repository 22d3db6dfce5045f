"""Dataset formats: one module per on-disk format, registered by name as methods are.

A format says which splits a folder of its files holds, which split each role reads when the
catalogue entry names none, which task families its records can feed, and how to read one source
into records. The catalogue validates an entry's `format:` and `split:` against this registry when it
loads; `benchmark.data.load_examples` resolves where the files are and calls `get(entry.format).load`.

The formats live beside the catalogue (not in benchmark.data) so the catalogue can check them without
importing the layer above it: they are plain parsers (json, pathlib; `hf` imports `datasets` only
inside load). Adding a format: a module here that defines a class with the attributes of `Format`,
registers an instance, and is imported at the bottom of this file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from benchmark.errors import UserError, did_you_mean

HINT = "(set --data-dir or PEFT_BENCH_DATA; `peft-bench data embedded --out DIR` writes an embedded stand-in)"


@dataclass(frozen=True)
class Source:
    """What one catalogue entry asks a format to read."""

    dataset: str  # the catalogue name: error messages and example ids
    root: Path  # the folder `path` is relative to (the data root, or the embedded data dir)
    path: str  # as written in the catalogue: a file, a folder of splits, or (format hf) a hub id[:config]
    split: str | None  # the split to read from a folder of splits; None for single-file formats
    labelled: bool  # an evaluation set: every record must carry its gold answer
    note: str = ""  # where the real data comes from (the entry's source_note), printed when missing

    @property
    def location(self) -> Path:
        return self.root / self.path


class Format(Protocol):
    name: str  # the catalogue's `format:` value
    # Splits a folder of this format holds; () = the path names one file (no `split:`), None = any name
    # (a Hugging Face dataset defines its own).
    splits: tuple[str, ...] | None
    default_split: dict[str, str]  # role (train | dev | eval) -> the split read when the entry names none
    task_families: tuple[str, ...]  # the catalogue task families whose records this format holds
    local: bool  # path names files on disk (a user catalogue's relative path resolves against its file)

    def load(self, source: Source) -> list: ...


FORMATS: dict[str, Format] = {}


def register(fmt: Format) -> Format:
    if fmt.name in FORMATS:
        raise ValueError(f"format {fmt.name!r} registered twice")
    FORMATS[fmt.name] = fmt
    return fmt


def names() -> list[str]:
    return sorted(FORMATS)


def get(name: str) -> Format:
    if name not in FORMATS:
        raise UserError(f"format {name!r} is not known{did_you_mean(name, FORMATS)}; allowed: {', '.join(names())}")
    return FORMATS[name]


def missing_file_error(dataset: str, path: Path, source_note: str = "") -> UserError:
    note = f"; source: {source_note}" if source_note else ""
    return UserError(f"dataset {dataset!r}: file not found: {path}{note} {HINT}")


def empty_file(path: Path, what: str) -> UserError:
    """A data file with nothing in it (zero bytes, blank lines, an empty list): said as such, not as a parse error."""
    return UserError(f"{path}: empty (no {what}); allowed: a file with at least one")


def require(source: Source) -> Path:
    """The source's file or folder; UserError naming the dataset, the path and the source note when missing."""
    if not source.location.exists():
        raise missing_file_error(source.dataset, source.location, source.note)
    return source.location


def split_file(source: Source, split_path) -> Path:
    """A folder-of-splits source: the file entry.path names, else split_path(folder, split); missing -> UserError."""
    location = require(source)
    file = location if location.is_file() else split_path(location, source.split)
    if not file.exists():
        raise missing_file_error(source.dataset, file, source.note)
    return file


# Registration happens on import; keep these last (they import register from above).
from benchmark.registry.formats import dapt_jsonl, glue_jsonl, hf, llm_adapters, squad_v1, text  # noqa: E402,F401
