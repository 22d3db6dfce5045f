"""Trial overhead: time from trial start to the first optimizer step, cold vs warm weight cache.

Times the steps runner.run_trial takes before training, in its order (data, cached base model,
method injection, move to device, tokenisation) and then one optimizer step. Cold: the
per-process weight cache is empty, so load_cached reads the checkpoint from disk; warm: a previous
trial in the same worker left it populated, so the trial gets a deep copy. Imports are warmed
first (a worker pays them once, not per trial).
"""

from __future__ import annotations

import time

from benchmark.perf.settings import Settings


def _trial_start_to_first_step(s: Settings) -> dict:
    import torch

    from benchmark import methods, models
    from benchmark.data import load_examples
    from benchmark.data.prompts import tokenize_for_training
    from benchmark.registry import catalogue
    from benchmark.registry.spec import TrainConfig
    from benchmark.train import train

    cfg = TrainConfig(batch_size=s.batch_size, micro_batch_size=s.micro_batch_size, max_steps=1,
                      warmup_steps=0, cutoff_len=s.cutoff_len, max_train_examples=s.batch_size)
    marks = {}
    started = time.perf_counter()
    examples = load_examples(catalogue.dataset(s.train_dataset), None)[:cfg.max_train_examples]
    marks["data_s"] = time.perf_counter() - started
    entry = catalogue.model(s.model)
    torch.manual_seed(cfg.seed)
    model, tokenizer = models.load_cached(entry, dtype="float32")
    marks["model_s"] = time.perf_counter() - started - marks["data_s"]
    model = methods.apply(model, "lora", {"r": 8, "alpha": 16})
    model.to("cpu")
    feats = [tokenize_for_training(tokenizer, ex, cfg.cutoff_len, cfg.train_on_inputs) for ex in examples]
    train(model, tokenizer, feats, cfg, device="cpu")
    marks["total_s"] = time.perf_counter() - started
    return marks


def measure(s: Settings) -> dict:
    import peft  # noqa: F401  the import a worker pays once (seconds), kept out of both figures

    from benchmark import models
    from benchmark.registry import catalogue

    models.resolve_source(catalogue.model(s.model))  # an embedded model is built once per machine, not per trial
    models.clear_cache()
    cold = _trial_start_to_first_step(s)
    warm = _trial_start_to_first_step(s)
    return {"cold_s": cold["total_s"], "warm_s": warm["total_s"], "cold": cold, "warm": warm,
            "speedup": cold["total_s"] / warm["total_s"] if warm["total_s"] else None}
