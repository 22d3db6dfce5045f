"""Evaluate a causal LM on one generation dataset: prompts -> batched generation -> extraction -> accuracy."""

from __future__ import annotations

import torch

from benchmark import metrics
from benchmark.data.example import Example
from benchmark.data.prompts import eval_prompt, response_text
from benchmark.evaluation.extract import extract_answer, is_correct
from benchmark.evaluation.generate import generate
from benchmark.registry.catalogue import DatasetEntry
from benchmark.registry.spec import EvalConfig
from benchmark.result import Metric, Prediction

DEFAULT_MAX_NEW_TOKENS = 32


def decoding_settings(entry: DatasetEntry, cfg: EvalConfig) -> dict:
    """What decoding actually uses for this dataset (stored with every metric)."""
    return {
        "num_beams": cfg.num_beams,
        "max_new_tokens": cfg.max_new_tokens or entry.max_new_tokens or DEFAULT_MAX_NEW_TOKENS,
        "batch_size": cfg.batch_size,
        "do_sample": False,
        "use_cache": True,
        "attention_mask": True,
        "protocol": cfg.protocol,
    }


def evaluate(model, tokenizer, entry: DatasetEntry, examples: list[Example], cfg: EvalConfig,
             decode_hook=None) -> tuple[Metric, list[Prediction], dict]:
    """Accuracy (percent) of `model` on `examples`, the per-example predictions, and the decoding used.
    `decode_hook`: the injected method's (generate.generate_ids says so), None for most methods."""
    if not examples:
        raise ValueError(f"dataset {entry.name}: no examples to evaluate")
    decoding = decoding_settings(entry, cfg)
    prompts = [eval_prompt(ex) for ex in examples]
    # Always eval mode: the reference left LoRA dropout on during generation (a known defect).
    model.eval()
    with torch.inference_mode():
        decoded = generate(model, tokenizer, prompts, decoding["max_new_tokens"], cfg.num_beams, cfg.batch_size,
                           decode_hook)
    predictions = []
    for ex, prompt, text in zip(examples, prompts, decoded):
        output = response_text(text)
        extracted = extract_answer(entry, output, cfg.protocol)
        predictions.append(Prediction(id=ex.id, prompt=prompt, output=output, extracted=extracted, gold=ex.answer,
                                      correct=is_correct(entry, extracted, ex.answer, cfg.protocol)))
    metric = Metric(eval_data=entry.name, task_family=entry.task_family, metric="accuracy",
                    value=metrics.percent_true([p.correct for p in predictions]), n_examples=len(predictions))
    return metric, predictions, decoding
