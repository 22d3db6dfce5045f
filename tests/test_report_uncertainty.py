"""The report's bootstrap intervals recompute the very metric evaluation reported: the metric table's
entries (benchmark/metrics.py), on stored predictions (text columns, as the store keeps them)."""

import numpy as np
import pandas as pd
import pytest

from benchmark import metrics
from benchmark.report import uncertainty


def frame(extracted, gold, correct=None):
    correct = correct if correct is not None else [str(p) == str(g) for p, g in zip(extracted, gold)]
    return pd.DataFrame({"extracted": [str(x) for x in extracted], "gold": [str(x) for x in gold], "correct": correct})


def full_sample(predictions: pd.DataFrame, name: str, inputs=None) -> float:
    definition = metrics.get(name, inputs)
    return float(uncertainty._scores(predictions, definition, np.arange(len(predictions))[None, :])[0])


RNG = np.random.default_rng(0)
GOLD = RNG.integers(0, 3, 60)
PRED = np.where(RNG.random(60) < 0.7, GOLD, RNG.integers(0, 3, 60))


@pytest.mark.parametrize("name", ["accuracy", "mcc", "f1", "macro_f1", "micro_f1"])
def test_label_metrics_on_stored_text_equal_the_table_on_the_labels(name):
    expected = metrics.get(name).fn(list(PRED), list(GOLD), [0, 1, 2])
    assert full_sample(frame(PRED, GOLD), name) == pytest.approx(expected)
    low, high = uncertainty.bootstrap_interval(frame(PRED, GOLD), name, expected)
    assert low <= expected <= high and low < high


def test_f1_is_the_positive_class_1_not_the_larger_label():
    predictions = frame([2, 2, 1, 0, 1], [2, 1, 1, 0, 0])
    # label 1: tp 1, fp 1, fn 1 -> 50; label 2 would give tp 1, fp 1, fn 0 -> 66.7
    assert full_sample(predictions, "f1") == pytest.approx(50.0)
    assert uncertainty.bootstrap_interval(predictions, "f1", 200 / 3) is None  # "the larger label" is not rebuilt


def test_correlations_resampled_equal_the_table():
    gold = RNG.random(40) * 5
    pred = gold + RNG.normal(0, 1, 40)
    pred[:4] = pred[4]  # ties share their average rank in both implementations
    predictions = frame([f"{p:.3f}" for p in pred], [f"{g:.3f}" for g in gold])
    for name in ("spearman", "pearson"):
        expected = metrics.get(name).fn([float(f"{p:.3f}") for p in pred], [float(f"{g:.3f}") for g in gold])
        assert full_sample(predictions, name) == pytest.approx(expected)
        assert uncertainty.bootstrap_interval(predictions, name, expected) is not None


def test_squad_em_and_token_f1_from_joined_gold_answers():
    answers = ["Paris", "red dog", "1912", "London"]
    golds = [["paris", "City of Paris"], ["the big red dog"], ["in 1912"], ["Oslo"]]
    predictions = frame(answers, [metrics.join_answers(g) for g in golds],
                        correct=[metrics.exact_match(a, g) for a, g in zip(answers, golds)])
    em = metrics.get("em", "answers").fn(answers, golds)
    f1 = metrics.get("f1", "answers").fn(answers, golds)
    assert (em, f1) == (25.0, pytest.approx(100 * (1 + 0.8 + 2 / 3 + 0) / 4))
    assert full_sample(predictions, "em", "answers") == em
    assert full_sample(predictions, "f1", "answers") == pytest.approx(f1)
    # A stored "f1" of SQuAD rows is rebuilt as token F1 (binary F1 of these answers would be 0).
    assert uncertainty._rebuilt(predictions, "f1", f1).name == "token_f1"
    assert uncertainty.bootstrap_interval(predictions, "f1", f1) is not None


def test_no_interval_without_predictions_or_for_a_value_they_do_not_give_back():
    assert uncertainty.bootstrap_interval(frame([], []), "accuracy", 50.0) is None
    assert uncertainty.bootstrap_interval(frame([1, 0], [1, 1]), "accuracy", 75.0) is None
    assert uncertainty.bootstrap_interval(frame([1, 0], [1, 1]), "no_such_metric", 50.0) is None
