"""Packed rows: examples side by side in one row, no padding between them.

A padded micro-batch costs every row the width of its longest example: on the embedded math_10k at
16 examples, a third more tokens than the examples hold. Length grouping brings that to ~5%, but
batches of similar lengths are not the reference's batches: the loss after the same steps differs
(measured: 6.97 against 6.87 after 60 steps on a 1B LLaMA shape). Packing feeds exactly the
examples' tokens (the row is rounded up to a multiple of 8) whatever the lengths, so the
micro-batches stay the reference's plainly shuffled ones and so does the loss. The loop packs an
optimizer step's examples into as few rows as fit in micro_batch_size x cutoff_len tokens
(batching.packed_rows), so a step of short examples takes fewer forwards than micro-batches.

Correct boundaries, the same loss as padding:
- positions restart at 0 for every example (`position_ids`), so rotary embeddings see each example
  as if alone;
- attention never crosses an example: `packed_attention` (registered with transformers'
  AttentionInterface) runs causal attention per example: on CUDA in half precision one call of
  torch's variable-length flash attention over the whole row, elsewhere one causal SDPA per
  example's slice. The examples are read from the restarts in position_ids (so a recompute under
  gradient checkpointing, which replays the same arguments, finds them too); no (tokens x tokens)
  mask is ever built;
- the first token of an example is never a target (its label is -100; tokenize_for_training
  already makes it so, and pack() enforces it), so no example predicts from the one before it.

Only models whose attention goes through the registry can pack, and a method may still break it
(virtual tokens or prefix keys prepended, a library's own attention): `packing_matches` runs a
packed and an unpacked forward of a few training examples at the start of training and packs only
if the per-example losses agree. Otherwise the loop pads (length-grouped), as before.
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
import warnings

import torch
import torch.nn.functional as F
from transformers.modeling_utils import AttentionInterface

from benchmark.models.attention import base_of, dispatches_attention, implementation
from benchmark.train.collate import IGNORE_INDEX, collate, padded_length

PACKED = "peft_bench_packed"  # our entry in transformers' attention registry
PROBE_EXAMPLES = 3
log = logging.getLogger(__name__)


def pack(features: list[dict], pad_token_id: int = 0, multiple_of: int = 8) -> dict[str, torch.Tensor]:
    """One row (1, width): input_ids, labels and position_ids of the examples back to back, then padding
    to a multiple of `multiple_of` (its own segment: positions from 0, labels -100)."""
    if not features:
        raise ValueError("pack: features is empty")
    ids: list[int] = []
    labels: list[int] = []
    positions: list[int] = []
    for f in features:
        n = len(f["input_ids"])
        if n == 0:
            raise ValueError("pack: an example has no tokens")
        if len(f["labels"]) != n:
            raise ValueError(f"pack: input_ids ({n}) and labels ({len(f['labels'])}) differ in length")
        ids.extend(f["input_ids"])
        labels.append(IGNORE_INDEX)
        labels.extend(f["labels"][1:])
        positions.extend(range(n))
    pad = padded_length(len(ids), multiple_of) - len(ids)
    ids.extend([pad_token_id] * pad)
    labels.extend([IGNORE_INDEX] * pad)
    positions.extend(range(pad))
    return {"input_ids": torch.tensor([ids]), "labels": torch.tensor([labels]),
            "position_ids": torch.tensor([positions])}


def segment_lengths(position_ids: torch.Tensor) -> list[int]:
    """Lengths of the runs that start where position_ids is 0, for a (1, width) row."""
    if position_ids.dim() != 2 or position_ids.shape[0] != 1:
        raise ValueError(f"packed attention: position_ids of shape {tuple(position_ids.shape)}; allowed: (1, width)")
    starts = (position_ids[0] == 0).nonzero()[:, 0].tolist()
    if not starts or starts[0] != 0:
        raise ValueError("packed attention: position_ids must start at 0")
    return [b - a for a, b in zip(starts, starts[1:] + [position_ids.shape[1]])]


class _Layout:
    """The examples of a packed row: their lengths, cumulative offsets (int32, for flash's varlen API)
    and the longest."""

    def __init__(self, position_ids: torch.Tensor):
        self.lengths = segment_lengths(position_ids)
        self.max_length = max(self.lengths)
        self.cu_seqlens = torch.tensor([0, *self.lengths], device=position_ids.device,
                                       dtype=torch.int32).cumsum(0, dtype=torch.int32)


_last_layout: tuple[torch.Tensor, _Layout] | None = None


def _layout_of(position_ids: torch.Tensor) -> _Layout:
    """Every layer of a forward (and a checkpoint's recompute) gets the same position_ids tensor: build
    its layout once."""
    global _last_layout
    if _last_layout is None or _last_layout[0] is not position_ids:
        _last_layout = (position_ids, _Layout(position_ids))
    return _last_layout[1]


@functools.cache
def _varlen():
    """(varlen_attn, its keyword arguments for causal attention, whether it takes GQA) from torch's
    variable-length flash attention (CUDA, half precision), or None where torch lacks it. Looked up
    once: the attention of every layer asks. torch 2.11 and 2.13 take a window, where (-1, 0) is causal
    (run on an H200 with 2.11); is_causal is for a version that takes that instead."""
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return None
    params = inspect.signature(varlen_attn).parameters
    causal = {"is_causal": True} if "is_causal" in params else {"window_size": (-1, 0)}
    return varlen_attn, causal, "enable_gqa" in params


def _varlen_attention(varlen, query, key, value, layout: _Layout, scaling):
    """One flash call over the packed row, whatever the number of examples."""
    varlen_attn, causal, takes_gqa = varlen
    q, k, v = (x[0].transpose(0, 1) for x in (query, key, value))  # (width, heads, dim)
    kwargs = {"scale": scaling, **causal}
    if k.shape[1] != q.shape[1]:
        if takes_gqa:
            kwargs["enable_gqa"] = True
        else:
            groups = q.shape[1] // k.shape[1]
            k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    out = varlen_attn(q, k, v, layout.cu_seqlens, layout.cu_seqlens, layout.max_length, layout.max_length, **kwargs)
    return out.unsqueeze(0)  # (1, width, heads, dim)


def packed_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Causal attention inside each example of a packed row. query (1, heads, width, dim), key/value
    (1, kv_heads, width, dim); returns (1, width, heads, dim) as transformers' attention functions do."""
    position_ids = kwargs.get("position_ids")
    if position_ids is None or attention_mask is not None or key.shape[2] != query.shape[2] or query.shape[0] != 1:
        # Something other than our packed row reached the layer (a mask, prefix keys, a cache):
        # refuse rather than attend across examples.
        raise RuntimeError("packed_attention: needs one row, position_ids, no attention mask and as many keys "
                           "as queries")
    layout = _layout_of(position_ids)
    p = dropout if module.training else 0.0
    varlen = _varlen()
    if varlen is not None and query.is_cuda and query.dtype in (torch.float16, torch.bfloat16) and p == 0.0:
        return _varlen_attention(varlen, query, key, value, layout, scaling), None
    groups = query.shape[1] // key.shape[1]
    if groups > 1:
        key, value = key.repeat_interleave(groups, dim=1), value.repeat_interleave(groups, dim=1)
    # Elsewhere (CPU, fp32): one causal SDPA per example on its slice of the row. split, not slicing, so
    # the backward is one cat of the pieces' gradients, not a full-size zero tensor per piece.
    pieces = [F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True, scale=scaling)
              for q, k, v in zip(*(x.split(layout.lengths, dim=2) for x in (query, key, value)))]
    out = torch.cat(pieces, dim=2) if len(pieces) > 1 else pieces[0]
    return out.transpose(1, 2), None


AttentionInterface.register(PACKED, packed_attention)


def packed_forward(model):
    """The context a packed micro-batch's forward and backward run in (backward too: a gradient
    checkpoint recomputes the forward there)."""
    return implementation(base_of(model), PACKED)


def can_pack(model) -> bool:
    """A causal LM whose attention goes through transformers' registry (llama and the like)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    core = base_of(model)
    return (type(core).__name__ in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values() and dispatches_attention(core)
            and hasattr(getattr(core, "config", None), "_attn_implementation"))


def _tolerance(model) -> float:
    # Same arithmetic in a different order: fp32 agrees to ~1e-6, half precision to ~1e-2.
    return 1e-4 if next(model.parameters()).dtype == torch.float32 else 3e-2


@torch.no_grad()
def packing_matches(model, features: list[dict], pad_token_id: int, padding_side: str, device: str,
                    autocast=None) -> bool:
    """Does a packed forward give each of a few examples the loss it gets alone? False (logged) when
    it differs or raises: the model or method does something per row that packing would break."""
    import contextlib

    if not can_pack(model):
        return False
    probe = [f for f in features if isinstance(f.get("labels"), list) and len(f["labels"]) == len(f["input_ids"])
             and any(label != IGNORE_INDEX for label in f["labels"][1:])][:PROBE_EXAMPLES]
    if len(probe) < 2:
        return False  # nothing to compare against; padding is as good for so little
    was_training = model.training
    model.eval()
    autocast = autocast or contextlib.nullcontext
    try:
        with autocast():
            alone = [float(model(**_on(collate([f], pad_token_id, padding_side, multiple_of=1), device)).loss)
                     for f in probe]
            batch = _on(pack(probe, pad_token_id), device)
            with packed_forward(model), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # e.g. peft's "position ids are not supported" for prompt methods
                logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits
        packed = _segment_losses(logits.float(), batch["labels"], [len(f["input_ids"]) for f in probe])
    except Exception as error:  # noqa: BLE001  any failure means: do not pack this model
        log.info("packing off: a packed forward failed (%s: %s)", type(error).__name__, error)
        return False
    finally:
        model.train(was_training)
    worst = max(abs(a - b) / max(1.0, abs(a)) for a, b in zip(alone, packed))
    if not math.isfinite(worst) or worst > _tolerance(model):
        log.info("packing off: packed and unpacked losses differ by %.2g (relative)", worst)
        return False
    return True


def _on(batch: dict[str, torch.Tensor], device: str) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


def _segment_losses(logits: torch.Tensor, labels: torch.Tensor, lengths: list[int]) -> list[float]:
    """Mean next-token loss of each example in a packed row."""
    losses, start = [], 0
    for n in lengths:
        targets = labels[0, start + 1:start + n]
        losses.append(float(F.cross_entropy(logits[0, start:start + n - 1], targets, ignore_index=IGNORE_INDEX)))
        start += n
    return losses
