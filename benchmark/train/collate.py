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


# Pad value per per-token key; any other per-token key (e.g. token_type_ids) pads with 0.
_PAD_VALUES = {"attention_mask": 0, "labels": IGNORE_INDEX}


def collate(features: list[dict], pad_token_id: int = 0, padding_side: str = "left",
            multiple_of: int = 8) -> dict[str, torch.Tensor]:
    """Tensors of shape (batch, padded_length) for per-token keys (input_ids, attention_mask, labels,
    token_type_ids ...) and (batch,) for per-example keys (a class index or score as `labels`,
    start_positions / end_positions). attention_mask defaults to 1 on every real token."""
    if not features:
        raise ValueError("collate: features is empty")
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side: got {padding_side!r}; allowed: left, right")
    width = padded_length(max(len(f["input_ids"]) for f in features), multiple_of)
    keys = list(features[0])
    if "attention_mask" not in keys:
        keys.append("attention_mask")
    batch = {}
    for key in keys:
        if key != "attention_mask" and not all(key in f for f in features):
            raise ValueError(f"collate: key {key!r} is missing from some features")
        values = [f.get(key, [1] * len(f["input_ids"])) if key == "attention_mask" else f[key] for f in features]
        if isinstance(values[0], (list, tuple)):
            pad_value = pad_token_id if key == "input_ids" else _PAD_VALUES.get(key, 0)
            rows = []
            for f, row in zip(features, values):
                row = list(row)
                if len(row) != len(f["input_ids"]):
                    raise ValueError(f"collate: input_ids ({len(f['input_ids'])}) and {key} ({len(row)}) differ in length")
                pad = [pad_value] * (width - len(row))
                rows.append(pad + row if padding_side == "left" else row + pad)
            batch[key] = torch.tensor(rows, dtype=torch.long)
        else:  # one value per example: float labels are regression targets
            dtype = torch.float32 if any(isinstance(v, float) for v in values) else torch.long
            batch[key] = torch.tensor(values, dtype=dtype)
    return batch


def loss_weight(batch: dict[str, torch.Tensor]) -> int:
    """How many terms the model's mean loss averages over: label tokens of a language model (shifted
    by one; masked-LM labels never sit on the first, special, token, so the count is the same), else
    the number of examples (sequence classification, extractive QA)."""
    labels = batch.get("labels")
    if labels is not None and labels.dim() == 2:
        return count_loss_tokens(labels)
    return int(batch["input_ids"].shape[0])


def count_loss_tokens(labels: torch.Tensor) -> int:
    """Positions a causal LM's loss averages over: labels shifted by one, not -100."""
    return int((labels[:, 1:] != IGNORE_INDEX).sum())
