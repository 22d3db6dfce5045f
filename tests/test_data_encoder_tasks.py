"""The PT+UniPELT data: GLUE, DAPT, SQuAD and the DAPT corpora in the catalogue, their embedded twins
(sizes, labels, disjoint splits, learnable from words), the `text` format, the dev role and `split:`."""

import json
import re
from collections import Counter

import pytest

from benchmark.data import load_examples, split_of
from benchmark.data.embedded import dapt_tasks, encoder_pretraining_documents, generate_all, glue_tasks
from benchmark.errors import UserError
from benchmark.registry import catalogue
from benchmark.registry.catalogue import DatasetEntry, parse_datasets
from benchmark.registry.formats.text import load_file as load_text

GLUE = ("cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte")
DAPT = ("chemprot", "rct", "acl_arc", "sciie", "hyperpartisan", "agnews", "helpfulness", "imdb")
METRICS = {"cola": "mcc", "sst2": "accuracy", "mrpc": "f1", "stsb": "spearman", "qqp": "f1", "mnli": "accuracy",
           "qnli": "accuracy", "rte": "accuracy", "chemprot": "micro_f1", "rct": "micro_f1", "acl_arc": "macro_f1",
           "sciie": "macro_f1", "hyperpartisan": "macro_f1", "agnews": "macro_f1", "helpfulness": "macro_f1",
           "imdb": "macro_f1", "squad": "em"}
DAPT_LABELS = {"chemprot": 5, "rct": 5, "acl_arc": 6, "sciie": 7, "hyperpartisan": 2, "agnews": 4, "helpfulness": 2,
               "imdb": 2}
DOMAINS = ("biomed", "cs", "news", "reviews")


@pytest.fixture(scope="module")
def entries():
    return catalogue.datasets()


@pytest.fixture(scope="module")
def files():
    return generate_all()


def _load(entries, name):
    return load_examples(entries[name], None)


# ---- the catalogue ----

def test_catalogue_names_roles_metrics_and_twins(entries):
    for task, metric in METRICS.items():
        real, twin = entries[task], entries[f"emb-{task}"]
        assert real.role == twin.role == "eval" and real.metric == twin.metric == metric, task
        assert real.embedded_twin == twin.name and twin.embedded and not real.embedded and real.source_note
        assert entries[f"{task}-train"].role == "train" and entries[f"{task}-train"].embedded_twin == f"emb-{task}-train"
        assert entries[f"emb-{task}-train"].role == "train"
        assert real.task_family == ("qa" if task == "squad" else "classification")
    for task in DAPT:
        assert entries[f"{task}-dev"].role == entries[f"emb-{task}-dev"].role == "dev"
        assert entries[f"{task}-dev"].embedded_twin == f"emb-{task}-dev"
        assert entries[task].format == "dapt-jsonl" and entries[task].path == f"dapt/{task}"
    for task in GLUE:
        assert entries[task].format == "hf" and entries[task].path == f"nyu-mll/glue:{task}"
    assert entries["mnli"].split == entries["emb-mnli"].split == "validation_matched"
    assert entries["mnli"].labels == ("entailment", "neutral", "contradiction")
    assert entries["squad"].format == "squad-v1" and entries["squad-hf"].path == "rajpurkar/squad"
    for domain in DOMAINS:
        real, twin = entries[f"corpus-{domain}"], entries[f"emb-corpus-{domain}"]
        assert real.format == twin.format == "text" and real.task_family == "corpus" and real.path == f"corpora/{domain}.txt"
        assert real.embedded_twin == twin.name and "DAPT" in real.source_note
    # the report maps each embedded eval set back to exactly one real one
    for entry in entries.values():
        if entry.embedded and entry.role == "eval":
            assert len([e for e in entries.values() if e.embedded_twin == entry.name and e.role == "eval"]) <= 1


def _parse(body: dict):
    return parse_datasets({"tables": {"t": {"title": "T"}}, "datasets": {"x": {"path": "p", "task_family": "classification", **body}}},
                          __import__("pathlib").Path("d.yaml"))


