"""Injected faults and hostile inputs: each trial fault is recorded as a failed trial with its cause while the
next trial in the same worker runs normally; a hostile file is refused before anything runs."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from benchmark import models
from benchmark.errors import UserError
from benchmark.registry import catalogue, parse_suite
from benchmark.registry.spec import EvalConfig, TrainConfig, TrialSpec
from benchmark.runner import run_trial

TINY = TrainConfig(epochs=1, batch_size=4, micro_batch_size=4, max_steps=2, max_train_examples=8, warmup_steps=0,
                   cutoff_len=64, learning_rate=1e-3)


def _spec(method="lora", method_args=None, **train) -> TrialSpec:
    return TrialSpec(suite="faults", suite_version="1", model="tiny-llama", model_source="embedded:tiny-llama",
                     model_family="llama", method=method, method_args=method_args or {}, train_data="emb-math_10k",
                     eval_data=("emb-gsm8k",), train=dataclasses.replace(TINY, **train),
                     eval=EvalConfig(num_beams=1, max_new_tokens=4, max_eval_examples=2, batch_size=2))


def _then_a_normal_trial_runs():
    after = run_trial(_spec(), "/nonexistent")
    assert after.status == "ok", after.error


def test_time_budget_stops_the_trial_and_records_it():
    result = run_trial(_spec(max_seconds=1e-9), "/nonexistent")
    assert result.status == "failed" and "time budget" in result.error and "step 1 of 2" in result.error
    _then_a_normal_trial_runs()


@dataclasses.dataclass(frozen=True)
class _NoConfig:
    pass


def _inject_too_much(model, cfg):
    """A method whose adapter asks the allocator for 4 TiB (every real method's sizes are bounded at plan time)."""
    model.huge = torch.nn.Parameter(torch.empty(2**40, dtype=torch.float32))
    return model


def test_out_of_memory_is_a_failed_trial_not_a_dead_worker():
    from benchmark import methods

    methods.register(methods.Method("too-much-memory", _NoConfig, _inject_too_much, library="torch",
                                    model_families=("llama",)))
    try:
        result = run_trial(_spec("too-much-memory"), "/nonexistent")
    finally:
        methods.unregister("too-much-memory")
    assert result.status == "failed" and "memory" in result.error.lower()
    _then_a_normal_trial_runs()


def test_non_finite_loss_stops_training_with_the_step():
    from benchmark.data import load_examples
    from benchmark.data.prompts import tokenize_for_training
    from benchmark.train import train

    model, tokenizer = models.load_cached(catalogue.model("tiny-llama"))
    with torch.no_grad():
        model.get_output_embeddings().weight[0, 0] = math.inf  # one poisoned weight: every logit row turns NaN
    features = [tokenize_for_training(tokenizer, ex, 64, True)
                for ex in load_examples(catalogue.dataset("emb-math_10k"), None)[:8]]
    with pytest.raises(FloatingPointError, match="non-finite loss at step 1"):
        train(model, tokenizer, features, TINY)


@pytest.mark.parametrize("body, expected", [
    ("name: x\nversion: '1'\ndescription: d\ndefaults: !!python/object/apply:os.system ['echo pwned']\ngrid: {}\n",
     "python/object"),
    ("name: ../../etc\nversion: '1'\ndescription: d\ndefaults: {model: tiny-llama}\ngrid: {method: [lora]}\n", "name"),
])
def test_hostile_suites_are_refused_before_anything_runs(tmp_path, body, expected):
    path = tmp_path / "hostile.yaml"
    path.write_text(body)
    with pytest.raises(UserError, match=expected) as info:
        parse_suite(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_trust_remote_code_needs_an_explicit_boolean_in_the_catalogue(tmp_path):
    from benchmark.registry.catalogue import parse_models

    assert not any(entry.trust_remote_code for entry in catalogue.models().values())  # off for every shipped model
    with pytest.raises(UserError, match="trust_remote_code"):
        parse_models({"models": {"m": {"source": "org/m", "family": "llama", "trust_remote_code": "yes"}}},
                     tmp_path / "models.yaml")


def test_the_cli_turns_usage_statistics_and_telemetry_off(monkeypatch, capsys):
    from benchmark import cli

    for key in cli.NO_PHONE_HOME:
        monkeypatch.delenv(key, raising=False)
    assert cli.main(["list"]) == 0
    import os

    assert {k: os.environ[k] for k in cli.NO_PHONE_HOME} == cli.NO_PHONE_HOME


@pytest.mark.parametrize("path", ["../../etc/passwd.json", "/etc/passwd.json", "data/../../x.json", "~/x.json"])
def test_dataset_paths_cannot_leave_the_data_root(tmp_path, path):
    from benchmark.registry.catalogue import parse_datasets

    body = {"format": "llm-adapters", "path": path, "task_family": "math", "answer": "number"}
    with pytest.raises(UserError, match=r"datasets\.x\.path.*relative to the data root"):
        parse_datasets({"datasets": {"x": body}}, tmp_path / "datasets.yaml")
