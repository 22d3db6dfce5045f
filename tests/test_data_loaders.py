"""The format loaders on the embedded files and on broken files: one-line errors naming what is wrong."""

import json
from pathlib import Path

import pytest

from benchmark.data import dataset_path, load_examples, resolve_root
from benchmark.data.check import check
from benchmark.data.embedded import write_all
from benchmark.data.example import Example
from benchmark.errors import UserError
from benchmark.registry import formats
from benchmark.registry.catalogue import DatasetEntry
from benchmark.registry.formats.llm_adapters import load_file


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    out = tmp_path_factory.mktemp("data-root")
    write_all(out)
    return out


def _entry(name="gsm8k", path="dataset/gsm8k/test.json", fmt="llm-adapters", role="eval", **kw):
    return DatasetEntry(name=name, format=fmt, path=path, task_family="math", role=role,
                        source_note="LLM-Adapters repository: dataset/gsm8k/test.json", **kw)


def test_llm_adapters_rows_become_examples_with_ids(root):
    examples = load_examples(_entry(), root)
    assert len(examples) == 120 and isinstance(examples[0], Example)
    assert examples[3].id == "gsm8k/3" and float(examples[3].answer) >= 0
    train = load_examples(_entry("math_10k", "ft-training_set/math_10k.json", role="train"), root)
    assert len(train) == 2000


def test_missing_file_names_dataset_path_source_and_hint(tmp_path):
    with pytest.raises(UserError) as err:
        load_examples(_entry(), tmp_path)
    msg = str(err.value)
    assert "'gsm8k'" in msg and str(tmp_path / "dataset" / "gsm8k" / "test.json") in msg
    assert "LLM-Adapters repository: dataset/gsm8k/test.json" in msg
    assert "--data-dir" in msg and "PEFT_BENCH_DATA" in msg and "peft-bench data embedded --out DIR" in msg
    assert "\n" not in msg


@pytest.mark.parametrize("rows, expected", [
    ([{"instruction": "a", "input": "", "output": "b", "answer": "1"},
      {"instruction": "a", "input": "", "answer": "1"}], ["row 1", "'output'"]),
    ([{"instruction": "a", "input": "", "output": "b", "answer": "1"}] * 2
     + [{"instruction": 3, "input": "", "output": "b"}], ["row 2", "'instruction'", "string"]),
    ([{"instruction": "a", "input": "", "output": "b", "answer": 7}], ["row 0", "'answer'"]),
    ({"instruction": "a"}, ["JSON list"]),
    (["not a row"], ["row 0", "object"]),
])
def test_bad_rows_name_file_row_and_field(tmp_path, rows, expected):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(rows))
    with pytest.raises(UserError) as err:
        load_file(path, "bad")
    assert str(path) in str(err.value)
    for part in expected:
        assert part in str(err.value)


def test_training_rows_may_omit_answer_and_old_aqua_lists_are_read(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps([{"instruction": "a", "input": "", "output": "b"},
                                {"instruction": "q", "input": "", "output": "o", "answer": ["C"]}]))
    first, second = load_file(path, "t")
    assert first.answer == "" and second.answer == "C"


def test_invalid_json_is_a_user_error(tmp_path):
    path = tmp_path / "x.json"
    path.write_text("[{")
    with pytest.raises(UserError, match="not valid JSON"):
        load_file(path, "x")


def _split(root, fmt: str, path: str, split: str) -> list:
    """One split read through the registered format, as load_examples does."""
    return formats.get(fmt).load(formats.Source(dataset="t", root=root, path=path, split=split, labelled=True))


def test_glue_dapt_squad_split_loaders(root):
    sst2 = _split(root, "glue-jsonl", "glue/sst2", "train")
    assert len(sst2) == 2400 and sst2[0].text_pair is None and sst2[0].label in (0, 1)
    rte = _split(root, "glue-jsonl", "glue/rte", "validation")
    assert rte[0].text_pair and rte[0].label in (0, 1)
    assert all(e.label is None for e in _split(root, "glue-jsonl", "glue/rte", "test"))
    assert isinstance(_split(root, "glue-jsonl", "glue/stsb", "train")[0].label, float)
    chem = _split(root, "dapt-jsonl", "dapt/chemprot", "dev")
    assert len(chem) == 100 and "INHIBITOR" in {e.label for e in chem}
    dev = _split(root, "squad-v1", "squad", "dev")
    ex = dev[0]
    assert len(ex.answers) == len(ex.answer_starts) == 3
    assert all(ex.context[s:s + len(t)] == t for t, s in zip(ex.answers, ex.answer_starts))
    with pytest.raises(UserError, match="allowed"):
        _split(root, "glue-jsonl", "glue/sst2", "dev")