def test_catalogue_entry_carries_table_column_metrics_and_chance(entries):
    assert (entries["cola"].table, entries["cola"].column, entries["rte"].column) == ("glue", 1, 8)
    assert entries["squad"].metrics == ("em", "f1") and entries["squad"].metric == "em"
    assert entries["gsm8k"].table == "math" and entries["gsm8k"].column is None  # default: its task family
    assert entries["math_10k"].table is None  # training sets are in no table
    assert (entries["AQuA"].labels, entries["AQuA"].chance) == (tuple("ABCDE"), 20.0)
    assert (entries["boolq"].chance, entries["gsm8k"].chance, entries["cola"].chance) == (50.0, 0.0, None)
    entry = _parse({"format": "glue-jsonl", "table": "t", "column": 3, "published_as": "X", "metrics": ["f1", "accuracy"]})["x"]
    assert (entry.table, entry.column, entry.published_name, entry.metrics) == ("t", 3, "X", ("f1", "accuracy"))
    legacy = parse_datasets({"datasets": {"x": {"path": "p", "family": "qa", "format": "squad-v1"}}},
                            __import__("pathlib").Path("d.yaml"))["x"]
    assert legacy.task_family == "qa"  # catalogues written before the rename still load


def test_two_datasets_cannot_share_a_column(tmp_path):
    body = {"format": "glue-jsonl", "path": "p", "task_family": "classification", "table": "t", "column": 1}
    with pytest.raises(UserError, match="datasets.y.column: got 1, the position of x in table t"):
        parse_datasets({"tables": {"t": {"title": "T"}}, "datasets": {"x": body, "y": body}}, tmp_path / "d.yaml")


@pytest.mark.parametrize("body, message", [
    ({"format": "glue-jsonl", "role": "test"}, "datasets.x.role: got 'test'; allowed: train, dev, eval"),
    ({"format": "llm-adapters", "task_family": "math", "split": "dev"}, "datasets.x.split: format 'llm-adapters' has no splits"),
    ({"format": "glue-jsonl", "split": ""}, "datasets.x.split: got ''"),
    ({"format": "glue-jsonl", "split": "nope"}, "datasets.x.split: got 'nope'; allowed: train, validation, test"),
    ({"format": "text"}, "datasets.x.task_family: got 'classification' with format 'text'; allowed: corpus"),
    ({"format": "glue-jsonl", "task_family": "corpus"}, "datasets.x.task_family: got 'corpus' with format 'glue-jsonl'"),
    ({"format": "jsonl"}, "datasets.x.format: got 'jsonl'"),
    ({"format": "glue-jsonl", "family": "qa"}, "datasets.x.family: given with task_family"),
    ({"format": "glue-jsonl", "metric": "f2"}, "datasets.x.metric: got 'f2'"),
    ({"format": "glue-jsonl", "metrics": ["em", "em"]}, "datasets.x.metrics: got ['em', 'em']; allowed: a list of distinct"),
    ({"format": "glue-jsonl", "metric": "f1", "metrics": ["f1"]}, "datasets.x.metric: given with metrics"),
    ({"format": "glue-jsonl", "table": "nope"}, "datasets.x.table: got 'nope'; allowed: t"),
    ({"format": "glue-jsonl", "role": "train", "table": "t"}, "datasets.x.table: role 'train'; allowed: a table for eval"),
    ({"format": "glue-jsonl", "column": 2}, "datasets.x.column: given without table"),
    ({"format": "glue-jsonl", "table": "t", "column": 0}, "datasets.x.column: got 0; allowed: an integer in 1..1000"),
    ({"format": "llm-adapters", "task_family": "math", "answer": "letter"}, "datasets.x.labels: answer: letter needs"),
    ({"format": "llm-adapters", "task_family": "math", "answer": "letter", "labels": ["AB"]},
     "datasets.x.labels: got ['AB']; allowed: single letters"),
    ({"format": "llm-adapters", "task_family": "math", "answer": "word"}, "datasets.x.answer: got 'word'"),
    ({"format": "llm-adapters", "task_family": "math", "max_new_tokens": True}, "datasets.x.max_new_tokens: got True"),
])
def test_catalogue_rejects_bad_split_role_and_corpus_pairs(body, message):
    with pytest.raises(UserError, match="^d.yaml: " + re.escape(message)):
        _parse(body)


# ---- the embedded twins: sizes, labels, hidden test labels, disjoint splits ----

