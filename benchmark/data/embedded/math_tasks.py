"""Arithmetic word problems in the LLM-Adapters math layout (math_10k and the seven test sets).

Single-digit operands, answers 0-18, one or two steps, a handful of templates: small enough for
a tiny model to learn, shaped like the real rows (a rationale ending "The answer is N"; numbers
stored as strings such as "7.0"; AQuA with five lettered choices in the instruction).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from benchmark.data.embedded.common import balanced_positions, draw_unique, rng_for
from benchmark.data.embedded.lexicon import MATH_OBJECTS, NAMES

LETTERS = "ABCDE"


@dataclass(frozen=True)
class Problem:
    question: str
    steps: str  # the rationale before "The answer is ..."
    answer: int


def _people(rng: random.Random) -> tuple[str, str, str]:
    n, m = rng.sample(NAMES, 2)
    return n, m, rng.choice(MATH_OBJECTS)


def _add(rng):
    n, m, o = _people(rng)
    a, b = rng.randint(1, 9), rng.randint(1, 9)
    q = rng.choice((f"{n} has {a} {o}. {n} buys {b} more {o}. How many {o} does {n} have now?",
                    f"{n} had {a} {o} and found {b} more. How many {o} does {n} have in all?"))
    return Problem(q, f"{n} has {a} {o} and gets {b} more. {a} + {b} = {a + b}.", a + b)


def _sub(rng):
    n, m, o = _people(rng)
    a = rng.randint(1, 9)
    b = rng.randint(0, a)
    q = rng.choice((f"{n} has {a} {o}. {n} gives {b} {o} to {m}. How many {o} does {n} have left?",
                    f"{n} had {a} {o} and lost {b} of them. How many {o} does {n} have now?"))
    return Problem(q, f"{n} has {a} {o} and gives away {b}. {a} - {b} = {a - b}.", a - b)


def _add_sub(rng):
    n, m, o = _people(rng)
    a, b = rng.randint(1, 9), rng.randint(1, 9)
    c = rng.randint(1, min(9, a + b))
    q = f"{n} has {a} {o}. {n} buys {b} more and then gives {c} to {m}. How many {o} does {n} have now?"
    return Problem(q, f"{a} + {b} = {a + b}. {a + b} - {c} = {a + b - c}.", a + b - c)


def _add_add(rng):
    n, m, o = _people(rng)
    a, b = rng.randint(1, 6), rng.randint(1, 6)
    c = rng.randint(1, 6)
    q = f"{n} has {a} {o}. {m} gives {n} {b} {o} and {n} finds {c} more. How many {o} does {n} have now?"
    return Problem(q, f"{a} + {b} = {a + b}. {a + b} + {c} = {a + b + c}.", a + b + c)


def _mul(rng):
    n, m, o = _people(rng)
    a = rng.randint(2, 9)
    b = rng.randint(2, 18 // a)
    q = f"{n} has {a} bags. Each bag holds {b} {o}. How many {o} does {n} have?"
    return Problem(q, f"{n} has {a} bags of {b} {o}. {a} * {b} = {a * b}.", a * b)


def _mul_add(rng):
    n, m, o = _people(rng)
    a = rng.randint(2, 4)
    b = rng.randint(2, 4)
    c = rng.randint(1, 18 - a * b)
    q = f"{n} has {a} bags with {b} {o} in each bag and {c} more {o} on the desk. How many {o} does {n} have?"
    return Problem(q, f"{a} * {b} = {a * b}. {a * b} + {c} = {a * b + c}.", a * b + c)


def _div(rng):
    n, m, o = _people(rng)
    k = rng.randint(2, 4)
    each = rng.randint(1, 6)
    q = f"{n} shares {k * each} {o} equally among {k} friends. How many {o} does each friend get?"
    return Problem(q, f"{k * each} / {k} = {each}.", each)


def _reverse(rng):
    n, m, o = _people(rng)
    b, c = rng.randint(1, 9), rng.randint(1, 9)
    q = f"{n} had some {o}. {n} gave {b} {o} to {m} and now has {c} {o}. How many {o} did {n} have at first?"
    return Problem(q, f"{n} gave away {b} and kept {c}. {b} + {c} = {b + c}.", b + c)


def _total(rng):
    n, m, o = _people(rng)
    a, r = rng.randint(1, 9), rng.randint(1, 9)
    q = f"{n} and {m} have {a + r} {o} in total. {n} has {a} {o}. How many {o} does {m} have?"
    return Problem(q, f"{m} has the rest. {a + r} - {a} = {r}.", r)


TEMPLATES: dict[str, Callable[[random.Random], Problem]] = {
    "add": _add, "sub": _sub, "add_sub": _add_sub, "add_add": _add_add, "mul": _mul,
    "mul_add": _mul_add, "div": _div, "reverse": _reverse, "total": _total,
}
ONE_STEP = ("add", "sub", "mul", "div", "total")

# Each test set draws from the templates that echo its real counterpart.
NUMERIC_TEST_SETS: dict[str, tuple[str, ...]] = {
    "AddSub": ("add", "sub"),
    "MultiArith": ("add_sub", "add_add", "mul_add"),
    "SingleEq": ("total", "add", "sub"),
    "gsm8k": ("add_sub", "mul", "div", "mul_add"),
    "SVAMP": ("reverse", "sub", "add"),
    "mawps": ("add", "sub", "mul", "div"),
}
TEST_SIZE = 120
TRAIN_NUMERIC = 1700
TRAIN_CHOICE = 300


def numeric_item(problem: Problem) -> dict:
    return {"instruction": problem.question, "input": "", "output": f"{problem.steps} The answer is {problem.answer}",
            "answer": str(float(problem.answer))}


def choice_item(problem: Problem, rng: random.Random, position: int) -> dict:
    """An AQuA row: five numeric options, the right one at `position`; the answer is its letter."""
    nearby = [v for v in range(max(0, problem.answer - 6), problem.answer + 7) if v != problem.answer]
    options = rng.sample(nearby, 4)
    options.insert(position, problem.answer)
    choices = " ".join(f"({letter}) {value}" for letter, value in zip(LETTERS, options))
    letter = LETTERS[position]
    return {"instruction": f"{problem.question} Answer Choices: {choices}", "input": "",
            "output": f"{problem.steps} The answer is {letter}", "answer": letter}


def _numeric_set(name: str, templates: tuple[str, ...], n: int, used: set[str]) -> list[dict]:
    rng = rng_for(f"math:{name}")
    return draw_unique(lambda i: numeric_item(TEMPLATES[templates[i % len(templates)]](rng)), n, used)


def _choice_set(name: str, n: int, used: set[str], balanced: bool) -> list[dict]:
    rng = rng_for(f"math:{name}")
    positions = balanced_positions(rng, n, len(LETTERS)) if balanced else None

    def make(i: int) -> dict:
        problem = TEMPLATES[ONE_STEP[i % len(ONE_STEP)]](rng)
        return choice_item(problem, rng, positions[i] if positions else rng.randrange(len(LETTERS)))

    return draw_unique(make, n, used)


def generate() -> dict[str, list[dict]]:
    """relative path -> rows. Test sets first, so the training set skips every test instruction."""
    used: set[str] = set()
    files = {f"dataset/{name}/test.json": _numeric_set(name, templates, TEST_SIZE, used)
             for name, templates in NUMERIC_TEST_SETS.items()}
    files["dataset/AQuA/test.json"] = _choice_set("AQuA", TEST_SIZE, used, balanced=True)
    every = tuple(TEMPLATES)
    train = _numeric_set("math_10k", every, TRAIN_NUMERIC, used) + _choice_set("math_10k-choice", TRAIN_CHOICE, used,
                                                                                 balanced=False)
    rng_for("math:math_10k-order").shuffle(train)
    files["ft-training_set/math_10k.json"] = train
    return files


def pretraining_rows(n_numeric: int, n_choice: int, used: set[str]) -> list[dict]:
    """Fresh problems for the zoo's pretraining text, from seeds of their own; `used` keeps them
    disjoint from every test and training instruction."""
    every = tuple(TEMPLATES)
    return _numeric_set("pretrain", every, n_numeric, used) + _choice_set("pretrain-choice", n_choice, used, balanced=False)
