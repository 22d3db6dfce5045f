"""Run every perf measurement in one process and collect the JSON-ready figures."""

from __future__ import annotations

import platform
import time

from benchmark.perf.settings import Settings

TARGETS = {"eval.speedup": 20.0, "train.speedup": 1.3, "plan.seconds": 5.0, "store.seconds": 10.0}


def machine() -> dict:
    import os

    import torch
    import transformers

    return {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "torch": torch.__version__, "transformers": transformers.__version__,
            "torch_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available()}


def targets_met(figures: dict) -> dict:
    return {
        "eval.speedup": figures["eval"]["speedup"] >= TARGETS["eval.speedup"] and figures["eval"]["outputs_identical"],
        "train.speedup": (figures["train"]["speedup"] or 0) >= TARGETS["train.speedup"],
        "plan.seconds": figures["plan"]["seconds"] < TARGETS["plan.seconds"],
        "store.seconds": figures["store"]["seconds"] < TARGETS["store.seconds"],
    }


def run(s: Settings, log=print) -> dict:
    import torch

    from benchmark.perf import control, evaluation, overhead, training

    if s.threads:
        torch.set_num_threads(s.threads)
    started = time.perf_counter()
    log(f"perf: loading {s.model}")
    model, tokenizer = evaluation.load_model(s.model)
    log(f"perf: evaluation, {s.eval_prompts} prompts, {s.num_beams} beams, max_new_tokens {s.max_new_tokens}")
    figures = {"settings": s.to_dict(), "machine": machine()}
    figures["eval"] = evaluation.measure(s, model, tokenizer)
    log(f"perf: training, {s.train_steps} steps of {s.batch_size} in micro-batches of {s.micro_batch_size}")
    figures["train"] = training.measure(s, model, tokenizer)
    log("perf: trial overhead, cold and warm")
    figures["overhead"] = overhead.measure(s)
    log(f"perf: planning {s.plan_trials} trials, storing {s.store_trials}")
    figures["plan"], figures["store"] = control.measure(s)
    figures["targets"] = {"values": TARGETS, "met": targets_met(figures)}
    figures["seconds"] = time.perf_counter() - started
    return figures