def test_every_embedded_twin_loads_with_its_size(entries):
    for task in GLUE:
        assert len(_load(entries, f"emb-{task}")) == 200 and len(_load(entries, f"emb-{task}-train")) == 2400
    for task in DAPT:
        assert [len(_load(entries, n)) for n in (f"emb-{task}-train", f"emb-{task}-dev", f"emb-{task}")] == [500, 100, 100]
    assert len(_load(entries, "emb-squad-train")) == 1000 and len(_load(entries, "emb-squad")) == 150
    train, dev = _load(entries, "emb-squad-hf-train"), _load(entries, "emb-squad-hf")
    assert [e.id for e in dev] == [e.id for e in _load(entries, "emb-squad")] and len(train) == 1000
    for domain in DOMAINS:
        docs = _load(entries, f"emb-corpus-{domain}")
        assert len(docs) == 3000 and all(isinstance(d, str) and d and "\n" not in d for d in docs)
        assert len(set(docs)) == len(docs)


def test_glue_labels_balanced_typed_and_hidden_on_test(files):
    for task in GLUE:
        levels = glue_tasks.GLUE_TASKS[task][1]
        for split in ("train", "validation", "test"):
            rows = files[glue_tasks.split_file(task, split)]
            assert [r["idx"] for r in rows] == list(range(len(rows)))
            if split == "test":
                assert {r["label"] for r in rows} == {-1}
            elif task == "stsb":
                assert all(isinstance(r["label"], float) and 0 <= r["label"] <= 5 for r in rows)
                assert min(r["label"] for r in rows) < 0.5 and max(r["label"] for r in rows) > 4.5
            else:
                counts = Counter(r["label"] for r in rows)
                assert set(counts) == set(range(levels)) and max(counts.values()) - min(counts.values()) <= 1, task
    assert set(files["glue/mnli/train.jsonl"][0]) == {"premise", "hypothesis", "label", "idx"}
    assert set(files["glue/qnli/train.jsonl"][0]) == {"question", "sentence", "label", "idx"}
    assert set(files["glue/qqp/train.jsonl"][0]) == {"question1", "question2", "label", "idx"}
    assert set(files["glue/mrpc/train.jsonl"][0]) == {"sentence1", "sentence2", "label", "idx"}
    assert "glue/mnli/validation_matched.jsonl" in files and "glue/mnli/validation.jsonl" not in files


def test_hidden_test_labels_load_as_none(entries):
    test = DatasetEntry(name="emb-mnli-test", format="glue-jsonl", path="glue/mnli", task_family="classification",
                        split="test_matched", embedded=True)
    rows = load_examples(test, None)
    assert len(rows) == 100 and all(e.label is None for e in rows)
    assert {e.label for e in _load(entries, "emb-mnli")} == {0, 1, 2}


def test_dapt_labels_are_strings_of_the_right_sets(files):
    for task in DAPT:
        for split in ("train", "dev", "test"):
            rows = files[f"dapt/{task}/{split}.jsonl"]
            assert all(set(r) == {"text", "label"} and isinstance(r["label"], str) for r in rows)
            counts = Counter(r["label"] for r in rows)
            assert len(counts) == DAPT_LABELS[task] and max(counts.values()) - min(counts.values()) <= 1, (task, split)
    assert set(dapt_tasks.DAPT_TASKS["rct"][1]) == {"BACKGROUND", "OBJECTIVE", "METHODS", "RESULTS", "CONCLUSIONS"}
    assert set(dapt_tasks.DAPT_TASKS["acl_arc"][1]) == {"Background", "CompareOrContrast", "Extends", "Future",
                                                        "Motivation", "Uses"}


def _glue_keys(files, task, split):
    return {glue_tasks.key(r) for r in files[glue_tasks.split_file(task, split)]}


def test_splits_are_disjoint_and_pretraining_text_avoids_every_item(files):
    held_out: set[str] = set()
    for task in GLUE:
        train, dev, test = (_glue_keys(files, task, s) for s in ("train", "validation", "test"))
        assert len(train) == 2400 and not (train & dev) and not (train & test) and not (dev & test), task
        held_out |= {" ".join(k.split("\t")) for k in dev | test}
    for task in DAPT:
        train, dev, test = ({r["text"] for r in files[f"dapt/{task}/{s}.jsonl"]} for s in ("train", "dev", "test"))
        assert len(train) == 500 and not (train & dev) and not (train & test) and not (dev & test), task
        held_out |= dev | test
    contexts = [{p["context"] for a in files[f"squad/{s}-v1.1.json"]["data"] for p in a["paragraphs"]} for s in ("train", "dev")]
    assert not (contexts[0] & contexts[1])
    held_out |= contexts[1]
    docs = encoder_pretraining_documents()
    assert 3000 <= len(docs) <= 4000 and len(set(docs)) == len(docs) and not (set(docs) & held_out)
    assert docs == encoder_pretraining_documents.__wrapped__()  # deterministic, not only cached
    dapt_held_out = {r["text"] for t in DAPT for s in ("dev", "test") for r in files[f"dapt/{t}/{s}.jsonl"]}
    for domain in DOMAINS:
        for doc in files[f"corpora/{domain}.txt"][:200]:
            assert not any(text in doc for text in dapt_held_out)


