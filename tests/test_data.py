"""Embedded data: determinism, real formats, learnable-and-fair labels, train/test disjointness."""

import hashlib
import json
import re
from collections import Counter

import pytest

from benchmark.data.embedded import GENERATOR_VERSION, corpus, ensure, write_all

NUMERIC = ("AddSub", "MultiArith", "SingleEq", "gsm8k", "SVAMP", "mawps")
CHOICES = {
    "boolq": ("true", "false"), "piqa": ("solution1", "solution2"), "social_i_qa": ("answer1", "answer2", "answer3"),
    "hellaswag": ("ending1", "ending2", "ending3", "ending4"), "winogrande": ("option1", "option2"),
    "ARC-Easy": tuple(f"answer{i}" for i in range(1, 6)), "ARC-Challenge": tuple(f"answer{i}" for i in range(1, 6)),
    "openbookqa": ("answer1", "answer2", "answer3", "answer4"),
}
PHRASES = {
    "boolq": "Please answer the following question with true or false, question: ",
    "piqa": "Please choose the correct solution to the question: ",
    "social_i_qa": "Please choose the correct answer to the question: ",
    "hellaswag": "Please choose the correct ending to complete the given sentence: ",
    "winogrande": "Please choose the correct answer to fill in the blank to complete the given sentence: ",
    "ARC-Easy": "Please choose the correct answer to the question: ",
    "ARC-Challenge": "Please choose the correct answer to the question: ",
    "openbookqa": "Please choose the correct answer to the question: ",
}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    out = tmp_path_factory.mktemp("embedded")
    write_all(out)
    return out


def _rows(root, rel):
    return json.loads((root / rel).read_text())


def _jsonl(root, rel):
    return [json.loads(line) for line in (root / rel).read_text().splitlines()]


def _digest(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_two_writes_are_byte_identical_and_counts_match(tmp_path, root):
    counts = write_all(tmp_path / "again")
    assert _digest(tmp_path / "again") == _digest(root)
    assert counts["ft-training_set/math_10k.json"] == len(_rows(root, "ft-training_set/math_10k.json"))
    assert set(counts) == set(_digest(root))
    assert 1500 <= counts["ft-training_set/math_10k.json"] <= 2500
    assert 2500 <= counts["ft-training_set/commonsense_170k.json"] <= 3500


def test_corpus_is_deterministic_and_covers_tasks_and_templates():
    first, second = list(corpus()), list(corpus())
    assert first == second
    text = "\n".join(first)
    for word in ("### Instruction:", "Below is an instruction", "Answer format: solution1/solution2",
                 "The answer is", "[[", "lives in"):
        assert word in text


def test_ensure_writes_once_and_rewrites_a_stale_version(tmp_path):
    target = tmp_path / "emb"
    assert ensure(target) == target
    stamp = target / ".generator-version"
    assert stamp.read_text().strip() == GENERATOR_VERSION
    marker = target / "dataset" / "gsm8k" / "test.json"
    mtime = marker.stat().st_mtime_ns
    ensure(target)
    assert marker.stat().st_mtime_ns == mtime  # current: untouched
    stamp.write_text("0\n")
    marker.write_text("[]")
    ensure(target)
    assert stamp.read_text().strip() == GENERATOR_VERSION and len(json.loads(marker.read_text())) == 120
    assert [p.name for p in tmp_path.iterdir()] == ["emb"]  # no temp or trash folders left behind


def test_ensure_survives_concurrent_callers(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: ensure(tmp_path / "emb"), range(4)))
    assert all(r == tmp_path / "emb" for r in results)
    assert len(json.loads((tmp_path / "emb" / "dataset" / "piqa" / "test.json").read_text())) == 120
    assert [p.name for p in tmp_path.iterdir()] == ["emb"]


def _check_row_shape(row):
    assert set(row) == {"instruction", "input", "output", "answer"}
    assert all(isinstance(v, str) for v in row.values()) and row["input"] == ""


