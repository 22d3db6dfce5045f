"""A dataset added through a catalogue entry alone: a new name, a new report table, five answer options.

The entry lives in a catalogue file of the test's own (listed in $PEFT_BENCH_CATALOGUE), its data beside it
(a relative path resolves against the catalogue file); nothing under benchmark/ knows it. It is planned, evaluated on the embedded tiny-llama and
reported on its own page, with its own title and a chance row that follows from its five options.
"""

from __future__ import annotations

import json
import re
import textwrap

import pytest

from benchmark.errors import UserError
from benchmark.registry import catalogue, catalogues

TITLE = "Letter quiz (a table of its own)"
CATALOGUE = f"""
tables:
  letter_quiz: {{title: "{TITLE}"}}
datasets:
  quiz5:
    format: llm-adapters
    path: data/quiz5/test.json
    task_family: math
    answer: letter
    labels: [A, B, C, D, E]
    max_new_tokens: 4
    table: letter_quiz
    column: 1
    source_note: written by tests/test_new_dataset.py
"""
SUITE = """
name: new-dataset
version: "1"
description: one trial on a dataset only the test's catalogue file knows
defaults:
  model: tiny-llama
  method: lora
  train_data: emb-math_10k
  eval_data: [quiz5]
  train: {epochs: 1, batch_size: 4, micro_batch_size: 4, max_steps: 2, max_train_examples: 8, warmup_steps: 0,
          cutoff_len: 64, learning_rate: 1.0e-3}
  eval: {num_beams: 1, batch_size: 4, max_eval_examples: 5}
"""


def _rows() -> list[dict]:
    letters = "ABCDE"
    return [{"instruction": f"Which letter comes {i + 1} in the alphabet? Answer Choices: "
                            + " ".join(f"({x}) {letters[(i + j) % 5]}" for j, x in enumerate(letters)),
             "input": "", "output": f"The answer is {letters[(5 - i) % 5]}.", "answer": letters[(5 - i) % 5]}
            for i in range(5)]


@pytest.fixture
def added(tmp_path, monkeypatch):
    """The catalogue file and the data root of the new dataset, the file listed for this test only."""
    extra = tmp_path / "my-datasets.yaml"
    extra.write_text(textwrap.dedent(CATALOGUE))
    data = tmp_path / "data"
    (data / "quiz5").mkdir(parents=True)
    (data / "quiz5" / "test.json").write_text(json.dumps(_rows(), indent=1))
    monkeypatch.setenv(catalogues.ENV, str(extra))
    return extra, data


def test_a_new_dataset_is_planned_evaluated_and_reported_from_its_entry_alone(added, tmp_path):
    from benchmark import planner
    from benchmark.report import build
    from benchmark.runner import run_trial
    from benchmark.store import Store

    extra, data = added
    entry = catalogue.dataset("quiz5")
    assert (entry.table, entry.chance, entry.file) == ("letter_quiz", 20.0, str(extra))
    assert entry.path == str(data / "quiz5" / "test.json")
    assert catalogue.tables()["letter_quiz"].title == TITLE

    suite_file = tmp_path / "new-dataset.yaml"
    suite_file.write_text(textwrap.dedent(SUITE))
    _, trials = planner.plan(str(suite_file))
    assert len(trials) == 1 and [e.name for e in trials[0].eval_data] == ["quiz5"]

    result = run_trial(trials[0].spec, tmp_path / "no-data-root")  # the entry's path is absolute
    assert result.status == "ok", result.error
    [metric] = result.metrics
    assert (metric.eval_data, metric.task_family, metric.metric, metric.n_examples) == ("quiz5", "math", "accuracy", 5)
    assert {p.extracted for p in result.predictions["quiz5"]} <= set("ABCDE") | {""}  # the options are the letters
    Store(tmp_path / "results").write(result)

    index = build(["new-dataset"], tmp_path / "results", tmp_path / "report")
    pages = {p.name: p.read_text() for p in index.parent.glob("*.html")}
    [page] = [text for text in pages.values() if f"<h1>new-dataset: {TITLE}</h1>" in text]
    chance = re.search(r"chance \(uniform guess over the answer options\).*?</tr>", page, re.S).group(0)
    assert "20.0" in chance
    assert "quiz5" in page and "tiny-llama / lora" in page


def test_the_new_entry_is_validated_when_the_catalogue_loads(added):
    extra, _ = added
    extra.write_text(textwrap.dedent(CATALOGUE).replace("table: letter_quiz", "table: letter-quiz"))
    with pytest.raises(UserError, match=rf"^{re.escape(str(extra))}: datasets.quiz5.table: got 'letter-quiz'.*"
                                        "allowed: .*letter_quiz"):
        catalogue.datasets()
    extra.write_text(textwrap.dedent(CATALOGUE).replace("    labels: [A, B, C, D, E]\n", ""))
    with pytest.raises(UserError, match=r"datasets.quiz5.labels: answer: letter needs its answer options"):
        catalogue.datasets()


def test_an_extra_file_cannot_redeclare_a_shipped_dataset_or_table(added):
    extra, _ = added
    extra.write_text(textwrap.dedent(CATALOGUE).replace("  quiz5:", "  gsm8k:"))
    with pytest.raises(UserError, match=r"datasets.gsm8k: already declared in .*datasets.yaml; allowed: a new name, "
                                        "or replaces: true"):
        catalogue.datasets()
    extra.write_text(textwrap.dedent(CATALOGUE).replace("  letter_quiz: {", "  math: {"))
    with pytest.raises(UserError, match=r"tables.math: already declared in .*datasets.yaml"):
        catalogue.datasets()
