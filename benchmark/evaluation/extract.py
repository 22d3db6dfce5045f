"""Answer extraction and correctness, per the dataset's answer rule and the protocol's extraction quirks.

The rule is data (DatasetEntry.answer: number | letter | choice, with entry.labels the answer
options: the option letters or the label words); nothing here branches on a dataset's name.
Each defect of the reference scripts' extraction is a named quirk (registry/quirks.py), on or off by
the protocol and the trial's switches; with all three on this is evaluate.py and commonsense_evaluate.py
exactly, defects included:

- letter (aqua_first_letter): on, the first option letter anywhere (options A-E), so "Each ..." answers
  "E". Off, the letter of the last answer phrase ("the answer is C", "answer is (C)"), else the last
  standalone option letter, never a letter inside a word.
- number (last_number): on, the last number of the text. Off, the first number after the last
  "the answer is", falling back to the last number.
- choice (first_match_choice): on, the first label anywhere (even inside a word). Off, the first label
  after the last "the correct answer is", whole words only.
`output` is the response text (benchmark.data.prompts.response_text of the decoded output).
"""

from __future__ import annotations

import functools
import re

from benchmark.registry.catalogue import DatasetEntry
from benchmark.registry.quirks import PROTOCOLS, is_on

NUMBER = re.compile(r"-?\d+\.?\d*")
NO_NUMBER = "inf"  # what the reference's float('inf') prints as
TOLERANCE = 0.001

_ANSWER_PHRASE = re.compile(r"answer is", re.IGNORECASE)
_CORRECT_ANSWER_PHRASE = re.compile(r"the correct answer is", re.IGNORECASE)


def _entry(dataset: str | DatasetEntry) -> DatasetEntry:
    if isinstance(dataset, DatasetEntry):
        return dataset
    from benchmark.registry.catalogue import dataset as lookup

    return lookup(dataset)


def _check_protocol(protocol: str) -> None:
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol: got {protocol!r}; allowed: {', '.join(PROTOCOLS)}")


def _after_last(phrase: re.Pattern, text: str) -> str | None:
    """The text after the last occurrence of `phrase`, or None when it does not occur."""
    matches = list(phrase.finditer(text))
    return text[matches[-1].end():] if matches else None


# ---- number ----

def _last_number(text: str) -> str:
    found = NUMBER.findall(text.replace(",", ""))
    return found[-1] if found else NO_NUMBER


def _number(output: str, strict: bool) -> str:
    if strict:
        tail = _after_last(_ANSWER_PHRASE, output)
        if tail is not None:
            found = NUMBER.findall(tail.replace(",", ""))
            if found:
                return found[0]
    return _last_number(output)


# ---- letter ----

@functools.cache
def _letter_patterns(letters: tuple[str, ...]) -> tuple[re.Pattern, re.Pattern, re.Pattern]:
    """(any option letter, the letter after an answer phrase, a standalone letter) for these options."""
    options = "[" + "".join(re.escape(x) for x in letters) + "]"
    # Only the phrase is case-insensitive: "the answer is a bit long" must not read as "A".
    return (re.compile(options), re.compile(rf"(?i:answer is)\s*:?\s*\(?({options})\)?(?![A-Za-z])"),
            re.compile(rf"(?<![A-Za-z0-9])({options})(?![A-Za-z0-9])"))


def _letter(output: str, letters: tuple[str, ...], strict: bool) -> str:
    text = output.strip()
    anywhere, after_phrase, standalone = _letter_patterns(letters)
    if not strict:
        found = anywhere.findall(text)
        return found[0] if found else ""
    phrased = after_phrase.findall(text)
    if phrased:
        return phrased[-1]
    alone = standalone.findall(text)
    return alone[-1] if alone else ""


# ---- choice ----

def _choice_pattern(labels: tuple[str, ...], whole_words: bool) -> re.Pattern:
    alternation = "|".join(re.escape(label) for label in labels)
    if whole_words:
        return re.compile(rf"(?<![A-Za-z0-9_])(?:{alternation})(?![A-Za-z0-9_])")
    return re.compile(alternation)


def _choice(output: str, labels: tuple[str, ...], strict: bool) -> str:
    text = output.strip()
    pattern = _choice_pattern(labels, whole_words=strict)
    if strict:
        tail = _after_last(_CORRECT_ANSWER_PHRASE, text)
        if tail is not None:
            found = pattern.search(tail)
            if found:
                return found.group(0)
    found = pattern.search(text)
    return found.group(0) if found else ""


def extract_answer(dataset: str | DatasetEntry, output: str, protocol: str = "llm-adapters",
                   quirks: dict[str, bool] | None = None) -> str:
    """The answer the protocol reads from a response: a number's text ("inf" if none), a letter or a label ("" if none).
    `quirks`: switches against the protocol's defaults (EvalConfig.quirks)."""
    _check_protocol(protocol)
    entry = _entry(dataset)

    def fixed(quirk: str) -> bool:  # the defect fixed: the strict rule
        return not is_on(protocol, quirks or {}, quirk)

    if entry.answer == "number":
        return _number(output, fixed("last_number"))
    if entry.answer in ("letter", "choice") and not entry.labels:
        raise ValueError(f"dataset {entry.name}: answer rule {entry.answer!r} needs labels (its answer options)")
    if entry.answer == "letter":
        return _letter(output, entry.labels, fixed("aqua_first_letter"))
    if entry.answer == "choice":
        return _choice(output, entry.labels, fixed("first_match_choice"))
    raise ValueError(f"dataset {entry.name}: answer rule {entry.answer!r} is not a generation rule; "
                     "allowed: number, letter, choice")


def is_correct(dataset: str | DatasetEntry, prediction: str, gold: str, protocol: str = "llm-adapters") -> bool:
    """number: |float(gold) - float(prediction)| <= 0.001; letter and choice: exact string match."""
    _check_protocol(protocol)
    entry = _entry(dataset)
    if entry.answer == "number":
        try:
            gold_value = float(gold)
        except ValueError as err:
            raise ValueError(f"dataset {entry.name}: gold answer {gold!r} is not a number") from err
        try:
            predicted = float(prediction)
        except ValueError:
            return False
        return abs(gold_value - predicted) <= TOLERANCE
    if entry.answer in ("letter", "choice"):
        return prediction == gold
    raise ValueError(f"dataset {entry.name}: answer rule {entry.answer!r} is not a generation rule; "
                     "allowed: number, letter, choice")