@pytest.mark.parametrize("name", NUMERIC)
def test_numeric_math_sets(root, name):
    rows = _rows(root, f"dataset/{name}/test.json")
    assert len(rows) == 120
    for row in rows:
        _check_row_shape(row)
        gold = float(row["answer"])
        assert 0 <= gold <= 18 and row["answer"].endswith(".0")
        assert row["output"].endswith(f"The answer is {int(gold)}")
        # the reference rule: the LAST number of the output, commas removed
        assert float(re.findall(r"-?\d+\.?\d*", row["output"].replace(",", ""))[-1]) == gold


def test_aqua_letters_are_balanced_and_survive_the_first_letter_rule(root):
    rows = _rows(root, "dataset/AQuA/test.json")
    for row in rows:
        _check_row_shape(row)
        assert row["answer"] in "ABCDE" and len(row["answer"]) == 1
        assert re.search(r"Answer Choices: \(A\) \d+ \(B\) \d+ \(C\) \d+ \(D\) \d+ \(E\) \d+$", row["instruction"])
        assert row["output"].endswith(f"The answer is {row['answer']}")
        # the reference takes the FIRST A-E in the output: the rationale must not contain one earlier
        assert re.search(r"A|B|C|D|E", row["output"]).group() == row["answer"]
        value = re.search(rf"\({row['answer']}\) (\d+)", row["instruction"]).group(1)
        assert f"= {value}." in row["output"]
    assert set(Counter(r["answer"] for r in rows).values()) == {24}


def test_math_training_set_mixes_numeric_and_choice_items(root):
    rows = _rows(root, "ft-training_set/math_10k.json")
    for row in rows:
        _check_row_shape(row)
    letters = [r for r in rows if r["answer"] in tuple("ABCDE")]
    assert 100 < len(letters) < len(rows) // 2
    assert all(float(r["answer"]) >= 0 for r in rows if r not in letters)


