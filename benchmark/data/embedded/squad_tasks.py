"""Span QA in the SQuAD v1.1 JSON layout: short made-up biographies, one question per fact."""

from __future__ import annotations

import hashlib
import random
import re

from benchmark.data.embedded.common import draw_unique, rng_for
from benchmark.data.embedded.lexicon import CATEGORIES, CITIES, COLORS, DAYS, JOBS, NAMES, PLACES

PARAGRAPHS = {"train": 100, "dev": 30}
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


def generate() -> dict[str, dict]:
    rng = rng_for("squad")
    used: set[str] = set()
    return {f"squad/{split}-v1.1.json": _split(split, draw_unique(lambda i: paragraph(rng), n, used, key="context"))
            for split, n in PARAGRAPHS.items()}
