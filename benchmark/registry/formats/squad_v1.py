"""SQuAD v1.1 JSON: {"version", "data": [{"title", "paragraphs": [{"context", "qas": [...]}]}]}.

Files: <root>/train-v1.1.json and <root>/dev-v1.1.json (the official names).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from benchmark.errors import UserError
from benchmark.registry.formats import Source, empty_file, register, split_file

SPLIT_FILES = {"train": "train-v1.1.json", "dev": "dev-v1.1.json", "validation": "dev-v1.1.json"}


@dataclass(frozen=True)
class SquadExample:
    id: str
    question: str
    context: str
    answers: tuple[str, ...]  # every annotator's text (dev has several); scoring takes the max
    answer_starts: tuple[int, ...]  # character offsets into context, one per answer
    title: str = ""


def parse(raw: dict, where: str) -> list[SquadExample]:
    if not isinstance(raw, dict) or not isinstance(raw.get("data"), list):
        raise UserError(f"{where}: expected SQuAD v1.1 JSON with a 'data' list")
    out = []
    for a, article in enumerate(raw["data"]):
        if not isinstance(article, dict) or not isinstance(article.get("paragraphs"), list):
            raise UserError(f"{where}: data[{a}]: expected an object with a 'paragraphs' list")
        for p, para in enumerate(article.get("paragraphs", [])):
            if not isinstance(para, dict) or not isinstance(para.get("qas"), list):
                raise UserError(f"{where}: data[{a}].paragraphs[{p}]: expected an object with 'context' and a 'qas' list")
            context = para.get("context")
            if not isinstance(context, str):
                raise UserError(f"{where}: data[{a}].paragraphs[{p}]: missing string field 'context'")
            for q, qa in enumerate(para.get("qas", [])):
                at = f"{where}: data[{a}].paragraphs[{p}].qas[{q}]"
                try:
                    answers = tuple(str(x["text"]) for x in qa["answers"])
                    starts = tuple(int(x["answer_start"]) for x in qa["answers"])
                    if not answers or not all(t.strip() for t in answers):  # no gold: every prediction would score 0
                        raise ValueError(f"answers {qa['answers']!r} has no non-empty text")
                    example = SquadExample(id=str(qa["id"]), question=str(qa["question"]), context=context,
                                           answers=answers, answer_starts=starts, title=str(article.get("title", "")))
                except (KeyError, TypeError, ValueError) as exc:
                    raise UserError(f"{at}: malformed question ({type(exc).__name__}: {exc}); "
                                    "required: id, question, answers[{text, answer_start}]") from None
                check_starts(example, f"{at} (id {example.id})")
                out.append(example)
    return out


def check_starts(example: SquadExample, where: str) -> None:
    """Every answer_start must point at its answer text: training builds its target span from the offset alone, so
    a misaligned one would teach a wrong span without any error (and the text would still score)."""
    context = example.context
    for k, (text, start) in enumerate(zip(example.answers, example.answer_starts)):
        if 0 <= start <= len(context) - len(text) and context[start:start + len(text)] == text:
            continue
        there = repr(context[start:start + len(text)]) if 0 <= start < len(context) else "outside the context"
        raise UserError(f"{where}: answers[{k}].answer_start: got {start} ({there} there, in a context of "
                        f"{len(context)} characters); allowed: the offset of the answer text {text[:60]!r} in its context")


def split_path(root: Path, split: str) -> Path:
    if split not in SPLIT_FILES:
        raise UserError(f"SQuAD split {split!r}; allowed: {', '.join(SPLIT_FILES)}")
    return Path(root) / SPLIT_FILES[split]


def load_file(path: Path) -> list[SquadExample]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
        if not text.strip():
            raise empty_file(path, "SQuAD v1.1 JSON")
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON: {exc}") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start}); allowed: UTF-8 JSON") from None
    examples = parse(raw, str(path))
    if not examples:
        raise empty_file(path, "questions: its 'data' holds none")
    return examples


class SquadV1:
    name = "squad-v1"
    splits = tuple(SPLIT_FILES)
    local = True  # path names files on disk
    default_split = {"train": "train", "dev": "dev", "eval": "dev"}  # SQuAD's papers report the dev file
    task_families = ("qa",)

    def load(self, source: Source) -> list[SquadExample]:
        return load_file(split_file(source, split_path))


register(SquadV1())
