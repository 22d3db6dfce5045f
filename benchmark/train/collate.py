"""Pad a list of tokenised examples into one batch, the way LLM-Adapters' collator does.

finetune.py uses DataCollatorForSeq2Seq(pad_to_multiple_of=8, padding=True) with pad id 0 and
left padding: input_ids padded with the pad id, labels with -100 (ignored by the loss), and an
attention mask of 1 on real tokens. Padding to a multiple of 8 keeps tensor-core shapes.
"""

from __future__ import annotations

import torch

IGNORE_INDEX = -100


def padded_length(longest: int, multiple_of: int = 8) -> int:
    """The batch width: the longest sequence rounded up to a multiple of `multiple_of`."""
    return -(-longest // multiple_of) * multiple_of


def collate(features: list[dict], pad_token_id: int = 0, padding_side: str = "left",
            multiple_of: int = 8) -> dict[str, torch.Tensor]:
    """input_ids / attention_mask / labels tensors of shape (batch, padded_length)."""
    if not features:
        raise ValueError("collate: features is empty")
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side: got {padding_side!r}; allowed: left, right")
    width = padded_length(max(len(f["input_ids"]) for f in features), multiple_of)
    input_ids, attention, labels = [], [], []
    for f in features:
        ids, labs = list(f["input_ids"]), list(f["labels"])
        if len(ids) != len(labs):
            raise ValueError(f"collate: input_ids ({len(ids)}) and labels ({len(labs)}) differ in length")
        pad = width - len(ids)
        if padding_side == "left":
            input_ids.append([pad_token_id] * pad + ids)
            attention.append([0] * pad + [1] * len(ids))
            labels.append([IGNORE_INDEX] * pad + labs)
        else:
            input_ids.append(ids + [pad_token_id] * pad)
            attention.append([1] * len(ids) + [0] * pad)
            labels.append(labs + [IGNORE_INDEX] * pad)
    return {
        "input_ids": torch.tensor(input_ids, dtype=torch.long),
        "attention_mask": torch.tensor(attention, dtype=torch.long),
        "labels": torch.tensor(labels, dtype=torch.long),
    }


def count_loss_tokens(labels: torch.Tensor) -> int:
    """Positions a causal LM's loss averages over: labels shifted by one, not -100."""
    return int((labels[:, 1:] != IGNORE_INDEX).sum())
