"""Forgetting: a causal LM's mean token loss on held-out general text (`eval.forgetting: CORPUS`).

The base model's and the adapted model's loss on the same texts in the same batches: the first TEXTS documents
of the corpus, each cut at the trial's cutoff_len, every token after the first a target (plain language-model
loss, no prompt masking), the mean over all target tokens (a long text weighs more than a short one). The loss
is the one the model computes from `labels`, as in training: a method that feeds the model virtual tokens
(prefix, prompt tuning) is scored on the real tokens only.
"""

from __future__ import annotations

import torch

TEXTS = 64  # the first documents of the corpus
BATCH = 8  # texts per forward pass (the same batches for the base and the adapted model)
IGNORE_INDEX = -100


def token_ids(tokenizer, documents, cutoff_len: int) -> list[list[int]]:
    """Each document's ids, cut at cutoff_len (as training cuts an example); empty ones dropped."""
    if cutoff_len < 2:
        raise ValueError(f"cutoff_len: got {cutoff_len}; allowed: 2 or more (a loss needs a token to predict)")
    ids = tokenizer(list(documents), truncation=True, max_length=cutoff_len, padding=False)["input_ids"]
    return [list(row) for row in ids if len(row) >= 2]


def _batch(rows: list[list[int]], pad_id: int, device) -> dict[str, torch.Tensor]:
    """Right-padded: every text keeps positions 0.. whatever its batchmates, pads masked and never targets."""
    width = max(len(r) for r in rows)
    ids = torch.tensor([r + [pad_id] * (width - len(r)) for r in rows], device=device)
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=device)
    labels = torch.tensor([r + [IGNORE_INDEX] * (width - len(r)) for r in rows], device=device)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def mean_token_loss(model, tokenizer, documents, cutoff_len: int) -> float:
    """The model's token-weighted mean causal-LM loss on `documents` (eval mode, no gradients)."""
    rows = token_ids(tokenizer, documents, cutoff_len)
    if not rows:
        raise ValueError("forgetting: no document with two or more tokens to compute a loss on")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, n_tokens = 0.0, 0
    try:
        with torch.inference_mode():
            for start in range(0, len(rows), BATCH):
                batch = _batch(rows[start:start + BATCH], pad_id, device)
                n = int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())  # the targets the model's mean is over
                loss = model(**batch).loss
                total += float(loss) * n
                n_tokens += n
    finally:
        model.train(was_training)
    return total / n_tokens