def test_generation_is_deterministic_and_domains_use_their_own_words(files):
    assert glue_tasks.generate() == {k: v for k, v in files.items() if k.startswith("glue/")}
    assert dapt_tasks.generate() == {k: v for k, v in files.items() if k.startswith("dapt/")}
    vocab = {d: Counter(w for doc in files[f"corpora/{d}.txt"] for w in doc.split()) for d in DOMAINS}
    assert vocab["biomed"]["patients"] and vocab["cs"]["@@CITATION"] and vocab["news"]["percent"] and vocab["reviews"]["film"]
    assert not vocab["biomed"]["@@CITATION"] and not vocab["cs"]["patients"]


# ---- learnable from words: naive Bayes on unigrams and bigrams, fitted on train, well above chance ----

def _features(text: str) -> list[str]:
    words = text.lower().split()
    return words + [f"{a} {b}" for a, b in zip(words, words[1:])]


def _naive_bayes(train: list[tuple[str, int]], valid: list[tuple[str, int]]) -> list[int]:
    """Multinomial naive Bayes with add-one smoothing (pure Python: a second, no torch)."""
    import math

    counts: dict[int, Counter] = {}
    for text, y in train:
        counts.setdefault(y, Counter()).update(_features(text))
    vocab = len({f for c in counts.values() for f in c})
    priors = Counter(y for _, y in train)
    totals = {y: sum(c.values()) for y, c in counts.items()}

    def score(y, feats):
        return math.log(priors[y]) + sum(math.log((counts[y][f] + 1) / (totals[y] + vocab)) for f in feats)

    return [max(counts, key=lambda y, feats=_features(text): score(y, feats)) for text, _ in valid]


def _pearson(a, b):
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    cov = sum((x - ma) * (y - mb) for x, y in zip(a, b))
    return cov / (sum((x - ma) ** 2 for x in a) * sum((y - mb) ** 2 for y in b)) ** 0.5


def test_labels_are_learnable_from_words(files):
    scores = {}
    for task in GLUE:
        rows = {s: [(" | ".join(glue_tasks.texts(r)), r["label"]) for r in files[glue_tasks.split_file(task, s)]]
                for s in ("train", "validation")}
        if task == "stsb":  # regression: classify the 5 levels, then correlate with the gold scores
            levels = {s: [(text, round((5 - y) / 1.25)) for text, y in rows[s]] for s in rows}
            predicted = _naive_bayes(levels["train"], levels["validation"])
            scores[task] = _pearson([5 - 1.25 * p for p in predicted], [y for _, y in rows["validation"]])
            continue
        predicted = _naive_bayes(rows["train"], rows["validation"])
        scores[task] = sum(p == y for p, (_, y) in zip(predicted, rows["validation"])) / len(predicted)
    for task in DAPT:
        rows = {s: [(r["text"], r["label"]) for r in files[f"dapt/{task}/{s}.jsonl"]] for s in ("train", "dev")}
        predicted = _naive_bayes(rows["train"], rows["dev"])
        scores[task] = sum(p == y for p, (_, y) in zip(predicted, rows["dev"])) / len(predicted)
    # CoLA's faults are word orders; naive Bayes sees order only through bigrams, diluted by the shared ones
    floor = {"cola": 0.7}
    low = {task: round(s, 2) for task, s in scores.items() if s < floor.get(task, 0.8)}
    assert not low, f"bag-of-words validation score below 0.8 (CoLA 0.7; chance <= 0.5): {low}"


# ---- format text ----

def test_text_format_reads_txt_and_jsonl(tmp_path):
    txt = tmp_path / "c.txt"
    txt.write_text("first document\n\n   \nsecond document\r\n", encoding="utf-8")
    assert load_text(txt) == ["first document", "second document"]
    jsonl = tmp_path / "c.jsonl"
    jsonl.write_text(json.dumps({"text": "one", "id": 3}) + "\n\n" + json.dumps({"text": "two"}) + "\n")
    assert load_text(jsonl) == ["one", "two"]
    entry = DatasetEntry(name="c", format="text", path="c.jsonl", task_family="corpus", role="train")
    assert load_examples(entry, tmp_path) == ["one", "two"]
    with pytest.raises(UserError, match="dataset 'c': file not found"):
        load_examples(entry, tmp_path / "nowhere")


