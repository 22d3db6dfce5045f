"""Masked-language-model training on plain documents: the zoo's encoder pretraining and DAPT/TAPT.

BERT's recipe: 15% of the non-special tokens are chosen; of those 80% become the mask token,
10% a random token, 10% stay; the loss is computed on the chosen positions only. Masks are drawn
once per epoch with a seeded generator (each epoch sees a new mask, as BERT's "dupe factor" and
RoBERTa's dynamic masking), so a stage is reproducible from its settings alone.

Training goes through the same loop as fine-tuning (benchmark.train.loop): the features carry
`labels` with -100 everywhere except the chosen positions.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from benchmark.train.collate import IGNORE_INDEX


@dataclass(frozen=True)
class MlmSettings:
    epochs: float = 1.0
    max_steps: int | None = None
    batch_size: int = 16
    learning_rate: float = 1e-4
    warmup_ratio: float = 0.06
    mlm_probability: float = 0.15
    max_length: int = 128
    seed: int = 0


def tokenize_documents(tokenizer, documents: list[str], max_length: int) -> list[list[int]]:
    """Token ids per document with the model's special tokens, truncated to max_length; empty documents dropped."""
    encoded = tokenizer([d for d in documents if d.strip()], truncation=True, max_length=max_length)["input_ids"]
    return [list(ids) for ids in encoded if len(ids) > 2]


def mask_tokens(ids: list[int], rng: random.Random, tokenizer, probability: float) -> dict:
    """One masked copy of `ids`: input_ids with masks / random / kept tokens, labels on chosen positions."""
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
    """`epochs` masked copies of every document, each epoch with its own masks."""
    if tokenizer.mask_token_id is None:
        raise ValueError("masked-LM training needs a tokenizer with a mask token (BERT/RoBERTa families)")
    rng = random.Random(seed)
    return [mask_tokens(ids, rng, tokenizer, probability) for _ in range(epochs) for ids in token_ids]


def train_mlm(model, tokenizer, documents: list[str], settings: MlmSettings, device: str = "cpu"):
    """Continue masked-LM training of `model` (a *ForMaskedLM, on `device`) on `documents`; returns TrainStats.

    Fractional epochs are rounded up when masks are drawn and cut by the step count."""
    from benchmark.registry.spec import TrainConfig
    from benchmark.train.loop import total_optimizer_steps, train

    token_ids = tokenize_documents(tokenizer, documents, settings.max_length)
    if not token_ids:
        raise ValueError("masked-LM training: no non-empty documents")
    copies = math.ceil(settings.epochs) if settings.max_steps is None else \
        max(1, math.ceil(settings.max_steps * settings.batch_size / len(token_ids)))
    features = masked_features(tokenizer, token_ids, copies, settings.mlm_probability, settings.seed)
    probe = TrainConfig(epochs=settings.epochs, batch_size=settings.batch_size, micro_batch_size=settings.batch_size,
                        learning_rate=settings.learning_rate, max_steps=settings.max_steps, cutoff_len=settings.max_length)
    steps = settings.max_steps or total_optimizer_steps(len(token_ids), probe)
    cfg = TrainConfig(epochs=1, batch_size=settings.batch_size, micro_batch_size=settings.batch_size,
                      learning_rate=settings.learning_rate, max_steps=steps, warmup_steps=int(settings.warmup_ratio * steps),
                      weight_decay=0.01, cutoff_len=settings.max_length, group_by_length=False, seed=settings.seed,
                      max_grad_norm=None)  # unclipped, as when the zoo's encoders were stamped
    return train(model, tokenizer, features, cfg, device=device, log_every=max(1, steps // 10))
