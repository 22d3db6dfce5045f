"""Run every perf measurement in one process and collect the JSON-ready figures."""

from __future__ import annotations

import platform
import time

from benchmark.perf.settings import Settings

TARGETS = {"eval.speedup": 20.0, "eval.speedup_vs_peer": 2.0, "train.speedup": 1.3, "cotrain.speedup": 3.0,
           "cotrain.max_loss_rel_diff": 1e-4, "plan.seconds": 5.0, "store.seconds": 10.0}


def machine() -> dict:
    import os

    import torch
    import transformers

    return {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "torch": torch.__version__, "transformers": transformers.__version__,
            "torch_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available()}


def targets_met(figures: dict) -> dict:
    """Each target of the parts measured (a part not run has no verdict)."""
    met = {}
    if "eval" in figures:
        e = figures["eval"]
        met["eval.speedup"] = e["speedup"] >= TARGETS["eval.speedup"] and e["outputs_identical"]
        met["eval.speedup_vs_peer"] = e["peer"]["speedup_vs_peer"] >= TARGETS["eval.speedup_vs_peer"] and e["outputs_identical"]
    if "train" in figures:
        met["train.speedup"] = (figures["train"]["speedup"] or 0) >= TARGETS["train.speedup"]
    if "cotrain" in figures:
        c = figures["cotrain"]
        met["cotrain.speedup"] = c["speedup"] >= TARGETS["cotrain.speedup"]
        met["cotrain.max_loss_rel_diff"] = c["max_loss_rel_diff"] <= TARGETS["cotrain.max_loss_rel_diff"]
    if "plan" in figures:
        met["plan.seconds"] = figures["plan"]["seconds"] < TARGETS["plan.seconds"]
        met["store.seconds"] = figures["store"]["seconds"] < TARGETS["store.seconds"]
    return met


def run(s: Settings, log=print) -> dict:
    import torch

    from benchmark.perf import control, cotrain, evaluation, overhead, training

    if s.threads:
        torch.set_num_threads(s.threads)
    started = time.perf_counter()
    figures = {"settings": s.to_dict(), "machine": machine()}
    if {"eval", "train", "cotrain"} & set(s.parts):
        log(f"perf: loading {s.model}")
        model, tokenizer = evaluation.load_model(s.model)
    if "eval" in s.parts:
        log(f"perf: evaluation, {s.eval_prompts} prompts, {s.num_beams} beams, max_new_tokens {s.max_new_tokens}: "
            "reference, ours, transformers' batched generate")
        figures["eval"] = evaluation.measure(s, model, tokenizer)
    if "train" in s.parts:
        log(f"perf: training, {s.train_steps} steps of {s.batch_size} in micro-batches of {s.micro_batch_size}")
        figures["train"] = training.measure(s, model, tokenizer)
    if "cotrain" in s.parts:
        log(f"perf: co-training, {s.cotrain_members} mixed trials of {s.train_steps} steps, solo then as one group")
        figures["cotrain"] = cotrain.measure(s, model, tokenizer, training.features(s, tokenizer))
    if "overhead" in s.parts:
        log("perf: trial overhead, cold and warm")
        figures["overhead"] = overhead.measure(s)
    if "control" in s.parts:
        log(f"perf: planning {s.plan_trials} trials, storing {s.store_trials}")
        figures["plan"], figures["store"] = control.measure(s)
    figures["targets"] = {"values": TARGETS, "met": targets_met(figures)}
    figures["seconds"] = time.perf_counter() - started
    return figures