@pytest.mark.parametrize("name, content, message", [
    ("c.jsonl", b'{"text": "ok"}\n{"text": 3}\n', r"c.jsonl: line 2: field 'text': got text=3"),
    ("c.jsonl", b'{"text": "ok"}\n\n{oops\n', r"c.jsonl: line 3: not valid JSON"),
    ("c.jsonl", b'["a list"]\n', r"c.jsonl: line 1: field 'text': got list"),
    ("c.txt", b"fine\n\xff\xfe bad\n", r"c.txt: line 2: not valid UTF-8"),
    ("c.txt", b"\n\n", r"c.txt: empty \(no documents"),
    ("c.csv", b"a,b\n", r"c.csv: text corpus must be a file ending in .txt or .jsonl"),
])
def test_text_format_errors_name_file_and_line(tmp_path, name, content, message):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(UserError, match=message) as err:
        load_text(tmp_path / name)
    assert "\n" not in str(err.value)


# ---- the dev role and the split override ----

def _entry(fmt, path, role="eval", split=None, family="classification"):
    return DatasetEntry(name="t", format=fmt, path=path, task_family=family, role=role, split=split, embedded=True)


def test_dev_role_and_split_override_pick_the_split():
    assert [split_of(_entry(f, "p", role)) for f, role in
            (("dapt-jsonl", "dev"), ("dapt-jsonl", "eval"), ("glue-jsonl", "dev"), ("squad-v1", "dev"), ("hf", "dev"))] == \
        ["dev", "test", "validation", "dev", "validation"]
    assert split_of(_entry("glue-jsonl", "p", "train", split="validation")) == "validation"
    assert len(load_examples(_entry("dapt-jsonl", "dapt/rct", "dev"), None)) == 100
    assert len(load_examples(_entry("squad-v1", "squad", "dev", family="qa"), None)) == 150
    assert len(load_examples(_entry("glue-jsonl", "glue/rte", "dev"), None)) == 200
    assert len(load_examples(_entry("glue-jsonl", "glue/rte", split="test"), None)) == 100
    with pytest.raises(UserError, match="GLUE split 'nope'; allowed: train, validation, test, validation_matched"):
        load_examples(_entry("glue-jsonl", "glue/rte", split="nope"), None)
    with pytest.raises(UserError, match="file not found.*glue/rte/validation_matched.jsonl"):
        load_examples(_entry("glue-jsonl", "glue/rte", split="validation_matched"), None)


# ---- format hf on a folder written by `datasets` (offline), GLUE MNLI with its split names ----

def test_hf_loader_reads_a_saved_glue_config_offline(tmp_path):
    import datasets

    features = datasets.Features({"premise": datasets.Value("string"), "hypothesis": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["entailment", "neutral", "contradiction"]),
                                  "idx": datasets.Value("int32")})

    def rows(n, hidden=False):
        return {"premise": [f"Tom saw {i} cats." for i in range(n)], "hypothesis": ["Tom saw cats."] * n,
                "label": [-1 if hidden else i % 3 for i in range(n)], "idx": list(range(n))}

    saved = datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows(6), features=features),
                                  "validation_matched": datasets.Dataset.from_dict(rows(3), features=features),
                                  "test_matched": datasets.Dataset.from_dict(rows(2, hidden=True), features=features)})
    saved.save_to_disk(str(tmp_path / "glue_mnli"))
    base = {"format": "hf", "task_family": "classification", "embedded": False}
    evals = load_examples(DatasetEntry(name="mnli", path="glue_mnli", split="validation_matched", **base), tmp_path)
    assert [(e.text, e.text_pair, e.label) for e in evals] == [(f"Tom saw {i} cats.", "Tom saw cats.", i) for i in range(3)]
    train = load_examples(DatasetEntry(name="mnli-train", path=str(tmp_path / "glue_mnli"), role="train", **base), None)
    assert len(train) == 6 and {e.label for e in train} == {0, 1, 2}
    test = load_examples(DatasetEntry(name="t", path="glue_mnli", split="test_matched", **base), tmp_path)
    assert [e.label for e in test] == [None, None]
    with pytest.raises(UserError, match="'mnli': .*glue_mnli: no split 'validation'; allowed: train, validation_matched"):
        load_examples(DatasetEntry(name="mnli", path="glue_mnli", **base), tmp_path)
