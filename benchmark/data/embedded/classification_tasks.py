"""Sentence and sentence-pair classification: GLUE-style jsonl (HF nyu-mll/glue field names) and
DAPT-style jsonl (`text`, string `label`), each label fixed by a word from lexicon.py."""

from __future__ import annotations

import random

from benchmark.data.embedded.common import balanced_positions, draw_unique, rng_for
from benchmark.data.embedded.lexicon import (
    ADJECTIVES,
    CATEGORIES,
    CHEMICALS,
    DAYS,
    FILM_NOUNS,
    NAMES,
    NEGATIVE,
    PLACES,
    POSITIVE,
    PROTEINS,
    RELATIONS,
    article,
)

SPLIT_SIZES = {"train": 400, "validation": 100, "test": 100}
DAPT_SPLIT_SIZES = {"train": 500, "dev": 100, "test": 100}
NOUNS = tuple(n for _, members, _ in CATEGORIES.values() for n in members)
STS_VERBS = ("sits", "sleeps", "waits", "plays", "stands")
PAST_VERBS = ("saw", "liked", "found", "washed", "moved", "painted")


def sst2(rng: random.Random, label: int) -> dict:
    words = POSITIVE if label == 1 else NEGATIVE
    a, b = rng.sample(words, 2)
    film = rng.choice(FILM_NOUNS)
    sentence = rng.choice((f"the {film} was {a} ", f"a {a} and {b} {film} ", f"i found the {film} {a} and {b} ",
                           f"{a} {film} with a {b} ending "))
    return {"sentence": sentence, "label": label}


def rte(rng: random.Random, label: int) -> dict:
    name, other = rng.sample(NAMES, 2)
    noun, wrong_noun = rng.sample(NOUNS, 2)
    place, wrong_place = rng.sample(PLACES, 2)
    adj = rng.choice(ADJECTIVES)
    s1 = f"{name} bought {article(adj)} {adj} {noun} at the {place} on {rng.choice(DAYS)}."
    if label == 0:  # entailment
        s2 = rng.choice((f"{name} bought {article(noun)} {noun}.", f"{name} was at the {place}."))
    else:
        s2 = rng.choice((f"{name} bought {article(wrong_noun)} {wrong_noun}.", f"{other} bought {article(noun)} {noun}.",
                         f"{name} was at the {wrong_place}."))
    return {"sentence1": s1, "sentence2": s2, "label": label}


def stsb(rng: random.Random, changed: int) -> dict:
    """Four slots; the score falls by 1.25 per slot that differs (plus a little jitter), 0-5."""
    first = [rng.choice(ADJECTIVES), rng.choice(NOUNS), rng.choice(STS_VERBS), rng.choice(PLACES)]
    second = list(first)
    pools = (ADJECTIVES, NOUNS, STS_VERBS, PLACES)
    for slot in rng.sample(range(4), changed):
        second[slot] = rng.choice([w for w in pools[slot] if w != first[slot]])
    score = min(5.0, max(0.0, round(5.0 * (4 - changed) / 4 + rng.uniform(-0.2, 0.2), 2)))

    def say(adj, noun, verb, place):
        return f"{article(adj).capitalize()} {adj} {noun} {verb} in the {place}."

    return {"sentence1": say(*first), "sentence2": say(*second), "label": score}


def cola(rng: random.Random, label: int) -> dict:
    name, verb, adj, noun = rng.choice(NAMES), rng.choice(PAST_VERBS), rng.choice(ADJECTIVES), rng.choice(NOUNS)
    if label == 1:
        words = [name, verb, "the", adj, noun]
    else:  # unacceptable: one of a few orders no English sentence takes
        words = rng.choice(([verb, name, "the", adj, noun], [name, verb, adj, noun, "the"],
                            [name, verb, "the", noun, adj], [name, "the", adj, noun, verb]))
    return {"sentence": " ".join(words) + ".", "label": label}


# task -> (maker(rng, label_or_level), number of label levels)
GLUE_TASKS = {"sst2": (sst2, 2), "rte": (rte, 2), "stsb": (stsb, 5), "cola": (cola, 2)}


def _text_key(row: dict) -> str:
    return row.get("sentence") or f"{row['sentence1']}\t{row['sentence2']}"


def _glue_task(task: str) -> dict[str, list[dict]]:
    make, levels = GLUE_TASKS[task]
    rng = rng_for(f"glue:{task}")
    used: set[str] = set()
    out = {}
    for split, n in SPLIT_SIZES.items():
        positions = balanced_positions(rng, n, levels)
        def keyed(i: int, positions=positions) -> dict:
            row = make(rng, positions[i])
            return {**row, "_key": _text_key(row)}

        rows = draw_unique(keyed, n, used, key="_key")
        for idx, row in enumerate(rows):
            del row["_key"]
            row["idx"] = idx
            if split == "test":  # hidden in HF GLUE: test labels are -1
                row["label"] = -1
        out[f"glue/{task}/{split}.jsonl"] = rows
    return out


def chemprot(rng: random.Random, level: int) -> dict:
    label = tuple(RELATIONS)[level]
    chem, prot = rng.choice(CHEMICALS), rng.choice(PROTEINS)
    verb = rng.choice(RELATIONS[label])
    tail = rng.choice(("in liver cells", "in vitro", "in mice", "at low doses"))
    return {"text": f"<< {chem} >> {verb} [[ {prot} ]] {tail} .", "label": label}


def imdb(rng: random.Random, level: int) -> dict:
    words = POSITIVE if level == 1 else NEGATIVE
    a, b = rng.sample(words, 2)
    film, part = rng.sample(FILM_NOUNS, 2)
    text = (f"I watched this {film} on {rng.choice(DAYS)} with {rng.choice(NAMES)}. "
            f"The {part} was {a} and the ending was {b}.")
    return {"text": text, "label": str(level)}


DAPT_TASKS = {"chemprot": (chemprot, len(RELATIONS)), "imdb": (imdb, 2)}


def _dapt_task(task: str) -> dict[str, list[dict]]:
    make, levels = DAPT_TASKS[task]
    rng = rng_for(f"dapt:{task}")
    used: set[str] = set()
    out = {}
    for split, n in DAPT_SPLIT_SIZES.items():
        positions = balanced_positions(rng, n, levels)
        out[f"dapt/{task}/{split}.jsonl"] = draw_unique(lambda i, p=positions: make(rng, p[i]), n, used, key="text")
    return out


def generate() -> dict[str, list[dict]]:
    files: dict[str, list[dict]] = {}
    for task in GLUE_TASKS:
        files.update(_glue_task(task))
    for task in DAPT_TASKS:
        files.update(_dapt_task(task))
    return files
