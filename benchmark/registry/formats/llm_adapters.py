"""The LLM-Adapters format: a JSON list of {instruction, input, output, answer} rows.

Layout as in the AGI-Edgerunners/LLM-Adapters repository: ft-training_set/<name>.json for
training, dataset/<name>/test.json for evaluation. Training files may lack `answer`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from benchmark.errors import UserError
from benchmark.registry.formats import Source, empty_file, missing_file_error, register, require

REQUIRED = ("instruction", "input", "output")


@dataclass(frozen=True)
class Example:
    """The record every generation task is read into: the LLM-Adapters JSON row."""

    id: str  # stable within its dataset ("<dataset>/<row index>" unless the file has ids)
    instruction: str
    input: str
    output: str  # training target: the rationale, or "the correct answer is <label>"
    answer: str  # the gold answer as stored: "576.0", "B", "option1", "true"


def _answer(value, path: Path, row: int):
    if value is None:
        return ""
    # Older copies of AQuA/test.json store the letter as a one-element list (["C"]).
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
        return value[0]
    if not isinstance(value, str):
        raise UserError(f"{path}: row {row}: field 'answer' must be a string, got {type(value).__name__}")
    return value


def parse_rows(rows, path: Path, dataset: str, need_answer: bool = False) -> list[Example]:
    """need_answer: an evaluation file, whose empty gold answer would silently score every output wrong."""
    if not isinstance(rows, list):
        raise UserError(f"{path}: expected a JSON list of {{instruction, input, output, answer}} rows, "
                        f"got {type(rows).__name__}")
    if not rows:
        raise empty_file(path, "rows: the JSON list is empty")
    examples = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise UserError(f"{path}: row {i}: expected an object, got {type(row).__name__}")
        for key in REQUIRED:
            if key not in row:
                raise UserError(f"{path}: row {i}: missing field {key!r} (required: {', '.join(REQUIRED)}, answer)")
            if not isinstance(row[key], str):
                raise UserError(f"{path}: row {i}: field {key!r} must be a string, got {type(row[key]).__name__}")
        answer = _answer(row.get("answer"), path, i)
        if need_answer and not answer.strip():
            raise UserError(f"{path}: row {i}: field 'answer' is missing or empty; allowed: the gold answer "
                            "(an evaluation set is scored against it)")
        examples.append(Example(id=f"{dataset}/{i}", instruction=row["instruction"], input=row["input"],
                                output=row["output"], answer=answer))
    return examples


def load_file(path: Path, dataset: str, source_note: str = "", need_answer: bool = False) -> list[Example]:
    """Every row of one LLM-Adapters JSON file; UserError naming file, row and field on bad input."""
    path = Path(path)
    if not path.is_file():
        raise missing_file_error(dataset, path, source_note)
    try:
        text = path.read_text(encoding="utf-8")
        if not text.strip():
            raise empty_file(path, "rows: a JSON list of {instruction, input, output, answer}")
        rows = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON: {exc}") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start}); allowed: UTF-8 JSON") from None
    return parse_rows(rows, path, dataset, need_answer)


class LlmAdapters:
    name = "llm-adapters"
    splits = ()  # one JSON file per dataset
    local = True  # path names files on disk
    default_split: dict[str, str] = {}
    task_families = ("math", "commonsense")

    def load(self, source: Source) -> list[Example]:
        # Training rows may lack an answer; an evaluation file is scored against it.
        return load_file(require(source), source.dataset, source.note, need_answer=source.labelled)


register(LlmAdapters())
