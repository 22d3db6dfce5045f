"""A bootstrap 95% interval for a single run's score, from its stored per-example predictions.

Seeds give a spread (mean ± std); a single run has none, yet its test set is a sample too. The
interval resamples the test examples with replacement (percentile bootstrap, a fixed generator so a
report rebuilds identically) and recomputes the metric on each resample. The metric is recomputed
from the predictions; when the full-sample recomputation does not give back the stored value (a
metric this module cannot rebuild, labels stored differently), no interval is shown rather than a
wrong one.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

RESAMPLES = 1000
SEED = 20240101
TOLERANCE = 0.05  # percent points between the recomputed and the stored score


def _codes(*columns: pd.Series) -> tuple[np.ndarray, ...]:
    labels = {v: i for i, v in enumerate(sorted({str(x) for c in columns for x in c}))}
    return tuple(np.array([labels[str(x)] for x in c]) for c in columns)


def _confusions(pred: np.ndarray, gold: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """(resamples, classes, classes) confusion counts, gold on axis 1."""
    k = int(max(pred.max(), gold.max())) + 1
    flat = gold[idx] * k + pred[idx]
    return np.stack([np.bincount(row, minlength=k * k).reshape(k, k) for row in flat])


def _f1_parts(conf: np.ndarray):
    tp = np.diagonal(conf, axis1=1, axis2=2).astype(float)
    fp = conf.sum(axis=1) - tp  # predicted as the class, gold another
    fn = conf.sum(axis=2) - tp
    return tp, fp, fn


def _ratio(num, den):
    return np.divide(num, den, out=np.zeros_like(num, dtype=float), where=den > 0)


def _macro_f1(conf):
    tp, fp, fn = _f1_parts(conf)
    present = (tp + fp + fn) > 0  # classes seen in gold or prediction of the full sample
    return 100 * (_ratio(2 * tp, 2 * tp + fp + fn) * present).sum(axis=1) / np.maximum(present.sum(axis=1), 1)


def _micro_f1(conf):
    tp, fp, fn = (x.sum(axis=1) for x in _f1_parts(conf))
    return 100 * _ratio(2 * tp, 2 * tp + fp + fn)


def _mcc(conf):
    n = conf.sum(axis=(1, 2)).astype(float)
    correct = np.trace(conf, axis1=1, axis2=2).astype(float)
    gold, pred = conf.sum(axis=2).astype(float), conf.sum(axis=1).astype(float)
    cov_pg = correct * n - (gold * pred).sum(axis=1)
    den = np.sqrt((n * n - (pred ** 2).sum(axis=1)) * (n * n - (gold ** 2).sum(axis=1)))
    return 100 * _ratio(cov_pg, den)


def _binary_f1(conf, positive: int):
    tp, fp, fn = (x[:, positive] for x in _f1_parts(conf))
    return 100 * _ratio(2 * tp, 2 * tp + fp + fn)


def _spearman(pred: np.ndarray, gold: np.ndarray, idx: np.ndarray) -> np.ndarray:
    def ranks(x):  # average ranks per resample (ties share their mean rank)
        order = np.argsort(x, axis=1, kind="stable")
        r = np.empty_like(order, dtype=float)
        np.put_along_axis(r, order, np.arange(x.shape[1], dtype=float)[None, :].repeat(x.shape[0], 0), axis=1)
        out = np.empty_like(r)
        for i in range(x.shape[0]):  # ties: rare for regression outputs; fixed per row
            _, inverse, counts = np.unique(x[i], return_inverse=True, return_counts=True)
            sums = np.bincount(inverse, weights=r[i])
            out[i] = (sums / counts)[inverse]
        return out
    a, b = ranks(pred[idx]), ranks(gold[idx])
    a -= a.mean(axis=1, keepdims=True)
    b -= b.mean(axis=1, keepdims=True)
    return 100 * _ratio((a * b).sum(axis=1), np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1)))


def _squad_f1(frame: pd.DataFrame) -> np.ndarray:
    from benchmark.evaluation.metrics import squad_f1_single

    def golds(text):
        try:
            parsed = json.loads(text)
        except (TypeError, ValueError):
            return [str(text)]
        return [str(g) for g in parsed] if isinstance(parsed, list) and parsed else [str(text)]
    return np.array([100 * max(squad_f1_single(str(p), g) for g in golds(t))
                     for p, t in zip(frame["extracted"], frame["gold"])])


def _scores(frame: pd.DataFrame, metric: str, family: str | None, idx: np.ndarray) -> np.ndarray | None:
    """The metric on each resample (rows of idx), or None when this metric cannot be rebuilt."""
    if metric in ("accuracy", "em"):
        return 100 * frame["correct"].fillna(False).to_numpy(dtype=float)[idx].mean(axis=1)
    if metric == "f1" and family == "qa":
        return _squad_f1(frame)[idx].mean(axis=1)
    if metric == "spearman":
        try:
            pred, gold = frame["extracted"].astype(float).to_numpy(), frame["gold"].astype(float).to_numpy()
        except ValueError:
            return None
        return _spearman(pred, gold, idx)
    pred, gold = _codes(frame["extracted"], frame["gold"])
    conf = _confusions(pred, gold, idx)
    if metric == "macro_f1":
        return _macro_f1(conf)
    if metric == "micro_f1":
        return _micro_f1(conf)
    if metric == "mcc":
        return _mcc(conf)
    if metric == "f1":  # binary F1 of the positive class, as GLUE MRPC / QQP: "1" (or the larger label)
        labels = sorted({str(x) for x in pd.concat([frame["extracted"], frame["gold"]])})
        positive = "1" if "1" in labels else labels[-1]
        return _binary_f1(conf, labels.index(positive))
    return None


def bootstrap_interval(frame: pd.DataFrame, metric: str, stored: float, family: str | None = None,
                       resamples: int = RESAMPLES) -> tuple[float, float] | None:
    """(low, high) of the 95% percentile interval, or None (no predictions, or the metric is not rebuilt)."""
    if frame is None or frame.empty:
        return None
    n = len(frame)
    full = _scores(frame, metric, family, np.arange(n)[None, :])
    if full is None or abs(float(full[0]) - stored) > TOLERANCE:
        return None
    idx = np.random.default_rng(SEED).integers(0, n, size=(resamples, n))
    scores = _scores(frame, metric, family, idx)
    low, high = np.percentile(scores, [2.5, 97.5])
    return float(low), float(high)
