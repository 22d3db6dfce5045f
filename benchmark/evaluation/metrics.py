"""Scores, pure Python: accuracy, macro/micro F1, MCC, Pearson/Spearman, SQuAD EM/F1.

Every function returns the value as papers print it, in percent (x100): accuracy 87.5,
MCC 61.2, Spearman 89.0. SQuAD normalisation follows the official v1.1 evaluate script.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Hashable, Sequence


def _same_length(a: Sequence, b: Sequence) -> None:
    if len(a) != len(b):
        raise ValueError(f"predictions ({len(a)}) and golds ({len(b)}) differ in length")
    if not a:
        raise ValueError("no examples to score")


def accuracy(correct: Sequence[bool]) -> float:
    if not correct:
        raise ValueError("no examples to score")
    return 100.0 * sum(bool(c) for c in correct) / len(correct)


def _per_class_counts(predictions: Sequence[Hashable], golds: Sequence[Hashable]):
    tp, fp, fn = Counter(), Counter(), Counter()
    for p, g in zip(predictions, golds):
        if p == g:
            tp[g] += 1
        else:
            fp[p] += 1
            fn[g] += 1
    return tp, fp, fn


def _f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def f1_macro(predictions: Sequence[Hashable], golds: Sequence[Hashable], labels: Sequence[Hashable] | None = None) -> float:
    """Unweighted mean of per-class F1 over `labels` (default: every class in gold or prediction)."""
    _same_length(predictions, golds)
    tp, fp, fn = _per_class_counts(predictions, golds)
    classes = list(labels) if labels is not None else sorted(set(golds) | set(predictions), key=str)
    return 100.0 * sum(_f1(tp[c], fp[c], fn[c]) for c in classes) / len(classes)


def f1_micro(predictions: Sequence[Hashable], golds: Sequence[Hashable], labels: Sequence[Hashable] | None = None) -> float:
    """F1 of pooled counts over `labels`; over all classes it equals accuracy (single-label)."""
    _same_length(predictions, golds)
    tp, fp, fn = _per_class_counts(predictions, golds)
    classes = list(labels) if labels is not None else set(golds) | set(predictions)
    return 100.0 * _f1(sum(tp[c] for c in classes), sum(fp[c] for c in classes), sum(fn[c] for c in classes))


def f1_binary(predictions: Sequence[Hashable], golds: Sequence[Hashable], positive: Hashable = 1) -> float:
    """F1 of the positive class (GLUE MRPC/QQP)."""
    _same_length(predictions, golds)
    tp, fp, fn = _per_class_counts(predictions, golds)
    return 100.0 * _f1(tp[positive], fp[positive], fn[positive])


def mcc(predictions: Sequence[Hashable], golds: Sequence[Hashable]) -> float:
    """Matthews correlation (multiclass R_K form; equals the binary formula for two classes); 0 when undefined."""
    _same_length(predictions, golds)
    n = len(golds)
    correct = sum(p == g for p, g in zip(predictions, golds))
    pred_counts, gold_counts = Counter(predictions), Counter(golds)
    classes = set(pred_counts) | set(gold_counts)
    cov_pg = correct * n - sum(pred_counts[c] * gold_counts[c] for c in classes)
    cov_pp = n * n - sum(pred_counts[c] ** 2 for c in classes)
    cov_gg = n * n - sum(gold_counts[c] ** 2 for c in classes)
    if cov_pp == 0 or cov_gg == 0:
        return 0.0
    return 100.0 * cov_pg / math.sqrt(cov_pp * cov_gg)


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float:
    _same_length(xs, ys)
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    if sxx == 0 or syy == 0:
        return 0.0
    return 100.0 * sxy / math.sqrt(sxx * syy)


def _ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, ties sharing their average rank (as scipy.stats.rankdata)."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float:
    _same_length(xs, ys)
    return pearson(_ranks(xs), _ranks(ys))


# ---- SQuAD v1.1 (the official evaluate-v1.1.py normalisation) ----

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower case, drop punctuation, drop articles a/an/the, collapse whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def squad_exact(prediction: str, gold: str) -> bool:
    return normalize_answer(prediction) == normalize_answer(gold)


def squad_f1_single(prediction: str, gold: str) -> float:
    """Token-bag F1 in [0, 1] between one prediction and one gold answer."""
    pred_tokens, gold_tokens = normalize_answer(prediction).split(), normalize_answer(gold).split()
    common = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred_tokens), common / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def squad_scores(predictions: Sequence[str], gold_answers: Sequence[Sequence[str]]) -> tuple[float, float]:
    """(EM, F1) in percent, each example scored against its best-matching gold answer."""
    _same_length(predictions, gold_answers)
    em = sum(max(squad_exact(p, g) for g in golds) for p, golds in zip(predictions, gold_answers))
    f1 = sum(max(squad_f1_single(p, g) for g in golds) for p, golds in zip(predictions, gold_answers))
    return 100.0 * em / len(predictions), 100.0 * f1 / len(predictions)
