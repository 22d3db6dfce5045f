"""Pretraining for the embedded zoo's causal models, so that PEFT has a base model to adapt.

A parameter-efficient method presumes a pretrained base: on a random-initialised network the
frozen weights carry nothing, adapters learn next to nothing in a few hundred steps, and only full
fine-tuning moves (we measured it: LoRA, prefix and the bottleneck adapters stayed at a loss near
6 and 0% accuracy where full fine-tuning reached 1.1). So the zoo gives each causal model a short
language-model pretraining on `data.embedded.pretraining_documents()`: plain text of the embedded
tasks' kind from seeds of their own, disjoint from every test and training instruction, without the
prompt template. Fine-tuning then has to teach the template and answer format, as with a real base.

It runs once, when the zoo builds the model (on CPU, seeded, through the same training loop as the
trials); the settings below are part of the zoo stamp, so changing them rebuilds the cache.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

# About 30 s per model on two idle CPU cores.
SETTINGS = {"steps": 500, "batch_size": 16, "learning_rate": 2.0e-3, "warmup_steps": 25, "max_len": 128, "seed": 1234}


def documents_features(tokenizer, documents, max_len: int) -> list[dict]:
    """BOS + text (+ EOS when it fits), truncated to max_len; the loss covers every token."""
    features = []
    for text in documents:
        ids = tokenizer(text, truncation=True, max_length=max_len)["input_ids"]
        if len(ids) < max_len and ids[-1] != tokenizer.eos_token_id:
            ids = [*ids, tokenizer.eos_token_id]
        features.append({"input_ids": ids, "labels": list(ids)})
    return features


def pretrain_causal(model, tokenizer, documents, settings: dict | None = None):
    """Train every weight of `model` (on CPU) as a causal LM on `documents`; returns the TrainStats."""
    from benchmark.registry.spec import TrainConfig
    from benchmark.train import train

    s = {**SETTINGS, **(settings or {})}
    cfg = TrainConfig(epochs=1, max_steps=s["steps"], batch_size=s["batch_size"], micro_batch_size=s["batch_size"],
                      learning_rate=s["learning_rate"], warmup_steps=s["warmup_steps"], cutoff_len=s["max_len"],
                      group_by_length=True, packing=False, max_grad_norm=None,
                      seed=s["seed"])  # padded and unclipped, as when the zoo was stamped
    stats = train(model, tokenizer, documents_features(tokenizer, documents, s["max_len"]), cfg, device="cpu")
    log.info("zoo pretraining: %d steps, final loss %.3f, %.0f s", stats.steps, stats.final_loss or float("nan"),
             stats.seconds)
    return stats
