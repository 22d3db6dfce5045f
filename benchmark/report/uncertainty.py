"""A bootstrap 95% interval for a single run's score, from its stored per-example predictions.

Seeds give a spread (mean ± std); a single run has none, yet its test set is a sample too. The
interval resamples the test examples with replacement (percentile bootstrap, a fixed generator so a
report rebuilds identically) and recomputes the metric on each resample with the metric table's
entry (benchmark.metrics: its per-example scorer, the stored verdicts, its confusion-count or
resampled-array form), so the interval is of the very metric evaluation reported. The metric is recomputed
from the predictions; when the full-sample recomputation does not give back the stored value (a
metric this module cannot rebuild, labels stored differently), no interval is shown rather than a
wrong one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from benchmark import metrics
from benchmark.metrics import MetricDef

RESAMPLES = 1000
SEED = 20240101
TOLERANCE = 0.05  # percent points between the recomputed and the stored score


def _codes(*columns: pd.Series) -> tuple[list[str], tuple[np.ndarray, ...]]:
    """The sorted labels seen in any column (as text, as predictions store them) and each column's codes."""
    labels = sorted({str(x) for c in columns for x in c})
    index = {v: i for i, v in enumerate(labels)}
    return labels, tuple(np.array([index[str(x)] for x in c]) for c in columns)


def _confusions(pred: np.ndarray, gold: np.ndarray, idx: np.ndarray, k: int) -> np.ndarray:
    """(resamples, classes, classes) confusion counts, gold on axis 1."""
    flat = gold[idx] * k + pred[idx]
    return np.stack([np.bincount(row, minlength=k * k).reshape(k, k) for row in flat])


def _scores(frame: pd.DataFrame, metric: MetricDef, idx: np.ndarray) -> np.ndarray | None:
    """The metric on each resample (rows of idx), or None when stored predictions cannot rebuild it."""
    if metric.from_verdicts:  # the verdicts evaluation stored (its answer rules, e.g. a number's tolerance)
        return 100 * frame["correct"].fillna(False).to_numpy(dtype=float)[idx].mean(axis=1)
    if metric.per_example is not None:
        per_example = np.array([metric.per_example(str(p), str(g)) for p, g in zip(frame["extracted"], frame["gold"])])
        return 100 * per_example[idx].mean(axis=1)
    if metric.on_resamples is not None:
        try:
            pred, gold = frame["extracted"].astype(float).to_numpy(), frame["gold"].astype(float).to_numpy()
        except ValueError:
            return None
        return metric.on_resamples(pred[idx], gold[idx])
    if metric.from_confusions is not None:
        labels, (pred, gold) = _codes(frame["extracted"], frame["gold"])
        return metric.from_confusions(_confusions(pred, gold, idx, len(labels)), labels)
    return None


def _rebuilt(frame: pd.DataFrame, name: str, stored: float) -> MetricDef | None:
    """The table entry stored as `name` that gives back the stored value from the predictions: a stored
    "f1" is binary F1 of labels or SQuAD's token F1 of answers, and only the predictions tell which."""
    everything = np.arange(len(frame))[None, :]
    for definition in metrics.candidates(name):
        full = _scores(frame, definition, everything)
        if full is not None and abs(float(full[0]) - stored) <= TOLERANCE:
            return definition
    return None


def bootstrap_interval(frame: pd.DataFrame, metric: str, stored: float,
                       resamples: int = RESAMPLES) -> tuple[float, float] | None:
    """(low, high) of the 95% percentile interval, or None (no predictions, or the metric is not rebuilt)."""
    if frame is None or frame.empty:
        return None
    definition = _rebuilt(frame, metric, stored)
    if definition is None:
        return None
    n = len(frame)
    idx = np.random.default_rng(SEED).integers(0, n, size=(resamples, n))
    scores = _scores(frame, definition, idx)
    low, high = np.percentile(scores, [2.5, 97.5])
    return float(low), float(high)
