"""GLUE-style jsonl: <task>/{train,validation,test}.jsonl with the HF nyu-mll/glue field names
(sentence, or sentence1/sentence2 (also question/premise/hypothesis pairs), label, idx).

The split names are HF's: MNLI's dev and test files are validation_matched / validation_mismatched /
test_matched / test_mismatched.jsonl (its catalogue entries pick one with `split:`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from benchmark.errors import UserError
from benchmark.registry.formats import Source, empty_file, register, split_file

SPLITS = ("train", "validation", "test", "validation_matched", "validation_mismatched", "test_matched",
          "test_mismatched")
# (first text field, second text field or None), tried in order: the GLUE configs' names
TEXT_FIELDS = (("sentence1", "sentence2"), ("question1", "question2"), ("premise", "hypothesis"),
               ("question", "sentence"), ("sentence", None), ("text", None))


@dataclass(frozen=True)
class ClassificationExample:
    id: str
    text: str
    text_pair: str | None
    label: int | float | str | None  # None where the split hides its labels (GLUE test: -1)


def read_jsonl(path: Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"file not found: {path}")
    rows = []
    # Decoded line by line so a bad byte is reported with its line number.
    for n, raw in enumerate(path.read_bytes().splitlines(), start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UserError(f"{path}: line {n}: not UTF-8 ({exc.reason} at byte {exc.start} of the line)") from None
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}: line {n}: not valid JSON: {exc}") from None
        if not isinstance(row, dict):
            raise UserError(f"{path}: line {n}: expected an object, got {type(row).__name__}")
        rows.append(row)
    if not rows:
        raise empty_file(path, "rows: every line is blank")
    return rows


def row_to_example(row: dict, fallback_id: str, where: str) -> ClassificationExample:
    for first, second in TEXT_FIELDS:
        if first in row and (second is None or second in row):
            break
    else:
        raise UserError(f"{where}: no text field; allowed: {', '.join(f for pair in TEXT_FIELDS for f in pair if f)}")
    if "label" not in row:
        raise UserError(f"{where}: missing field 'label'")
    for name in (first, second):
        if name and not isinstance(row[name], str):  # str() would turn null or a list into training text
            raise UserError(f"{where}: field {name!r}: got {row[name]!r}; allowed: a string")
    label = row["label"]
    if isinstance(label, bool) or not isinstance(label, int | float | str) or label == "":
        raise UserError(f"{where}: field 'label': got {label!r}; allowed: an integer class, a number (STS-B), "
                        "a class name, or -1 (hidden)")
    if label == -1:
        label = None
    return ClassificationExample(id=str(row.get("idx", fallback_id)), text=str(row[first]),
                                 text_pair=str(row[second]) if second else None, label=label)


def split_path(root: Path, split: str) -> Path:
    if split not in SPLITS:
        raise UserError(f"GLUE split {split!r}; allowed: {', '.join(SPLITS)}")
    return Path(root) / f"{split}.jsonl"


def load_file(path: Path) -> list[ClassificationExample]:
    return [row_to_example(row, str(i), f"{path}: row {i}") for i, row in enumerate(read_jsonl(path))]


class GlueJsonl:
    name = "glue-jsonl"
    splits = SPLITS
    local = True  # path names files on disk
    # GLUE hides its test labels, so its dev set ("validation") is the papers' test set; the GLUE papers select
    # on the same dev set they report (UniPELT's low-resource protocol instead samples its dev set from train,
    # which the training stage does). MNLI's entries name validation_matched with `split:`.
    default_split = {"train": "train", "dev": "validation", "eval": "validation"}
    task_families = ("classification",)

    def load(self, source: Source) -> list[ClassificationExample]:
        return load_file(split_file(source, split_path))


register(GlueJsonl())
