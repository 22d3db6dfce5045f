"""Evaluate a causal LM on one generation dataset: prompts -> batched generation -> extraction -> accuracy."""

from __future__ import annotations

import torch

from benchmark import metrics
from benchmark.data.example import Example
from benchmark.data.prompts import eval_prompt, response_text
from benchmark.evaluation.extract import extract_answer, is_correct
from benchmark.evaluation.generate import generate
from benchmark.registry.catalogue import DatasetEntry
from benchmark.registry.quirks import acts_on
from benchmark.registry.spec import EvalConfig
from benchmark.result import Metric, Prediction

DEFAULT_MAX_NEW_TOKENS = 32


def unmasked_batches(entry: DatasetEntry, cfg: EvalConfig) -> bool:
    """The no_attention_mask quirk acts on this set: commonsense_evaluate.py's sets (a choice answer rule) decode in
    the data's order, batched, with no attention mask; evaluate.py decodes math one example at a time (no padding)."""
    return acts_on("no_attention_mask", entry.answer) and cfg.quirk_on("no_attention_mask")


def batch_shapes_outputs(entry: DatasetEntry, cfg: EvalConfig) -> bool:
    """Whether outputs depend on how examples are batched (then the batch is cfg.batch_size, never sized from the
    machine's free memory, so a trial's numbers do not depend on where it ran)."""
    return unmasked_batches(entry, cfg) or cfg.quirk_on("dropout_at_eval")


def decoding_settings(entry: DatasetEntry, cfg: EvalConfig) -> dict:
    """What decoding actually uses for this dataset (stored with every metric)."""
    from benchmark.registry.quirks import label

    return {
        "num_beams": cfg.num_beams,
        "max_new_tokens": cfg.max_new_tokens or entry.max_new_tokens or DEFAULT_MAX_NEW_TOKENS,
        "batch_size": cfg.batch_size,
        "do_sample": False,
        "use_cache": True,
        "attention_mask": not unmasked_batches(entry, cfg),
        "dropout": cfg.quirk_on("dropout_at_eval"),
        "prompt_template": "evaluation" if cfg.quirk_on("template_whitespace") else "training",
        "protocol": cfg.protocol,
        "quirks": label(cfg.protocol, cfg.quirks),
    }


def evaluate(model, tokenizer, entry: DatasetEntry, examples: list[Example], cfg: EvalConfig,
             decode_hook=None, seed: int = 0) -> tuple[Metric, list[Prediction], dict]:
    """Accuracy (percent) of `model` on `examples`, the per-example predictions, and the decoding used.
    `decode_hook`: the injected method's (generate.generate_ids says so), None for most methods. `seed`: the dropout
    draws' under the dropout_at_eval quirk (the trial's seed: the same trial decodes the same way wherever it runs)."""
    if not examples:
        raise ValueError(f"dataset {entry.name}: no examples to evaluate")
    decoding = decoding_settings(entry, cfg)
    prompts = [eval_prompt(ex, reference_template=cfg.quirk_on("template_whitespace")) for ex in examples]
    unmasked = unmasked_batches(entry, cfg)
    # Eval mode unless the dropout_at_eval quirk is on (the scripts' GPU path never calls model.eval()).
    dropout = cfg.quirk_on("dropout_at_eval")
    model.train(dropout)
    try:
        with torch.random.fork_rng(devices=_cuda_devices(model)), torch.inference_mode():
            torch.manual_seed(seed)
            decoded = generate(model, tokenizer, prompts, decoding["max_new_tokens"], cfg.num_beams, cfg.batch_size,
                               decode_hook, sort=not unmasked, mask_pads=not unmasked)
    finally:
        model.eval()
    predictions = []
    for ex, prompt, text in zip(examples, prompts, decoded):
        output = response_text(text)
        extracted = extract_answer(entry, output, cfg.protocol, cfg.quirks)
        predictions.append(Prediction(id=ex.id, prompt=prompt, output=output, extracted=extracted, gold=ex.answer,
                                      correct=is_correct(entry, extracted, ex.answer, cfg.protocol)))
    metric = Metric(eval_data=entry.name, task_family=entry.task_family, metric="accuracy",
                    value=metrics.percent_true([p.correct for p in predictions]), n_examples=len(predictions))
    return metric, predictions, decoding


def _cuda_devices(model) -> list:
    device = next(model.parameters()).device
    return [device] if device.type == "cuda" else []
