"""DAPT-style jsonl (Gururangan et al. 2020): <task>/{train,dev,test}.jsonl, rows {text, label}
with string labels."""

from __future__ import annotations

from pathlib import Path

from benchmark.errors import UserError
from benchmark.registry.formats import Source, register, split_file
from benchmark.registry.formats.glue_jsonl import ClassificationExample, read_jsonl

SPLITS = ("train", "dev", "test")


def split_path(root: Path, split: str) -> Path:
    if split not in SPLITS:
        raise UserError(f"DAPT split {split!r}; allowed: {', '.join(SPLITS)}")
    return Path(root) / f"{split}.jsonl"


def load_file(path: Path) -> list[ClassificationExample]:
    out = []
    for i, row in enumerate(read_jsonl(path)):
        for key in ("text", "label"):
            if key not in row:
                raise UserError(f"{path}: row {i}: missing field {key!r} (required: text, label)")
        # str() would silently turn null, a list or true into a text or a class of its own.
        if not isinstance(row["text"], str):
            raise UserError(f"{path}: row {i}: field 'text': got {row['text']!r}; allowed: a string")
        label = row["label"]
        if isinstance(label, bool) or not isinstance(label, str | int) or not str(label).strip():
            raise UserError(f"{path}: row {i}: field 'label': got {label!r}; allowed: a non-empty class name")
        out.append(ClassificationExample(id=str(row.get("id", i)), text=row["text"], text_pair=None,
                                         label=str(row["label"])))
    return out


class DaptJsonl:
    name = "dapt-jsonl"
    splits = SPLITS
    local = True  # path names files on disk
    default_split = {"train": "train", "dev": "dev", "eval": "test"}  # DAPT reports its test split
    task_families = ("classification",)

    def load(self, source: Source) -> list[ClassificationExample]:
        return load_file(split_file(source, split_path))


register(DaptJsonl())
