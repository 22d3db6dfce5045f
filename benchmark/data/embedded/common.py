"""Helpers shared by the embedded generators: unique drawing and balanced label positions."""

from __future__ import annotations

import random
from collections.abc import Callable

# The stamp of the generated files: bump it whenever any generator's output changes, so cached copies
# (ensure) are rewritten. v3: all 8 GLUE and 8 DAPT tasks, domain corpora, SQuAD 200 train paragraphs; v4: the
# general-text corpus (corpora/general.txt, forgetting), every other file unchanged.
GENERATOR_VERSION = "4"
# Part of every seed. Kept apart from GENERATOR_VERSION so that a generator nobody changed keeps writing
# the same items when another one changes (the math and commonsense sets behind the measured numbers in
# README.md stay byte-identical); change it only to reseed everything on purpose.
SEED_VERSION = "2"


def rng_for(name: str) -> random.Random:
    """A private generator per task; str seeds hash with SHA-512, so this is stable across runs."""
    return random.Random(f"peft-bench-embedded:{SEED_VERSION}:{name}")


def draw_unique(make: Callable[[int], dict], n: int, used: set[str], key: str = "instruction") -> list[dict]:
    """n items from make(i) whose `key` is not in `used` (which grows): keeps test and train sets disjoint."""
    items: list[dict] = []
    attempts = 0
    while len(items) < n:
        attempts += 1
        if attempts > 200 * n + 1000:  # a generator whose item space is too small: a bug, not bad luck
            raise RuntimeError(f"embedded generator ran out of distinct items after {len(items)} of {n}")
        item = make(len(items))
        if item[key] in used:
            continue
        used.add(item[key])
        items.append(item)
    return items


def balanced_positions(rng: random.Random, n: int, k: int) -> list[int]:
    """Correct-answer positions for n items with k choices: consecutive shuffled blocks of range(k),
    so every prefix (evaluations often take the first N items) is close to balanced."""
    out: list[int] = []
    while len(out) < n:
        block = list(range(k))
        rng.shuffle(block)
        out.extend(block)
    return out[:n]

