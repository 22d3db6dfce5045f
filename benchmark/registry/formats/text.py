"""Unlabelled text for masked-LM stages (DAPT corpora, TAPT text): format `text`.

A .txt file holds one document a line (blank lines skipped); a .jsonl file one object a line with a
string field `text` (other fields ignored, blank lines skipped). Both give a list of documents.
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmark.errors import UserError
from benchmark.registry.formats import Source, empty_file, register, require

SUFFIXES = (".txt", ".jsonl")


def _lines(path: Path):
    """(line number, decoded line) of a UTF-8 file, read line by line so a bad byte names its line."""
    with path.open("rb") as handle:
        for n, raw in enumerate(handle, start=1):
            try:
                yield n, raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as exc:
                raise UserError(f"{path}: line {n}: not valid UTF-8 ({exc.reason} at byte {exc.start}); "
                                "allowed: UTF-8 text") from None


def load_file(path: Path) -> list[str]:
    path = Path(path)
    if path.suffix not in SUFFIXES:
        raise UserError(f"{path}: text corpus must be a file ending in {' or '.join(SUFFIXES)} "
                        "(one document a line, or JSON lines with a string field 'text')")
    if not path.is_file():
        raise UserError(f"file not found: {path}")
    docs = []
    for n, line in _lines(path):
        if not line.strip():
            continue
        if path.suffix == ".txt":
            docs.append(line)
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}: line {n}: not valid JSON: {exc}") from None
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            got = type(row).__name__ if not isinstance(row, dict) else f"text={row.get('text')!r}"[:80]
            raise UserError(f"{path}: line {n}: field 'text': got {got}; allowed: an object with a string field 'text'")
        if row["text"].strip():
            docs.append(row["text"])
    if not docs:
        raise empty_file(path, "documents: every line is blank")
    return docs


class Text:
    name = "text"
    splits = ()  # one file of documents
    local = True  # path names files on disk
    default_split: dict[str, str] = {}
    task_families = ("corpus",)  # unlabelled: feeds masked-LM stages, never a task

    def load(self, source: Source) -> list[str]:
        return load_file(require(source))


register(Text())
