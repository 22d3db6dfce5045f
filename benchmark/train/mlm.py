"""Masked-language-model training on plain documents: the zoo's encoder pretraining and DAPT/TAPT.

BERT's recipe (models/pretrain.py, shared with the zoo's encoder pretraining): 15% of the
non-special tokens are chosen; of those 80% become the mask token, 10% a random token, 10% stay;
the loss is computed on the chosen positions only. Masks are drawn once per epoch with a seeded
generator (each epoch sees a new mask, as BERT's "dupe factor" and RoBERTa's dynamic masking), so a
stage is reproducible from its settings alone.

DAPT/TAPT stages train through the same loop as fine-tuning (benchmark.train.loop, on the trial's
device): the features carry `labels` with -100 everywhere except the chosen positions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from benchmark.models.pretrain import masked_features, tokenize_documents


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
