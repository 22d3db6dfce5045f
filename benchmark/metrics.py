"""The metric table: every metric a dataset entry may name, with its direction and how it is computed.

One table, read by the catalogue (a mistyped metric name fails when the catalogue loads), by training
selection (the dev metric and its direction), by evaluation (the reported number) and by the report's
bootstrap intervals, so all of them agree on what a name means. Every value is in percent (x100), as
the papers print it: accuracy 87.5, MCC 61.2, Spearman 89.0.

Names. A dataset entry lists the names results store (`names()`). Each name is one entry, keyed by
it, except "f1", kept for old results: over class labels it is binary F1 (key `f1`), over answer texts
SQuAD's token F1 (key `token_f1`, stored as "f1"). So a lookup says what the task compares:
`get("f1", inputs="answers")` (a task's `metric_inputs`); the report's bootstrap, which only has stored predictions, takes the
first of `candidates(name)` that gives back the stored value.

F1's positive class is decided here only: POSITIVE_LABEL, GLUE's convention (label 1 = paraphrase,
duplicate), compared as text so the integer 1 of a JSON file and the "1" of a stored prediction agree.

Each entry has one implementation, `fn(predictions, golds, labels=None)`, plus what the bootstrap needs
to redo it quickly on a thousand resamples of stored predictions: a per-example scorer (the metric is
their mean), the per-example verdicts the predictions store (`from_verdicts`: accuracy and exact match,
whose answer rules live in evaluation), the metric of confusion counts, or of resampled score arrays.
Pure Python and numpy: nothing here imports torch or anything above benchmark.errors.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from benchmark.errors import UserError, did_you_mean

POSITIVE_LABEL = "1"  # F1's positive class, compared as str(label)
ANSWER_SEPARATOR = " | "  # how a stored prediction joins an example's gold answers


@dataclass(frozen=True)
class MetricDef:
    name: str  # the table key: the stored name, but for token_f1
    higher_is_better: bool
    description: str
    fn: Callable  # (predictions, golds, labels=None) -> percent
    # What the metric compares: "labels" (class labels), "scores" (numbers: regression),
    # "answers" (an answer text against the example's gold answers).
    inputs: str = "labels"
    stored_as: str = ""  # the metric name results store; "" = name
    per_example: Callable | None = None  # (prediction, gold) -> [0, 1]; the metric is 100 x their mean
    from_verdicts: bool = False  # the mean of the stored per-example verdicts (Prediction.correct)
    from_confusions: Callable | None = None  # (counts (R, K, K) gold on axis 1, labels (K,)) -> (R,)
    on_resamples: Callable | None = None  # (predictions (R, n), golds (R, n)) float arrays -> (R,)

    @property
    def stored_name(self) -> str:
        return self.stored_as or self.name


METRICS: dict[str, MetricDef] = {}  # by key; several keys may share a stored name (f1)


def register(metric: MetricDef) -> MetricDef:
    if metric.name in METRICS:
        raise ValueError(f"metric {metric.name!r} registered twice")
    METRICS[metric.name] = metric
    return metric


def names() -> list[str]:
    """The metric names a dataset entry may list: the names results store."""
    return sorted({m.stored_name for m in METRICS.values()})


def candidates(name: str) -> list[MetricDef]:
    """Every entry stored as `name`, the one keyed `name` first."""
    keyed = [METRICS[name]] if name in METRICS else []
    return keyed + [m for m in METRICS.values() if m.stored_name == name and m.name != name]


def get(name: str, inputs: str | tuple[str, ...] | None = None) -> MetricDef:
    """The entry stored as `name` that compares `inputs` (one kind or several; any when None): "f1" over
    labels is binary F1, over answers SQuAD's token F1. A task passes what it compares, so a dataset
    metric the task cannot score fails in one line (at plan time, when the planner asks)."""
    found = candidates(name)
    if not found:
        raise UserError(f"metric {name!r} is not known{did_you_mean(name, names())}; allowed: {', '.join(names())}")
    kinds = (inputs,) if isinstance(inputs, str) else inputs
    fitting = [m for m in found if kinds is None or m.inputs in kinds]
    if not fitting:
        allowed = sorted({m.stored_name for m in METRICS.values() if m.inputs in kinds})
        raise UserError(f"metric {name!r} does not score {' or '.join(kinds)}; allowed: {', '.join(allowed)}")
    return fitting[0]


# ---- shared arithmetic ----

def _check_lengths(predictions: Sequence, golds: Sequence) -> None:
    if len(predictions) != len(golds):
        raise ValueError(f"predictions ({len(predictions)}) and golds ({len(golds)}) differ in length")
    if not len(predictions):
        raise ValueError("no examples to score")


def _ratio(num, den) -> np.ndarray:
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def percent_true(verdicts: Sequence[bool]) -> float:
    """Share of true verdicts, in percent (accuracy of per-example verdicts)."""
    if not len(verdicts):
        raise ValueError("no examples to score")
    return 100.0 * sum(bool(v) for v in verdicts) / len(verdicts)


def _mean_of(per_example: Callable) -> Callable:
    def fn(predictions, golds, labels=None) -> float:
        _check_lengths(predictions, golds)
        return 100.0 * sum(per_example(p, g) for p, g in zip(predictions, golds)) / len(predictions)
    return fn


# ---- label metrics: computed from confusion counts ----

def _confusions(predictions: Sequence, golds: Sequence, labels: Sequence | None = None) -> tuple[np.ndarray, list]:
    """((1, K, K) counts with gold on axis 1, the K labels): labels default to every value seen, sorted."""
    _check_lengths(predictions, golds)
    labels = list(labels) if labels is not None else sorted(set(golds) | set(predictions), key=lambda v: (type(v).__name__, v))
    index = {label: i for i, label in enumerate(labels)}
    unknown = [v for v in (*predictions, *golds) if v not in index]
    if unknown:
        raise ValueError(f"label {unknown[0]!r} is not among the labels; allowed: {', '.join(map(str, labels))}")
    k = len(labels)
    flat = np.array([index[g] * k + index[p] for p, g in zip(predictions, golds)])
    return np.bincount(flat, minlength=k * k).reshape(1, k, k), labels


def _class_counts(conf: np.ndarray):
    tp = np.diagonal(conf, axis1=1, axis2=2).astype(float)
    fp = conf.sum(axis=1) - tp  # predicted as the class, gold another
    fn = conf.sum(axis=2) - tp
    return tp, fp, fn


def _f1(tp, fp, fn) -> np.ndarray:
    return 100.0 * _ratio(2 * tp, 2 * tp + fp + fn)


def _macro_f1(conf: np.ndarray, labels: Sequence) -> np.ndarray:
    """Unweighted mean of per-class F1 over every label (a label never seen scores 0, as sklearn)."""
    return _f1(*_class_counts(conf)).sum(axis=1) / conf.shape[1]


def _micro_f1(conf: np.ndarray, labels: Sequence) -> np.ndarray:
    """F1 of the counts pooled over every label: accuracy, for single-label predictions."""
    return _f1(*(x.sum(axis=1) for x in _class_counts(conf)))


def positive_index(labels: Sequence) -> int | None:
    """Where F1's positive class sits among `labels` (None: it is not one of them)."""
    found = [i for i, label in enumerate(labels) if str(label) == POSITIVE_LABEL]
    return found[0] if found else None


