"""Pretraining for the embedded zoo, so that PEFT has a base model to adapt: the zoo's builder.

A parameter-efficient method presumes a pretrained base: on a random-initialised network the
frozen weights carry nothing, adapters learn next to nothing in a few hundred steps, and only full
fine-tuning moves (we measured it: LoRA, prefix and the bottleneck adapters stayed at a loss near
6 and 0% accuracy where full fine-tuning reached 1.1). So the zoo gives each causal model a short
language-model pretraining on `data.embedded.pretraining_documents()`: plain text of the embedded
tasks' kind from seeds of their own, disjoint from every test and training instruction, without the
prompt template. Fine-tuning then has to teach the template and answer format, as with a real base.
The encoders get BERT's masked-LM objective on the encoder tasks' kind of text (`mask_tokens`).

It runs once, when the zoo builds a model, on CPU and seeded, through the minimal loop below and not
the trial loop (benchmark.train): loading a model can never train one as a trial would. The loop
does the arithmetic the trial loop does for these settings (AdamW, linear warmup and decay, one
micro-batch per step padded on the right to a multiple of 8, no clipping, the same shuffles drawn
from the same seeds), so the zoo's weights are the ones it was stamped with. The settings below are
part of the zoo stamp, so changing them rebuilds the cache. DAPT/TAPT stages (benchmark/train/mlm.py)
reuse the masking.
"""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

IGNORE_INDEX = -100  # a label the loss skips
# Causal models: about 30 s per model on two idle CPU cores.
SETTINGS = {"steps": 500, "batch_size": 16, "learning_rate": 2.0e-3, "warmup_steps": 25, "max_len": 128, "seed": 1234}
MEGABATCH = 50  # length grouping sorts ~50 micro-batches' worth of examples at a time


@dataclass
class PretrainStats:
    steps: int = 0
    loss_history: list[tuple[int, float]] = field(default_factory=list)  # (step, mean loss since the last entry)
    final_loss: float | None = None  # mean step loss over the last logging window
    seconds: float = 0.0


# ---- features ----

def documents_features(tokenizer, documents, max_len: int) -> list[dict]:
    """BOS + text (+ EOS when it fits), truncated to max_len; the loss covers every token."""
    features = []
    for text in documents:
        ids = tokenizer(text, truncation=True, max_length=max_len)["input_ids"]
        if len(ids) < max_len and ids[-1] != tokenizer.eos_token_id:
            ids = [*ids, tokenizer.eos_token_id]
        features.append({"input_ids": ids, "labels": list(ids)})
    return features


def tokenize_documents(tokenizer, documents: list[str], max_length: int) -> list[list[int]]:
    """Token ids per document with the model's special tokens, truncated to max_length; empty documents dropped."""
    encoded = tokenizer([d for d in documents if d.strip()], truncation=True, max_length=max_length)["input_ids"]
    return [list(ids) for ids in encoded if len(ids) > 2]


def mask_tokens(ids: list[int], rng: random.Random, tokenizer, probability: float) -> dict:
    """One masked copy of `ids` (BERT's recipe): `probability` of the non-special tokens are chosen; of those
    80% become the mask token, 10% a random token, 10% stay; labels only on the chosen positions."""
    special = set(tokenizer.all_special_ids)
    candidates = [i for i, t in enumerate(ids) if t not in special]
    n_chosen = max(1, round(probability * len(candidates))) if candidates else 0
    chosen = rng.sample(candidates, n_chosen)
    inputs, labels = list(ids), [IGNORE_INDEX] * len(ids)
    for i in chosen:
        labels[i] = ids[i]
        roll = rng.random()
        if roll < 0.8:
            inputs[i] = tokenizer.mask_token_id
        elif roll < 0.9:
            inputs[i] = rng.randrange(len(tokenizer))
    return {"input_ids": inputs, "attention_mask": [1] * len(ids), "labels": labels}


def masked_features(tokenizer, token_ids: list[list[int]], epochs: int, probability: float, seed: int) -> list[dict]:
    """`epochs` masked copies of every document, each epoch with its own masks (dynamic masking)."""
    if tokenizer.mask_token_id is None:
        raise ValueError("masked-LM training needs a tokenizer with a mask token (BERT/RoBERTa families)")
    rng = random.Random(seed)
    return [mask_tokens(ids, rng, tokenizer, probability) for _ in range(epochs) for ids in token_ids]


# ---- the minimal loop ----

