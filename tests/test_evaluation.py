"""Answer extraction (both protocols, quirks included) and the metrics, on hand-written cases."""

import math

import pytest

from benchmark import metrics
from benchmark.errors import UserError
from benchmark.evaluation import extract_answer, is_correct
from benchmark.metrics import normalize_answer, percent_true, token_f1
from benchmark.registry.catalogue import DatasetEntry

NUMERIC = DatasetEntry(name="num", format="llm-adapters", path="x.json", task_family="math", answer="number")
LETTER = DatasetEntry(name="aqua", format="llm-adapters", path="x.json", task_family="math", answer="letter",
                      labels=("A", "B", "C", "D", "E"))
OPTIONS = DatasetEntry(name="wino", format="llm-adapters", path="x.json", task_family="commonsense", answer="choice",
                       labels=("option1", "option2"))
ANSWERS = DatasetEntry(name="arc", format="llm-adapters", path="x.json", task_family="commonsense", answer="choice",
                       labels=("answer1", "answer2", "answer3", "answer4", "answer5"))
BOOL = DatasetEntry(name="bq", format="llm-adapters", path="x.json", task_family="commonsense", answer="choice",
                    labels=("true", "false"))


# ---- numbers (evaluate.py) ----

@pytest.mark.parametrize("output, expected", [
    ("She has 3 apples and buys 4, so 7.", "7."),
    ("The total is 1,234 dollars", "1234"),
    ("It drops to -12.5 degrees", "-12.5"),
    ("5 - 8 = -3", "-3"),
    ("first 10 then 20 then 30", "30"),  # the LAST number wins
    ("The answer is 42. Check: 6 * 7", "7"),  # ... even after the answer phrase (reference quirk)
    ("no digits here", "inf"),
    ("1,000,000", "1000000"),
])
def test_numeric_reference_rule(output, expected):
    assert extract_answer(NUMERIC, output) == expected


def test_numeric_correctness_tolerance_and_inf():
    assert is_correct(NUMERIC, "1234", "1234.0")
    assert is_correct(NUMERIC, "7.", "7.0")
    assert is_correct(NUMERIC, "1.8333", "1.8333333333333335")
    assert not is_correct(NUMERIC, "1.83", "1.8333333333333335")
    assert not is_correct(NUMERIC, extract_answer(NUMERIC, "no number"), "5.0")
    assert extract_answer(NUMERIC, "no number") == "inf"
    with pytest.raises(ValueError, match="gold answer"):
        is_correct(NUMERIC, "1", "one")


def test_numeric_strict_prefers_the_answer_phrase():
    text = "The answer is 42. Check: 6 * 7"
    assert extract_answer(NUMERIC, text, "strict") == "42."  # same number pattern: the period is kept
    assert extract_answer(NUMERIC, "So 3 and then the answer is 1,500 apples. Then 9", "strict") == "1500"
    assert extract_answer(NUMERIC, "first 10 then 20", "strict") == "20"  # no phrase: last number
    assert extract_answer(NUMERIC, "The answer is unclear, 8", "strict") == "8"  # phrase tail has a number
    assert extract_answer(NUMERIC, "nothing", "strict") == "inf"


# ---- letters (AQuA) ----

@pytest.mark.parametrize("output, expected", [
    ("Each box holds 5. The answer is C", "E"),  # "Each" gives E: the reference quirk
    ("The answer is B", "B"),  # no capital A-E before the B
    ("Answer: (D)", "A"),  # "Answer" starts with A
    ("so it is d", ""),
    ("  C", "C"),
])
def test_letter_reference_rule(output, expected):
    assert extract_answer(LETTER, output) == expected


@pytest.mark.parametrize("output, expected", [
    ("Each box holds 5. The answer is C", "C"),
    ("Divide 10 by 2. So the answer is (D).", "D"),
    ("Answer is: E", "E"),
    ("Each option fails except B", "B"),  # no phrase: the last standalone capital letter
    ("Each Day Counts", ""),  # letters inside words never count
    ("the answer is a bit long, so E", "E"),  # lower-case 'a' is not an option letter
])
def test_letter_strict_rule(output, expected):
    assert extract_answer(LETTER, output, "strict") == expected


def test_letter_correctness_is_exact():
    assert is_correct(LETTER, "C", "C")
    assert not is_correct(LETTER, "", "C")
    assert not is_correct(LETTER, "c", "C")


# ---- choices (commonsense_evaluate.py) ----

def test_choice_reference_rule():
    assert extract_answer(OPTIONS, "the correct answer is option2") == "option2"
    assert extract_answer(OPTIONS, "option1 looks wrong; the correct answer is option2") == "option1"  # first wins
    assert extract_answer(OPTIONS, "the correct answer is 2") == ""
    assert extract_answer(ANSWERS, "the correct answer is answer5") == "answer5"
    assert extract_answer(BOOL, "the correct answer is untrue") == "true"  # matches inside a word
    assert extract_answer(BOOL, "the correct answer is false") == "false"
    assert is_correct(OPTIONS, "option2", "option2")
    assert not is_correct(OPTIONS, "", "option2")


def test_choice_strict_rule():
    assert extract_answer(OPTIONS, "option1 looks wrong; the correct answer is option2", "strict") == "option2"
    assert extract_answer(OPTIONS, "I pick option1", "strict") == "option1"  # no phrase: first label
    assert extract_answer(BOOL, "the correct answer is untrue", "strict") == ""  # whole words only
    assert extract_answer(BOOL, "The correct answer is true.", "strict") == "true"