def _binary_f1(conf: np.ndarray, labels: Sequence) -> np.ndarray:
    """F1 of the positive class; 0 when no label is the positive one."""
    i = positive_index(labels)
    if i is None:
        return np.zeros(conf.shape[0])
    return _f1(*(x[:, i] for x in _class_counts(conf)))


def _mcc(conf: np.ndarray, labels: Sequence) -> np.ndarray:
    """Matthews correlation (the multiclass R_K form; the binary formula for two classes); 0 when undefined."""
    n = conf.sum(axis=(1, 2)).astype(float)
    correct = np.trace(conf, axis1=1, axis2=2).astype(float)
    gold, pred = conf.sum(axis=2).astype(float), conf.sum(axis=1).astype(float)
    cov_pg = correct * n - (gold * pred).sum(axis=1)
    den = np.sqrt((n * n - (pred ** 2).sum(axis=1)) * (n * n - (gold ** 2).sum(axis=1)))
    return 100.0 * _ratio(cov_pg, den)


def _of_confusions(of_counts: Callable) -> Callable:
    def fn(predictions, golds, labels=None) -> float:
        conf, labels = _confusions(predictions, golds, labels)
        return float(of_counts(conf, labels)[0])
    return fn


# ---- score metrics (regression) ----

def _ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks per row, ties sharing their average rank (as scipy.stats.rankdata)."""
    out = np.empty(values.shape, dtype=float)
    for i, row in enumerate(values):
        _, inverse, counts = np.unique(row, return_inverse=True, return_counts=True)
        ends = np.cumsum(counts)
        out[i] = (ends - (counts - 1) / 2)[inverse]
    return out


def _pearson(predictions: np.ndarray, golds: np.ndarray) -> np.ndarray:
    """Pearson correlation per row; 0 where either side is constant."""
    a = predictions - predictions.mean(axis=1, keepdims=True)
    b = golds - golds.mean(axis=1, keepdims=True)
    return 100.0 * _ratio((a * b).sum(axis=1), np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1)))


def _spearman(predictions: np.ndarray, golds: np.ndarray) -> np.ndarray:
    return _pearson(_ranks(predictions), _ranks(golds))


def _of_scores(of_rows: Callable) -> Callable:
    def fn(predictions, golds, labels=None) -> float:
        _check_lengths(predictions, golds)
        rows = np.asarray(predictions, dtype=float)[None, :], np.asarray(golds, dtype=float)[None, :]
        return float(of_rows(*rows)[0])
    return fn


# ---- answers (SQuAD v1.1: the official evaluate-v1.1.py normalisation) ----

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower case, drop punctuation, drop articles a/an/the, collapse whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def join_answers(answers: Sequence[str]) -> str:
    """An example's gold answers as a stored prediction's one gold text (duplicates dropped)."""
    return ANSWER_SEPARATOR.join(dict.fromkeys(answers))


def _answers(gold: str | Sequence[str]) -> list[str]:
    """The gold answers: a list as evaluation has them, or a stored prediction's joined text."""
    return str(gold).split(ANSWER_SEPARATOR) if isinstance(gold, str) else [str(g) for g in gold]