@pytest.mark.parametrize("name", CHOICES)
def test_commonsense_sets_use_the_real_phrasing_and_balanced_labels(root, name):
    rows = _rows(root, f"dataset/{name}/test.json")
    assert len(rows) == 120
    for row in rows:
        _check_row_shape(row)
        assert row["answer"] in CHOICES[name]
        assert row["output"] == f"the correct answer is {row['answer']}"
        assert row["instruction"].startswith(PHRASES[name])
        fmt = re.search(r"Answer format: (\S+)$", row["instruction"]).group(1).split("/")
        assert row["answer"] in fmt
    counts = Counter(r["answer"] for r in rows)
    if name.startswith("ARC"):  # 4 options mostly, a few 5: balanced within each option count
        assert min(counts[f"answer{i}"] for i in range(1, 5)) >= 20 and counts["answer5"] <= 12
    else:
        assert set(counts.values()) == {120 // len(CHOICES[name])}


def test_commonsense_exact_layouts(root):
    piqa = _rows(root, "dataset/piqa/test.json")[0]["instruction"]
    assert re.fullmatch(r"Please choose the correct solution to the question: [^\n]+\n\nSolution1: [^\n]+\n\n"
                        r"Solution2: [^\n]+\n\nAnswer format: solution1/solution2", piqa)
    boolq = _rows(root, "dataset/boolq/test.json")[0]["instruction"]
    assert re.fullmatch(r"Please answer the following question with true or false, question: [^\n]+\?\n\n"
                        r"Answer format: true/false", boolq)
    wino = _rows(root, "dataset/winogrande/test.json")[0]["instruction"]
    assert re.fullmatch(r"[^\n]+ _[^\n]*\n\nOption1: \w+ Option2: \w+ Answer format: option1/option2", wino)


def test_boolq_passage_determines_the_label(root):
    """Open-book BoolQ: the label follows from the passage (learnable in the demo's budget), and
    neither the negation alone nor the category match alone decides every item."""
    from benchmark.data.embedded.lexicon import CATEGORIES

    phrases = "|".join(re.escape(p) for p, _, _ in CATEGORIES.values())
    kinds = Counter()
    for rel in ("dataset/boolq/test.json", "ft-training_set/commonsense_170k.json"):
        for row in _rows(root, rel):
            if not row["instruction"].endswith("Answer format: true/false"):
                continue
            m = re.search(rf"question: (?:we know that |it is said that )?the (\w+ \w+) is (not )?({phrases})\. "
                          rf"(?:is|would you call|is it true that) the (\w+ \w+) (?:is )?({phrases})\?\n", row["instruction"])
            assert m, row["instruction"]
            noun, negated, stated, asked_noun, asked = m.groups()
            assert asked_noun == noun
            assert row["answer"] == ("true" if not negated and asked == stated else "false")
            kinds["negated" if negated else "match" if asked == stated else "mismatch"] += 1
    assert min(kinds.values()) > 50, kinds


def test_commonsense_training_set_mixes_all_formats(root):
    rows = _rows(root, "ft-training_set/commonsense_170k.json")
    for row in rows:
        _check_row_shape(row)
        assert row["output"] == f"the correct answer is {row['answer']}"
    formats = Counter(re.search(r"Answer format: (\S+)$", r["instruction"]).group(1) for r in rows)
    assert set(formats) == {"true/false", "solution1/solution2", "answer1/answer2/answer3",
                            "ending1/ending2/ending3/ending4", "option1/option2", "answer1/answer2/answer3/answer4",
                            "answer1/answer2/answer3/answer4/answer5"}
    assert all(any(r["instruction"].startswith(p) for r in rows) for p in PHRASES.values())


def test_train_and_test_items_are_disjoint(root):
    for family, tests in (("math_10k", [*NUMERIC, "AQuA"]), ("commonsense_170k", list(CHOICES))):
        train = {r["instruction"] for r in _rows(root, f"ft-training_set/{family}.json")}
        for name in tests:
            test = {r["instruction"] for r in _rows(root, f"dataset/{name}/test.json")}
            assert len(test) == 120 and not (train & test), name
    for task in ("sst2", "rte", "stsb", "cola"):
        splits = [{json.dumps([r.get("sentence"), r.get("sentence1"), r.get("sentence2")])
                   for r in _jsonl(root, f"glue/{task}/{s}.jsonl")} for s in ("train", "validation", "test")]
        assert not (splits[0] & splits[1]) and not (splits[0] & splits[2]) and not (splits[1] & splits[2])
    for task in ("chemprot", "imdb"):
        texts = [{r["text"] for r in _jsonl(root, f"dapt/{task}/{s}.jsonl")} for s in ("train", "dev", "test")]
        assert not (texts[0] & texts[2]) and not (texts[0] & texts[1])


def test_glue_fields_and_label_types(root):
    for task, fields in (("sst2", {"sentence"}), ("cola", {"sentence"}), ("rte", {"sentence1", "sentence2"}),
                         ("stsb", {"sentence1", "sentence2"})):
        for split in ("train", "validation", "test"):
            rows = _jsonl(root, f"glue/{task}/{split}.jsonl")
            assert rows and all(set(r) == fields | {"label", "idx"} for r in rows)
            if split == "test":
                assert {r["label"] for r in rows} == {-1}
            elif task == "stsb":
                assert all(isinstance(r["label"], float) and 0 <= r["label"] <= 5 for r in rows)
            else:
                labels = Counter(r["label"] for r in rows)
                assert set(labels) == {0, 1} and abs(labels[0] - labels[1]) <= 1


def test_dapt_string_labels_balanced(root):
    for task in ("chemprot", "imdb"):
        rows = _jsonl(root, f"dapt/{task}/train.jsonl")
        assert all(set(r) == {"text", "label"} and isinstance(r["label"], str) for r in rows)
        counts = Counter(r["label"] for r in rows)
        assert max(counts.values()) - min(counts.values()) <= 1 and len(counts) >= 2


def test_squad_answer_starts_are_correct(root):
    for split in ("train", "dev"):
        raw = _rows(root, f"squad/{split}-v1.1.json")
        assert raw["version"] == "1.1"
        n = 0
        for article in raw["data"]:
            assert isinstance(article["title"], str)
            for para in article["paragraphs"]:
                for qa in para["qas"]:
                    n += 1
                    assert qa["answers"] and isinstance(qa["id"], str)
                    for ans in qa["answers"]:
                        start = ans["answer_start"]
                        assert para["context"][start:start + len(ans["text"])] == ans["text"]
        assert n >= 100
