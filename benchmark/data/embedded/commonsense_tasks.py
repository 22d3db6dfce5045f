"""The eight LLM-Adapters commonsense formats (commonsense_170k and the eight test sets).

Instructions use the real phrasing of each dataset; the answer follows from a lexical cue in
lexicon.py (a noun's category, a tool's use, a feeling's remedy). `output` is
"the correct answer is <label>" and `answer` the label, as in the real files.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from benchmark.data.embedded.common import balanced_positions, draw_unique, rng_for
from benchmark.data.embedded.lexicon import (
    ADJECTIVES,
    CATEGORIES,
    CATEGORY_ACTIONS,
    CATEGORY_TITLES,
    FEELINGS,
    NAMES,
    PLACES,
    TOOL_USES,
    article,
)

CATS = tuple(CATEGORIES)
TEST_SIZE = 120
TRAIN_PER_FORMAT = 375  # x 8 formats = 3000 rows


def _row(instruction: str, label: str) -> dict:
    return {"instruction": instruction, "input": "", "output": f"the correct answer is {label}", "answer": label}


def _options(prefix: str, options: list[str], sep: str = " ") -> str:
    return sep.join(f"{prefix}{i + 1}: {text}" for i, text in enumerate(options))


def _fmt(prefix: str, k: int) -> str:
    return "/".join(f"{prefix}{i + 1}" for i in range(k))


def _member(rng: random.Random, cat: str) -> str:
    return rng.choice(CATEGORIES[cat][1])


def boolq(rng: random.Random, position: int) -> dict:
    """Open book, as real BoolQ pairs each question with a passage: the passage states a noun's
    category (or, negated, what it is not), and the label follows from passage and question. Half
    the items ask about the passage's own category, so its polarity decides ("is" -> true, "is not"
    -> false); the other half affirm the noun's category and ask about the same or another one, so
    the label is whether the two category words match. A model that reads only the polarity scores
    75%; 100% needs the match as well."""
    truth = position == 0  # position 0 -> true, 1 -> false
    cat = rng.choice(CATS)
    noun = f"{rng.choice(ADJECTIVES)} {_member(rng, cat)}"
    lead = rng.choice(("", "we know that ", "it is said that "))
    if rng.random() < 0.5:  # polarity: the passage affirms or denies the category asked about
        asked = CATEGORIES[cat][0]
        passage = f"{lead}the {noun} is {'' if truth else 'not '}{asked}"
    else:  # match: the passage affirms the noun's category; the question asks this one or another
        asked = CATEGORIES[cat if truth else rng.choice([c for c in CATS if c != cat])][0]
        passage = f"{lead}the {noun} is {CATEGORIES[cat][0]}"
    question = rng.choice((f"is the {noun} {asked}", f"would you call the {noun} {asked}",
                           f"is it true that the {noun} is {asked}"))
    return _row(f"Please answer the following question with true or false, question: {passage}. {question}?\n\n"
                "Answer format: true/false", "true" if truth else "false")


def piqa(rng: random.Random, position: int) -> dict:
    (goal, tool), (_, wrong) = rng.sample(TOOL_USES, 2)
    adj = rng.choice(ADJECTIVES)
    sols = [f"Use a {adj} {wrong} to {goal}.", f"Use a {adj} {wrong} to {goal}."]
    sols[position] = f"Use a {adj} {tool} to {goal}."
    question = rng.choice((f"{goal[0].upper()}{goal[1:]}.", f"How do you {goal}?"))
    return _row(f"Please choose the correct solution to the question: {question}\n\n"
                f"Solution1: {sols[0]}\n\nSolution2: {sols[1]}\n\nAnswer format: solution1/solution2",
                f"solution{position + 1}")


def social_i_qa(rng: random.Random, position: int) -> dict:
    (feeling, remedy), *wrong = rng.sample(FEELINGS, 3)
    name = rng.choice(NAMES)
    answers = [w[1] for w in wrong]
    answers.insert(position, remedy)
    place = rng.choice(PLACES)
    question = rng.choice((f"{name} was {feeling} after a long day at the {place}. What will {name} want to do next?",
                           f"{name} felt {feeling} in the {place}. What does {name} need to do?"))
    return _row(f"Please choose the correct answer to the question: {question}\n\n{_options('Answer', answers)}\n\n"
                f"Answer format: {_fmt('answer', 3)}", f"answer{position + 1}")


def hellaswag(rng: random.Random, position: int) -> dict:
    cat, *others = rng.sample(CATS, 4)
    noun = f"{rng.choice(ADJECTIVES)} {_member(rng, cat)}"
    endings = [rng.choice(CATEGORY_ACTIONS[c]) for c in others]
    endings.insert(position, rng.choice(CATEGORY_ACTIONS[cat]))
    context = f"{CATEGORY_TITLES[cat]}: The {noun} is near the {rng.choice(PLACES)}. Then the {noun}"
    return _row(f"Please choose the correct ending to complete the given sentence: {context}\n\n"
                f"{_options('Ending', endings)}\n\nAnswer format: {_fmt('ending', 4)}", f"ending{position + 1}")


def winogrande(rng: random.Random, position: int) -> dict:
    cat, other = rng.sample(CATS, 2)
    options = [_member(rng, other)]
    options.insert(position, _member(rng, cat))
    name = rng.choice(NAMES)
    prop = CATEGORIES[cat][2]
    sentence = rng.choice((f"{name} chose the _ because it can {prop}.",
                           f"{name} wanted something that can {prop}, so {name} picked the _."))
    return _row("Please choose the correct answer to fill in the blank to complete the given sentence: "
                f"{sentence}\n\nOption1: {options[0]} Option2: {options[1]} Answer format: option1/option2",
                f"option{position + 1}")


def _multiple_choice(question: str, answers: list[str]) -> str:
    return (f"Please choose the correct answer to the question: {question}\n\n{_options('Answer', answers)}\n\n"
            f"Answer format: {_fmt('answer', len(answers))}")


def arc(rng: random.Random, position: int, k: int, by_property: bool) -> dict:
    cat, *others = rng.sample(CATS, k)
    answers = [_member(rng, c) for c in others]
    answers.insert(position, _member(rng, cat))
    phrase, _, prop = CATEGORIES[cat]
    if by_property:  # the harder set: the cue is a property of the category, not its name
        question = rng.choice((f"Which of these can {prop}?", f"Which of these things can {prop}?"))
    else:
        question = rng.choice((f"Which of these is {phrase}?", f"Which one of these things is {phrase}?"))
    return _row(_multiple_choice(question, [f"{article(a)} {a}" for a in answers]), f"answer{position + 1}")


def openbookqa(rng: random.Random, position: int) -> dict:
    (goal, tool), *wrong = rng.sample(TOOL_USES, 4)
    answers = [w[1] for w in wrong]
    answers.insert(position, tool)
    adj = rng.choice(ADJECTIVES)
    question = rng.choice((f"What should you use to {goal}?", f"To {goal}, a person needs"))
    return _row(_multiple_choice(question, [f"a {adj} {a}" for a in answers]), f"answer{position + 1}")


# name -> (how many choices an item gets, drawn from rng; the maker, given (rng, position, k))
Maker = Callable[[random.Random, int, int], dict]
FORMATS: dict[str, tuple[Callable[[random.Random], int], Maker]] = {
    "boolq": (lambda r: 2, lambda r, p, k: boolq(r, p)),
    "piqa": (lambda r: 2, lambda r, p, k: piqa(r, p)),
    "social_i_qa": (lambda r: 3, lambda r, p, k: social_i_qa(r, p)),
    "hellaswag": (lambda r: 4, lambda r, p, k: hellaswag(r, p)),
    "winogrande": (lambda r: 2, lambda r, p, k: winogrande(r, p)),
    # Real ARC items mostly have 4 options, a few 5 (only 5 categories exist, so 5 is the cap).
    "ARC-Easy": (lambda r: 5 if r.random() < 0.2 else 4, lambda r, p, k: arc(r, p, k, by_property=False)),
    "ARC-Challenge": (lambda r: 5 if r.random() < 0.1 else 4, lambda r, p, k: arc(r, p, k, by_property=True)),
    "openbookqa": (lambda r: 4, lambda r, p, k: openbookqa(r, p)),
}


def _format_set(name: str, tag: str, n: int, used: set[str], balanced: bool) -> list[dict]:
    rng = rng_for(f"commonsense:{name}:{tag}")
    count_of, make = FORMATS[name]
    ks = [count_of(rng) for _ in range(n)]
    # Balanced within each option count, in shuffled blocks, so any prefix is near balanced.
    blocks = {k: iter(balanced_positions(rng, n, k)) for k in set(ks)} if balanced else None

    # draw_unique retries the same index after a duplicate: keep that index's position.
    positions: dict[int, int] = {}

    def make_item(i: int) -> dict:
        if i not in positions:
            positions[i] = next(blocks[ks[i]]) if blocks else rng.randrange(ks[i])
        return make(rng, positions[i], ks[i])

    return draw_unique(make_item, n, used)


def generate() -> dict[str, list[dict]]:
    used: set[str] = set()
    files = {f"dataset/{name}/test.json": _format_set(name, "test", TEST_SIZE, used, balanced=True) for name in FORMATS}
    train = [row for name in FORMATS for row in _format_set(name, "train", TRAIN_PER_FORMAT, used, balanced=False)]
    rng_for("commonsense:train-order").shuffle(train)
    files["ft-training_set/commonsense_170k.json"] = train
    return files


def pretraining_rows(per_format: int, used: set[str], more: dict[str, int] | None = None) -> list[dict]:
    """Fresh items of every format for the zoo's pretraining text, disjoint from `used`; `more` gives
    some formats a count of their own."""
    counts = {name: (more or {}).get(name, per_format) for name in FORMATS}
    return [row for name in FORMATS for row in _format_set(name, "pretrain", counts[name], used, balanced=False)]
