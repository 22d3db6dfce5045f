"""Span QA in the SQuAD v1.1 JSON layout: short made-up biographies, one question per fact.

The same items are also written as an HF-style mirror (hf/squad/{train,validation}.jsonl, the flat
rows of rajpurkar/squad), the embedded twin of the `squad-hf` entry, read by the `hf` loader.
"""

from __future__ import annotations

import hashlib
import random
import re

from benchmark.data.embedded.common import draw_unique, rng_for
from benchmark.data.embedded.lexicon import CATEGORIES, CITIES, COLORS, DAYS, JOBS, NAMES, PLACES

# 200 x 5 = 1,000 training questions (100 paragraphs left a tiny encoder few examples per question type);
# dev 30 x 5 = 150 questions
PARAGRAPHS = {"train": 200, "dev": 30}
PER_TITLE = 5
VEHICLES = CATEGORIES["vehicle"][1]


def _span(context: str, text: str) -> int:
    """The start of the one whole-word occurrence of text; generator bug if not exactly one."""
    hits = [m.start() for m in re.finditer(rf"(?<!\w){re.escape(text)}(?!\w)", context)]
    if len(hits) != 1:
        raise RuntimeError(f"answer {text!r} occurs {len(hits)} times in {context!r}")
    return hits[0]


def paragraph(rng: random.Random) -> dict:
    name, friend = rng.sample(NAMES, 2)
    city, job, color = rng.choice(CITIES), rng.choice(JOBS), rng.choice(COLORS)
    vehicle, day, place = rng.choice(VEHICLES), rng.choice(DAYS), rng.choice(PLACES)
    facts = [f"{name} lives in {city}.", f"{name} works as a {job} and drives a {color} {vehicle}.",
             f"On {day}, {name} meets {friend} at the {place}."]
    rng.shuffle(facts)  # so answers sit at different offsets
    context = " ".join(facts)
    # (question, answer, an alternative gold span as a second annotator might mark it)
    qas = [(f"Where does {name} live?", city, city), (f"What is {name}'s job?", job, f"a {job}"),
           (f"What color is the {vehicle} {name} drives?", color, color),
           (f"Who does {name} meet on {day}?", friend, friend), (f"Where does {name} meet {friend}?", place, f"the {place}")]
    return {"context": context, "qas": qas}


def _qa_id(*parts: str) -> str:
    return hashlib.md5("\x1f".join(parts).encode()).hexdigest()[:24]


def _split(split: str, paragraphs: list[dict]) -> dict:
    data = []
    for start in range(0, len(paragraphs), PER_TITLE):
        title = {"title": f"Embedded_stories_{split}_{start // PER_TITLE}", "paragraphs": []}
        for para in paragraphs[start:start + PER_TITLE]:
            context, qas = para["context"], []
            for question, answer, variant in para["qas"]:
                # dev sets carry several annotators' answers; train one
                texts = [answer] if split == "train" else [answer, variant, answer]
                qas.append({"id": _qa_id(split, context, question), "question": question,
                            "answers": [{"text": t, "answer_start": _span(context, t)} for t in texts]})
            title["paragraphs"].append({"context": context, "qas": qas})
        data.append(title)
    return {"version": "1.1", "data": data}


def _hf_rows(squad: dict) -> list[dict]:
    return [{"id": qa["id"], "title": article["title"], "context": para["context"], "question": qa["question"],
             "answers": {"text": [a["text"] for a in qa["answers"]], "answer_start": [a["answer_start"] for a in qa["answers"]]}}
            for article in squad["data"] for para in article["paragraphs"] for qa in para["qas"]]


def generate() -> dict[str, object]:
    rng = rng_for("squad")
    used: set[str] = set()
    files: dict[str, object] = {
        f"squad/{split}-v1.1.json": _split(split, draw_unique(lambda i: paragraph(rng), n, used, key="context"))
        for split, n in PARAGRAPHS.items()}
    files["hf/squad/train.jsonl"] = _hf_rows(files["squad/train-v1.1.json"])
    files["hf/squad/validation.jsonl"] = _hf_rows(files["squad/dev-v1.1.json"])
    return files


def fresh_contexts(n: int, used: set[str], seed: str) -> list[str]:
    """n new paragraphs whose context is not in `used` (which grows)."""
    rng = rng_for(f"{seed}:squad")
    return [p["context"] for p in draw_unique(lambda _: paragraph(rng), n, used, key="context")]