def test_rule_comes_from_the_catalogue_entry_by_name():
    # The real catalogue: AQuA is a letter rule, piqa a choice rule, gsm8k a number rule.
    assert extract_answer("AQuA", "Each") == "E"
    assert extract_answer("piqa", "the correct answer is solution2") == "solution2"
    assert extract_answer("gsm8k", "that is 1,234") == "1234"


def test_unknown_protocol_and_non_generation_rule():
    with pytest.raises(ValueError, match="protocol"):
        extract_answer(NUMERIC, "1", protocol="lenient")
    span = DatasetEntry(name="sq", format="squad-v1", path="x", task_family="qa", answer="span")
    with pytest.raises(ValueError, match="not a generation rule"):
        extract_answer(span, "x")


# ---- metrics (the table in benchmark/metrics.py) ----

def score(name, predictions, golds, labels=None, inputs=None):
    return metrics.get(name, inputs).fn(predictions, golds, labels)


def test_accuracy_in_percent():
    assert percent_true([True, False, True, True]) == 75.0
    assert score("accuracy", ["a", "b", "c", "d"], ["a", "x", "c", "d"]) == 75.0
    with pytest.raises(ValueError):
        percent_true([])
    with pytest.raises(ValueError, match="no examples"):
        score("accuracy", [], [])


def test_f1_macro_micro_binary():
    golds = [0, 0, 1, 1, 2]
    preds = [0, 1, 1, 1, 0]
    # class 0: tp1 fp1 fn1 -> 0.5; class 1: tp2 fp1 fn0 -> 0.8; class 2: tp0 -> 0
    assert score("macro_f1", preds, golds) == pytest.approx(100 * (0.5 + 0.8 + 0.0) / 3)
    assert score("macro_f1", preds, golds, labels=(0, 1, 2, 3)) == pytest.approx(100 * (0.5 + 0.8) / 4)  # 3: never seen
    assert score("micro_f1", preds, golds) == pytest.approx(60.0)  # = accuracy for single-label
    assert score("f1", [1, 1, 0, 0], [1, 0, 1, 0]) == pytest.approx(50.0)
    with pytest.raises(ValueError, match="not among the labels"):
        score("macro_f1", [0, 7], [0, 1], labels=(0, 1))


def test_f1_positive_class_is_label_1_as_int_or_text_and_nothing_else():
    assert score("f1", ["1", "1", "0", "0"], ["1", "0", "1", "0"]) == pytest.approx(50.0)
    # not "the larger label": with labels 0/2 nothing is positive
    assert score("f1", [2, 2, 0], [2, 2, 0]) == 0.0
    assert metrics.positive_index(["0", "1", "2"]) == 1 and metrics.positive_index([0, 1]) == 1


def test_mcc():
    # tp=2 tn=1 fp=1 fn=0: (2*1 - 1*0) / sqrt(3*2*1*2)
    assert score("mcc", [1, 1, 1, 0], [1, 1, 0, 0]) == pytest.approx(100 * 2 / math.sqrt(12))
    assert score("mcc", [1, 0, 1, 0], [1, 0, 1, 0]) == pytest.approx(100.0)
    assert score("mcc", [1, 1, 1, 1], [1, 0, 1, 0]) == 0.0  # undefined -> 0, as sklearn


def test_correlations():
    assert score("pearson", [1, 2, 3], [2, 4, 6]) == pytest.approx(100.0)
    assert score("pearson", [1, 2, 3], [3, 2, 1]) == pytest.approx(-100.0)
    assert score("spearman", [1, 2, 3, 4], [1, 4, 9, 100]) == pytest.approx(100.0)  # monotone, not linear
    # ties share their average rank: x ranks [1.5,1.5,3], y ranks [1,2,3]
    assert score("spearman", [1, 1, 2], [1, 2, 3]) == pytest.approx(100 * 0.8660254, rel=1e-6)
    assert score("pearson", [1, 1, 1], [1, 2, 3]) == 0.0  # constant: undefined -> 0
    with pytest.raises(ValueError, match="differ in length"):
        score("spearman", [1, 2], [1])


def test_squad_normalisation_and_scores():
    assert normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
    assert normalize_answer("an apple a day") == "apple day"
    assert token_f1("the big red dog", ["a red dog"]) == pytest.approx(2 * (2 / 3) * 1 / (2 / 3 + 1))
    predictions, golds = ["Paris", "red dog"], [["paris", "City of Paris"], ["the big red dog"]]
    assert score("em", predictions, golds, inputs="answers") == pytest.approx(50.0)
    assert score("f1", predictions, golds, inputs="answers") == pytest.approx(100 * (1.0 + 0.8) / 2)
    # a stored prediction's joined gold text scores as the answer list it came from
    assert token_f1("red dog", metrics.join_answers(["x", "the big red dog", "x"])) == pytest.approx(0.8)


def test_the_table_names_what_results_store_and_f1_depends_on_what_is_compared():
    assert metrics.names() == ["accuracy", "em", "f1", "macro_f1", "mcc", "micro_f1", "pearson", "spearman"]
    assert metrics.get("f1").name == "f1" and metrics.get("f1", "answers").name == "token_f1"
    assert metrics.get("f1", "answers").stored_name == "f1"
    assert all(metrics.get(name).higher_is_better for name in metrics.names())
    with pytest.raises(UserError, match="did you mean 'macro_f1'"):
        metrics.get("macro_f")
    with pytest.raises(UserError, match="does not score answers"):
        metrics.get("mcc", "answers")
