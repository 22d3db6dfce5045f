"""The record every generation task is read into: the LLM-Adapters JSON row."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Example:
    id: str  # stable within its dataset ("<dataset>/<row index>" unless the file has ids)
    instruction: str
    input: str
    output: str  # training target: the rationale, or "the correct answer is <label>"
    answer: str  # the gold answer as stored: "576.0", "B", "option1", "true"