def exact_match(prediction: str, gold: str | Sequence[str]) -> bool:
    """The normalised prediction equals one of the normalised gold answers."""
    return any(normalize_answer(prediction) == normalize_answer(g) for g in _answers(gold))


def _token_f1_single(prediction: str, gold: str) -> float:
    pred_tokens, gold_tokens = normalize_answer(prediction).split(), normalize_answer(gold).split()
    common = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred_tokens), common / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, gold: str | Sequence[str]) -> float:
    """Token-bag F1 in [0, 1] against the best-matching gold answer."""
    return max(_token_f1_single(prediction, g) for g in _answers(gold))


# ---- the table ----

for _metric in (
    MetricDef("accuracy", True, "share of correct predictions", fn=_mean_of(lambda p, g: p == g), from_verdicts=True),
    MetricDef("mcc", True, "Matthews correlation", fn=_of_confusions(_mcc), from_confusions=_mcc),
    MetricDef("f1", True, f"F1 of the positive class, label {POSITIVE_LABEL}",
              fn=_of_confusions(_binary_f1), from_confusions=_binary_f1),
    MetricDef("macro_f1", True, "mean per-class F1", fn=_of_confusions(_macro_f1),
              from_confusions=_macro_f1),
    MetricDef("micro_f1", True, "F1 over all classes pooled", fn=_of_confusions(_micro_f1),
              from_confusions=_micro_f1),
    MetricDef("spearman", True, "Spearman rank correlation", inputs="scores", fn=_of_scores(_spearman),
              on_resamples=_spearman),
    MetricDef("pearson", True, "Pearson correlation", inputs="scores", fn=_of_scores(_pearson),
              on_resamples=_pearson),
    MetricDef("em", True, "exact match after SQuAD answer normalisation", inputs="answers",
              fn=_mean_of(exact_match), from_verdicts=True),
    MetricDef("token_f1", True, "SQuAD token F1 against the best gold answer (stored as f1)", inputs="answers",
              fn=_mean_of(token_f1), per_example=token_f1, stored_as="f1"),
):
    register(_metric)