def test_load_examples_dispatches_other_formats_by_role(root):
    glue = _entry("sst2", "glue/sst2", fmt="glue-jsonl")
    assert len(load_examples(glue, root)) == 200  # eval -> validation
    assert len(load_examples(_entry("sst2", "glue/sst2", fmt="glue-jsonl", role="train"), root)) == 2400
    assert len(load_examples(_entry("imdb", "dapt/imdb", fmt="dapt-jsonl"), root)) == 100
    assert len(load_examples(_entry("squad", "squad", fmt="squad-v1"), root)) == 150
    assert len(load_examples(_entry("one", "glue/cola/train.jsonl", fmt="glue-jsonl"), root)) == 2400
    with pytest.raises(UserError, match="'imdb'.*file not found"):
        load_examples(_entry("imdb", "dapt/imdb", fmt="dapt-jsonl"), root / "nowhere")


def test_embedded_entries_generate_under_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PEFT_BENCH_CACHE", str(tmp_path / "cache"))
    entry = _entry("emb-gsm8k", embedded=True)
    assert dataset_path(entry, "/ignored", generate=False) == tmp_path / "cache" / "embedded-data" / "dataset/gsm8k/test.json"
    assert len(load_examples(entry, Path("/ignored"))) == 120
    assert (resolve_root(entry, None) / ".generator-version").is_file()


def test_check_reports_counts_and_errors(root, tmp_path):
    rows = check([_entry(), _entry("boolq", "dataset/boolq/test.json")], root)
    assert [r["n_examples"] for r in rows] == [120, 120] and rows[0]["path"].endswith("dataset/gsm8k/test.json")
    missing = check([_entry()], tmp_path)[0]
    assert "n_examples" not in missing and "file not found" in missing["error"]


# ---- format "hf": read through `datasets` (a hub id or, here, a local folder of split files) ----

def _hf_folder(tmp_path, name, splits: dict[str, list[dict]]):
    folder = tmp_path / name
    folder.mkdir()
    for split, rows in splits.items():
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_hf_loader_reads_llm_adapters_records(tmp_path):
    rows = [{"instruction": f"What is {i} + 1?", "input": "", "output": f"{i} + 1 = {i + 1}. The answer is {i + 1}",
             "answer": f"{i + 1}.0"} for i in range(3)]
    folder = _hf_folder(tmp_path, "mathmirror", {"train": rows, "validation": rows[:2]})
    train = load_examples(_entry(name="mirror-train", fmt="hf", path=str(folder), role="train"), None)
    evals = load_examples(_entry(name="mirror", fmt="hf", path=str(folder)), None)
    assert [e.answer for e in train] == ["1.0", "2.0", "3.0"] and len(evals) == 2
    assert isinstance(train[0], Example) and train[0].instruction == "What is 0 + 1?" and train[0].input == ""


def test_hf_loader_reads_squad_and_glue_fields(tmp_path):
    squad = [{"id": "q1", "title": "T", "context": "Tom lives in Oslo.", "question": "Where does Tom live?",
              "answers": {"text": ["Oslo"], "answer_start": [13]}}]
    folder = _hf_folder(tmp_path, "squadmirror", {"train": squad, "validation": squad})
    (ex,) = load_examples(_entry(name="sq", fmt="hf", path=str(folder)), None)
    assert ex.answers == ("Oslo",) and ex.answer_starts == (13,)
    glue = [{"sentence": "a lovely film", "label": 1, "idx": 0}, {"sentence": "a dull film", "label": 0, "idx": 1}]
    folder = _hf_folder(tmp_path, "sst2mirror", {"train": glue, "validation": glue})
    assert [e.label for e in load_examples(_entry(name="sst", fmt="hf", path=str(folder)), None)] == [1, 0]


def test_hf_loader_failure_is_one_clear_line(tmp_path):
    with pytest.raises(UserError, match="could not load") as err:
        load_examples(_entry(name="nowhere", fmt="hf", path=str(tmp_path / "missing-folder")), None)
    assert "nowhere" in str(err.value) and "\n" not in str(err.value)
