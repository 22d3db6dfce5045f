"""The metric table: every metric a dataset entry may name, with its direction and how it is computed.

One table, read by the catalogue (a mistyped metric name fails when the catalogue loads), by training
selection (the dev metric), by evaluation (the reported number) and by the report's bootstrap intervals,
so all of them agree on what a name means (e.g. which label is F1's positive class).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from benchmark.errors import UserError, did_you_mean


@dataclass(frozen=True)
class MetricDef:
    name: str
    higher_is_better: bool
    description: str
    fn: Callable | None = None  # filled in below: (predictions, golds, labels) -> float, in percent where the papers print percent


METRICS: dict[str, MetricDef] = {}


def register(metric: MetricDef) -> MetricDef:
    if metric.name in METRICS:
        raise ValueError(f"metric {metric.name!r} registered twice")
    METRICS[metric.name] = metric
    return metric


def names() -> list[str]:
    return sorted(METRICS)


def get(name: str) -> MetricDef:
    if name not in METRICS:
        raise UserError(f"metric {name!r} is not known{did_you_mean(name, METRICS)}; allowed: {', '.join(names())}")
    return METRICS[name]


for _name, _higher, _text in (
    ("accuracy", True, "share of correct predictions"),
    ("mcc", True, "Matthews correlation (CoLA)"),
    ("f1", True, "F1 of the positive class (MRPC, QQP); SQuAD: token F1 against the best gold answer"),
    ("macro_f1", True, "mean per-class F1 (DAPT tasks)"),
    ("micro_f1", True, "F1 over all classes pooled (ChemProt, RCT)"),
    ("spearman", True, "Spearman rank correlation (STS-B)"),
    ("pearson", True, "Pearson correlation"),
    ("em", True, "exact match after SQuAD answer normalisation"),
):
    register(MetricDef(_name, _higher, _text))
