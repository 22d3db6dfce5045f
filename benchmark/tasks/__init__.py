"""Task kinds: how a dataset is turned into training features, which model head it needs, and how it is scored.

The runner never branches on a dataset's name: the planner resolves `for_dataset(entry)` (and checks with
`kind_of` that train, dev and eval sets share a kind) and the runner calls the same steps on every kind.
The kind follows from the catalogue entry (data, not code):
- generation: LLM-Adapters instruction data on a causal LM, scored by decoding and answer extraction;
- classification: GLUE / DAPT sentence (pair) classification; metric spearman/pearson makes it regression;
- extractive_qa: SQuAD-style span extraction over document-stride windows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from benchmark.errors import UserError
from benchmark.metrics import MetricDef
from benchmark.registry.catalogue import DatasetEntry


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
    head_kind: str  # the Head.kind it trains: causal-lm | sequence-classification | question-answering

    def head(self, entry: DatasetEntry, train_examples: list) -> Head: ...

    def features(self, tokenizer, examples: list, spec, head: Head) -> list[dict]: ...

    def evaluate(self, model, tokenizer, entry: DatasetEntry, examples: list, spec, head: Head): ...

    # The metric table's entry that dev-split selection uses (its stored name, its direction).
    def selection_metric(self, entry: DatasetEntry) -> MetricDef: ...


def kind_of(entry: DatasetEntry) -> str:
    if entry.task_family in ("math", "commonsense"):
        return "generation"
    if entry.task_family == "classification":
        return "classification"
    if entry.task_family == "qa":
        return "extractive_qa"
    raise UserError(f"dataset {entry.name}: task family {entry.task_family!r} cannot be trained or evaluated as a task; "
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
