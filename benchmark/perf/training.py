"""Training throughput: the reference-style loop (padded, plain shuffle) vs peft-bench's default loop.

Same model (the base with LoRA, the method most trials use), same tokenised examples, same number
of optimizer steps of the same examples, same seed, at the protocol's batches (LLM-Adapters' math
commands: 16 examples a step in micro-batches of 4). The reference pads each micro-batch to a
multiple of 8 and runs it; ours is the loop's default: packed rows (train/packing.py) where the
model allows (a step's examples in as few rows as fit in micro_batch_size x cutoff_len tokens:
train/batching.py, packed_rows), else length-grouped padding. Tokens/s counts non-pad
tokens. The losses agree up to dropout's draws: a step's examples and its token-weighted loss are
the reference's. The same comparison runs again with micro-batches as large as the batch (no
accumulation, one forward a step in both loops), which isolates what packing alone gains. Each
loop runs train_repeats times, alternating, after a warm-up; the fastest run of each is kept
(losses are the same in every run: same seed, same batches).
"""

from __future__ import annotations

import copy
from dataclasses import replace

from benchmark.perf.settings import Settings

LORA_ARGS = {"r": 8, "alpha": 16}
REFERENCE_LOOP = {"group_by_length": False, "packing": False}  # finetune.py: padded, plain shuffle


def features(s: Settings, tokenizer) -> list[dict]:
    from benchmark.data import load_examples
    from benchmark.data.prompts import tokenize_for_training
    from benchmark.registry import catalogue

    examples = load_examples(catalogue.dataset(s.train_dataset), None)[:s.train_examples]
    return [tokenize_for_training(tokenizer, ex, s.cutoff_len, True) for ex in examples]


def _config(s: Settings, reference: bool):
    from benchmark.registry.spec import TrainConfig

    loop = REFERENCE_LOOP if reference else {}  # ours: TrainConfig's defaults
    return TrainConfig(batch_size=s.batch_size, micro_batch_size=s.micro_batch_size, max_steps=s.train_steps,
                       learning_rate=3e-3, warmup_steps=0, cutoff_len=s.cutoff_len, seed=0, **loop)


def run_one(s: Settings, base, tokenizer, feats: list[dict], reference: bool) -> dict:
    import torch

    from benchmark import methods
    from benchmark.train import train

    torch.manual_seed(0)
    model = methods.apply(copy.deepcopy(base), "lora", dict(LORA_ARGS))
    stats = train(model, tokenizer, feats, _config(s, reference), device="cpu", log_every=max(1, s.train_steps))
    return {"steps": stats.steps, "tokens": stats.tokens, "seconds": stats.seconds, "packed": stats.packed,
            "forwards_per_step": stats.forwards / stats.steps if stats.steps else None,
            "tokens_per_s": stats.tokens_per_s, "final_loss": stats.final_loss}


def compare(s: Settings, base, tokenizer, feats: list[dict]) -> dict:
    """Both loops at s's batch and micro-batch sizes: the fastest of s.train_repeats alternating runs each."""
    # One short warm-up run of each (first-call allocations, lazy imports), then each loop
    # s.train_repeats times, alternating, keeping each loop's fastest run: a 2-core machine's noise
    # is of the order of the difference measured.
    for reference in (True, False):
        run_one(replace(s, train_steps=2), base, tokenizer, feats, reference=reference)
    runs: dict[bool, list[dict]] = {True: [], False: []}
    for _ in range(s.train_repeats):
        for reference in (True, False):
            runs[reference].append(run_one(s, base, tokenizer, feats, reference=reference))
    reference, ours = (max(runs[kind], key=lambda r: r["tokens_per_s"]) for kind in (True, False))
    return {
        "batch_size": s.batch_size, "micro_batch_size": s.micro_batch_size, "reference": reference, "ours": ours,
        "reference_tokens_per_s": reference["tokens_per_s"], "ours_tokens_per_s": ours["tokens_per_s"],
        "all_runs_tokens_per_s": {"reference": [r["tokens_per_s"] for r in runs[True]],
                                  "ours": [r["tokens_per_s"] for r in runs[False]]},
        "speedup": ours["tokens_per_s"] / reference["tokens_per_s"] if reference["tokens_per_s"] else None,
        "reference_loss": reference["final_loss"], "ours_loss": ours["final_loss"],
        "ours_loop": "packed" if ours["packed"] else "length-grouped padding",
    }


def measure(s: Settings, base=None, tokenizer=None) -> dict:
    from benchmark.perf.evaluation import load_model
    from benchmark.train.batching import epoch_batches, packed_rows, padding_tokens
    from benchmark.train.collate import padded_length

    if base is None:
        base, tokenizer = load_model(s.model)
    feats = features(s, tokenizer)
    lengths = [len(f["input_ids"]) for f in feats]
    import torch

    plain = epoch_batches(lengths, s.micro_batch_size, False, torch.Generator().manual_seed(0))
    grouped = epoch_batches(lengths, s.micro_batch_size, True, torch.Generator().manual_seed(0))
    accum = s.batch_size // s.micro_batch_size  # the rows the loop packs each step's examples into
    steps = [[i for b in plain[k:k + accum] for i in b] for k in range(0, len(plain), accum)]
    rows = [row for step in steps for row in packed_rows(step, lengths, s.micro_batch_size * s.cutoff_len)]
    pads = {"reference": padding_tokens(plain, lengths), "grouped": padding_tokens(grouped, lengths),
            "packed": sum(padded_length(n) - n for n in (sum(lengths[i] for i in row) for row in rows))}
    figures = compare(s, base, tokenizer, feats)
    figures.update({"method": "lora", "steps": s.train_steps, "examples": len(feats),
                    "mean_tokens_per_example": sum(lengths) / len(lengths),
                    "epoch_pad_tokens": {**pads, "ours": pads["packed"] if figures["ours"]["packed"] else pads["grouped"]}})
    if s.micro_batch_size != s.batch_size:  # packing alone: one forward a step in both loops
        figures["micro_batch_equals_batch"] = compare(replace(s, micro_batch_size=s.batch_size), base, tokenizer, feats)
    return figures
