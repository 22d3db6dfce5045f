"""Training throughput: the reference-style loop (no length grouping) vs peft-bench's (length-grouped batches).

Same model (the base with LoRA, the method most trials use), same tokenised examples, same number
of optimizer steps, same seed; both pad every micro-batch to a multiple of 8 (collate). Tokens/s
counts non-pad tokens, so the ratio is how much less padding and attention over padding costs.
Each loop runs twice, alternating, after a warm-up; the faster run of each is kept (losses are
the same in both runs: same seed, same batches).
"""

from __future__ import annotations

import copy
from dataclasses import replace

from benchmark.perf.settings import Settings

LORA_ARGS = {"r": 8, "alpha": 16}


def features(s: Settings, tokenizer) -> list[dict]:
    from benchmark.data import load_examples
    from benchmark.data.prompts import tokenize_for_training
    from benchmark.registry import catalogue

    examples = load_examples(catalogue.dataset(s.train_dataset), None)[:s.train_examples]
    return [tokenize_for_training(tokenizer, ex, s.cutoff_len, True) for ex in examples]


def _config(s: Settings, group_by_length: bool):
    from benchmark.registry.spec import TrainConfig

    return TrainConfig(batch_size=s.micro_batch_size, micro_batch_size=s.micro_batch_size, max_steps=s.train_steps,
                       learning_rate=3e-3, warmup_steps=0, cutoff_len=s.cutoff_len, group_by_length=group_by_length,
                       seed=0)


def run_one(s: Settings, base, tokenizer, feats: list[dict], group_by_length: bool) -> dict:
    import torch

    from benchmark import methods
    from benchmark.train import train

    torch.manual_seed(0)
    model = methods.apply(copy.deepcopy(base), "lora", dict(LORA_ARGS))
    stats = train(model, tokenizer, feats, _config(s, group_by_length), device="cpu", log_every=max(1, s.train_steps))
    return {"steps": stats.steps, "tokens": stats.tokens, "seconds": stats.seconds,
            "tokens_per_s": stats.tokens_per_s, "final_loss": stats.final_loss}


def measure(s: Settings, base=None, tokenizer=None) -> dict:
    from benchmark.perf.evaluation import load_model
    from benchmark.train.batching import epoch_batches, padding_tokens

    if base is None:
        base, tokenizer = load_model(s.model)
    feats = features(s, tokenizer)
    lengths = [len(f["input_ids"]) for f in feats]
    import torch

    pads = {group: padding_tokens(epoch_batches(lengths, s.micro_batch_size, group, torch.Generator().manual_seed(0)),
                                  lengths) for group in (False, True)}
    # One short warm-up run (first-call allocations, lazy imports), then each loop twice, alternating,
    # keeping each loop's faster run: a 2-core machine's noise is of the order of the difference measured.
    run_one(replace(s, train_steps=2), base, tokenizer, feats, group_by_length=False)
    runs: dict[bool, list[dict]] = {False: [], True: []}
    for _ in range(2):
        for group in (False, True):
            runs[group].append(run_one(s, base, tokenizer, feats, group_by_length=group))
    reference, ours = (max(runs[group], key=lambda r: r["tokens_per_s"]) for group in (False, True))
    return {
        "method": "lora", "steps": s.train_steps, "micro_batch_size": s.micro_batch_size, "examples": len(feats),
        "mean_tokens_per_example": sum(lengths) / len(lengths),
        "reference": reference, "ours": ours,
        "reference_tokens_per_s": reference["tokens_per_s"], "ours_tokens_per_s": ours["tokens_per_s"],
        "speedup": ours["tokens_per_s"] / reference["tokens_per_s"] if reference["tokens_per_s"] else None,
        "reference_loss": reference["final_loss"], "ours_loss": ours["final_loss"],
        "epoch_pad_tokens": {"reference": pads[False], "ours": pads[True]},
    }