def _shuffled_batches(lengths: list[int], size: int, group_by_length: bool, generator):
    """Index lists of `size`, epoch after epoch: a shuffle cut in order, or (group_by_length) megabatches
    sorted by length, cut, their order shuffled and the longest batch first."""
    import torch

    def cut(indices, width):
        return [indices[i:i + width] for i in range(0, len(indices), width)]

    while True:
        order = torch.randperm(len(lengths), generator=generator).tolist()
        if not group_by_length:
            yield from cut(order, size)
            continue
        batches = [b for mega in cut(order, size * MEGABATCH) for b in cut(sorted(mega, key=lambda i: -lengths[i]), size)]
        batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        longest = max(range(len(batches)), key=lambda b: max(lengths[i] for i in batches[b]))
        batches[0], batches[longest] = batches[longest], batches[0]
        yield from batches


def _pad_right(features: list[dict], pad_id: int) -> dict:
    """input_ids padded with pad_id, labels with IGNORE_INDEX, attention 0 on the padding; width a multiple of 8."""
    import torch

    width = -(-max(len(f["input_ids"]) for f in features) // 8) * 8
    pads = {"input_ids": pad_id, "labels": IGNORE_INDEX, "attention_mask": 0}
    rows = {key: [] for key in pads}
    for f in features:
        gap = width - len(f["input_ids"])
        mask = f.get("attention_mask", [1] * len(f["input_ids"]))
        for key, row in (("input_ids", f["input_ids"]), ("labels", f["labels"]), ("attention_mask", mask)):
            rows[key].append(list(row) + [pads[key]] * gap)
    return {key: torch.tensor(value, dtype=torch.long) for key, value in rows.items()}


def fit(model, tokenizer, features: list[dict], steps: int, batch_size: int, learning_rate: float,
        warmup_steps: int, weight_decay: float, group_by_length: bool, seed: int, log_every: int) -> PretrainStats:
    """Train every trainable weight of `model` (on CPU) for `steps` optimizer steps of `batch_size` features."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=weight_decay)

    def factor(step: int) -> float:  # linear warmup, then linear decay to 0 at `steps`
        if step < warmup_steps:
            return step / max(1, warmup_steps)
        return max(0.0, (steps - step) / max(1, steps - warmup_steps))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    batches = _shuffled_batches([len(f["input_ids"]) for f in features], batch_size, group_by_length, generator)
    stats, losses, window_start = PretrainStats(), [], 0
    model.train()
    started = time.perf_counter()
    try:
        for step in range(1, steps + 1):
            batch = _pad_right([features[i] for i in next(batches)], pad_id)
            loss = 0.0
            if int((batch["labels"][:, 1:] != IGNORE_INDEX).sum()):  # a batch with no label trains nothing
                out = model(**batch).loss
                if not torch.isfinite(out):
                    raise FloatingPointError(f"zoo pretraining: non-finite loss at step {step}")
                out.backward()
                loss = out.item()
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss)
            stats.steps = step
            if step % log_every == 0 or step == steps:
                window = losses[window_start:]
                stats.loss_history.append((step, sum(window) / len(window)))
                window_start = len(losses)
    finally:
        stats.seconds = time.perf_counter() - started
        model.eval()
    last = losses[-min(log_every, len(losses)):]
    stats.final_loss = sum(last) / len(last) if last else None
    return stats


# ---- the two objectives ----

def pretrain_causal(model, tokenizer, documents, settings: dict | None = None) -> PretrainStats:
    """Train every weight of `model` (on CPU) as a causal LM on `documents`: length-grouped batches."""
    s = {**SETTINGS, **(settings or {})}
    stats = fit(model, tokenizer, documents_features(tokenizer, documents, s["max_len"]), steps=s["steps"],
                batch_size=s["batch_size"], learning_rate=s["learning_rate"], warmup_steps=s["warmup_steps"],
                weight_decay=0.0, group_by_length=True, seed=s["seed"], log_every=10)
    log.info("zoo pretraining: %d steps, final loss %.3f, %.0f s", stats.steps, stats.final_loss or float("nan"),
             stats.seconds)
    return stats


def pretrain_masked(model, tokenizer, documents: list[str], settings: dict) -> PretrainStats:
    """Masked-LM training of `model` (a *ForMaskedLM, on CPU) for settings["max_steps"] steps: enough masked
    copies of the documents for the steps, plain shuffled batches, weight decay 0.01."""
    token_ids = tokenize_documents(tokenizer, documents, settings["max_length"])
    if not token_ids:
        raise ValueError("masked-LM pretraining: no non-empty documents")
    steps, size = settings["max_steps"], settings["batch_size"]
    copies = max(1, math.ceil(steps * size / len(token_ids)))
    features = masked_features(tokenizer, token_ids, copies, settings["mlm_probability"], settings["seed"])
    return fit(model, tokenizer, features, steps=steps, batch_size=size, learning_rate=settings["learning_rate"],
               warmup_steps=int(settings["warmup_ratio"] * steps), weight_decay=0.01, group_by_length=False,
               seed=settings["seed"], log_every=max(1, steps // 10))
