"""Task kinds: how a dataset is turned into training features, which model head it needs, and how it is scored.

The runner never branches on a dataset's name: it asks `for_dataset(entry)` for the entry's Task and
calls the same four steps on every kind. The kind follows from the catalogue entry (data, not code):
- generation: LLM-Adapters instruction data on a causal LM, scored by decoding and answer extraction;
- classification: GLUE / DAPT sentence (pair) classification; metric spearman/pearson makes it regression;
- extractive_qa: SQuAD-style span extraction over document-stride windows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from benchmark.errors import UserError
from benchmark.registry.catalogue import DatasetEntry

REGRESSION_METRICS = ("spearman", "pearson")


@dataclass(frozen=True)
class Head:
    """The model head a task needs. kind: causal-lm | sequence-classification | question-answering."""

    kind: str
    labels: tuple = ()  # classification: the label values, index = class id (sorted, from the training file)
    regression: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def num_labels(self) -> int | None:
        if self.kind != "sequence-classification":
            return None
        return 1 if self.regression else len(self.labels)


class Task(Protocol):
    kind: str
    selects_on_dev: bool  # True: a dev split is scored every epoch (early stopping, best weights, lr search)

    def head(self, entry: DatasetEntry, train_examples: list) -> Head: ...

    def features(self, tokenizer, examples: list, spec, head: Head) -> list[dict]: ...

    def evaluate(self, model, tokenizer, entry: DatasetEntry, examples: list, spec, head: Head): ...

    def selection_metric(self, entry: DatasetEntry) -> str: ...  # the name of what dev_metric returns

    def dev_metric(self, metrics: list) -> float: ...


def kind_of(entry: DatasetEntry) -> str:
    if entry.family in ("math", "commonsense"):
        return "generation"
    if entry.family == "classification":
        return "classification"
    if entry.family == "qa":
        return "extractive_qa"
    raise UserError(f"dataset {entry.name}: family {entry.family!r} cannot be trained or evaluated as a task; "
                    "allowed: math, commonsense, classification, qa (corpus datasets feed adapt stages)")


def for_dataset(entry: DatasetEntry) -> Task:
    kind = kind_of(entry)
    if kind == "generation":
        from benchmark.tasks.generation import GenerationTask

        return GenerationTask()
    if kind == "classification":
        from benchmark.tasks.classification import ClassificationTask

        return ClassificationTask()
    from benchmark.tasks.extractive_qa import ExtractiveQATask

    return ExtractiveQATask()
