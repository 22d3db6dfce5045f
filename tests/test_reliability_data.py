"""Property-based tests: a malformed dataset row fails with one UserError line naming the file and the
row or line, never another exception and never a silent load of a wrong example.

Each test starts from valid rows in the real formats, breaks one row (or the file's bytes) and loads it
with the format's loader. The example counts are recorded in README "Reliability".
"""

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from benchmark.errors import UserError
from benchmark.registry.formats import dapt_jsonl, glue_jsonl, llm_adapters, squad_v1

FAST = settings(max_examples=80, deadline=None)
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=10)
JUNK = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.lists(st.integers(), max_size=2),
                 st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
ROWS = 4  # valid rows around the broken one


def rejected(load, name: str, content: bytes, where: str) -> str:
    """Write `content`, load it: UserError, one line, naming the file and `where` (a row or line)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(content)
        with pytest.raises(UserError) as caught:
            load(path)
        message = str(caught.value)
        assert "\n" not in message and str(path) in message, message
        assert where in message, message
        return message


# -- LLM-Adapters JSON ------------------------------------------------------------------------------
def adapter_row(i: int) -> dict:
    return {"instruction": f"What is {i} + {i}?", "input": "", "output": f"The answer is {2 * i}", "answer": str(2 * i)}


def load_eval(path):  # an evaluation file: its gold answers are required
    return llm_adapters.load_file(path, "gsm8k", need_answer=True)


@FAST
@given(st.integers(0, ROWS - 1), st.sampled_from(["instruction", "input", "output", "answer"]),
       st.sampled_from(["drop", "junk", "empty-answer"]), JUNK)
def test_llm_adapters_bad_row(bad, key, how, junk):
    rows = [adapter_row(i) for i in range(ROWS)]
    if how == "drop":
        del rows[bad][key]
    elif how == "junk":  # a null answer means none: refused too, since this is an evaluation file
        rows[bad][key] = junk
    else:
        rows[bad]["answer"] = " " * (bad % 2)  # empty or blank gold answer
    rejected(load_eval, "test.json", json.dumps(rows).encode(), f"row {bad}")


@FAST
@given(st.integers(1, 400))
def test_llm_adapters_truncated_json(cut):
    content = json.dumps([adapter_row(i) for i in range(ROWS)]).encode()
    assume(cut < len(content))
    rejected(load_eval, "test.json", content[:cut], "line 1 column")


@FAST
@given(st.integers(0, 300), st.sampled_from([b"\xff", b"\xc3\x28", b"\xe2\x82", b"\x80"]))
def test_llm_adapters_non_utf8(at, bad):
    content = json.dumps([adapter_row(i) for i in range(ROWS)]).encode()
    at = min(at, len(content))
    rejected(load_eval, "test.json", content[:at] + bad + content[at:], f"byte {at}")


def test_llm_adapters_training_rows_may_lack_answers_but_eval_rows_may_not():
    rows = [{k: v for k, v in adapter_row(i).items() if k != "answer"} for i in range(ROWS)]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "math_10k.json"
        path.write_text(json.dumps(rows))
        assert len(llm_adapters.load_file(path, "math_10k")) == ROWS  # training: output carries the answer
    rejected(load_eval, "test.json", json.dumps(rows).encode(), "row 0")


# -- GLUE / DAPT jsonl ------------------------------------------------------------------------------
def glue_line(i: int) -> dict:
    return {"sentence": f"sentence {i}", "label": i % 2, "idx": i}


def dapt_line(i: int) -> dict:
    return {"text": f"text {i}", "label": ["A", "B"][i % 2]}


FORMATS = {"glue": (glue_jsonl.load_file, glue_line, "sentence"), "dapt": (dapt_jsonl.load_file, dapt_line, "text")}


@FAST
@given(st.sampled_from(sorted(FORMATS)), st.integers(0, ROWS - 1), st.sampled_from(["drop-text", "drop-label", "junk-text",
       "junk-label", "not-object", "truncated", "non-utf8"]), JUNK, st.integers(1, 20))
def test_jsonl_bad_line(fmt, bad, how, junk, cut):
    load, make, text_key = FORMATS[fmt]
    rows = [make(i) for i in range(ROWS)]
    lines = [json.dumps(r).encode() for r in rows]
    if how == "drop-text":
        del rows[bad][text_key]
    elif how == "drop-label":
        del rows[bad]["label"]
    elif how == "junk-text":
        rows[bad][text_key] = junk
    elif how == "junk-label":
        assume(not (fmt == "glue" and isinstance(junk, int | float) and not isinstance(junk, bool)))  # numbers are labels
        assume(not (fmt == "dapt" and isinstance(junk, int) and not isinstance(junk, bool)))  # DAPT accepts int classes
        rows[bad]["label"] = junk
    if how.startswith(("drop", "junk")):
        lines[bad] = json.dumps(rows[bad]).encode()
    elif how == "not-object":
        lines[bad] = b"[1, 2]"
    elif how == "truncated":
        lines[bad] = lines[bad][: min(cut, len(lines[bad]) - 1)]
    else:
        lines[bad] = lines[bad][:cut] + b"\xff" + lines[bad][cut:]
    # Line numbers are 1-based (an editor's); row numbers 0-based (the example index).
    where = f"line {bad + 1}" if how in ("not-object", "truncated", "non-utf8") else f"row {bad}"
    rejected(load, "train.jsonl", b"\n".join(lines) + b"\n", where)


# -- SQuAD v1.1 JSON --------------------------------------------------------------------------------
def squad(n: int = ROWS) -> dict:
    context = " ".join(f"person {i}" for i in range(n))
    qas = [{"id": f"q{i}", "question": f"Who is {i}?",
            "answers": [{"text": f"person {i}", "answer_start": context.index(f"person {i}")}]} for i in range(n)]
    return {"version": "1.1", "data": [{"title": "T", "paragraphs": [{"context": context, "qas": qas}]}]}


@FAST
@given(st.integers(0, ROWS - 1), st.sampled_from(["id", "question", "answers", "answers.text", "answers.answer_start",
                                                  "empty-answers", "empty-text", "qa-junk"]), JUNK)
def test_squad_bad_question(bad, how, junk):
    raw = squad()
    qa = raw["data"][0]["paragraphs"][0]["qas"][bad]
    if how in ("id", "question", "answers"):
        del qa[how]
    elif how == "answers.text":
        del qa["answers"][0]["text"]
    elif how == "answers.answer_start":
        assume(junk is None or isinstance(junk, list | dict))
        qa["answers"][0]["answer_start"] = junk
    elif how == "empty-answers":
        qa["answers"] = []
    elif how == "empty-text":
        qa["answers"][0]["text"] = ""
    else:
        raw["data"][0]["paragraphs"][0]["qas"][bad] = junk
    rejected(squad_v1.load_file, "dev-v1.1.json", json.dumps(raw).encode(), f"qas[{bad}]")


@FAST
@given(st.integers(0, ROWS - 1), st.integers(-50, 50).filter(bool))
def test_squad_answer_start_off_its_text(bad, shift):
    raw = squad()
    raw["data"][0]["paragraphs"][0]["qas"][bad]["answers"][0]["answer_start"] += shift
    message = rejected(squad_v1.load_file, "dev-v1.1.json", json.dumps(raw).encode(), f"qas[{bad}] (id q{bad})")
    assert "answers[0].answer_start" in message and f"'person {bad}'" in message


@FAST
@given(st.sampled_from(["article", "paragraph", "context", "qas"]), JUNK)
def test_squad_bad_structure(part, junk):
    raw = squad()
    if part == "article":
        raw["data"][0] = junk
        where = "data[0]"
    elif part == "paragraph":
        raw["data"][0]["paragraphs"][0] = junk
        where = "data[0].paragraphs[0]"
    elif part == "context":
        assume(not isinstance(junk, str))
        raw["data"][0]["paragraphs"][0]["context"] = junk
        where = "data[0].paragraphs[0]"
    else:
        assume(junk is not None and not isinstance(junk, list))
        raw["data"][0]["paragraphs"][0]["qas"] = junk
        where = "data[0].paragraphs[0]"
    rejected(squad_v1.load_file, "dev-v1.1.json", json.dumps(raw).encode(), where)


@FAST
@given(st.integers(1, 300), st.booleans())
def test_squad_truncated_or_non_utf8(cut, binary):
    content = json.dumps(squad()).encode()
    cut = min(cut, len(content) - 1)
    if binary:
        rejected(squad_v1.load_file, "dev-v1.1.json", content[:cut] + b"\xff" + content[cut:], f"byte {cut}")
    else:
        rejected(squad_v1.load_file, "dev-v1.1.json", content[:cut], "line 1 column")


def test_valid_files_still_load():
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "test.json").write_text(json.dumps([adapter_row(i) for i in range(ROWS)]))
        assert [e.answer for e in load_eval(root / "test.json")] == ["0", "2", "4", "6"]
        for fmt, (load, make, _) in FORMATS.items():
            (root / f"{fmt}.jsonl").write_text("\n".join(json.dumps(make(i)) for i in range(ROWS)) + "\n\n")
            assert len(load(root / f"{fmt}.jsonl")) == ROWS
        (root / "dev-v1.1.json").write_text(json.dumps(squad()))
        assert [e.answers for e in squad_v1.load_file(root / "dev-v1.1.json")][1] == ("person 1",)
