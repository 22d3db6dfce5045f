"""Attention of a co-trained group's packed row: causal inside each example, never across, and a member whose
method puts virtual key/values before the model's own (prefix tuning) gets them in front of each of its examples.

The row holds every member's examples back to back (train/cotrain.py); `Layout` says where each example ends and
which virtual key/values (one member's, or none) it sees. A prefix member's example attends to all its virtual slots
and causally to itself, positions numbered after the virtual tokens: what peft feeds the model for that member
alone (virtual key/values as the cache, the mask extended by ones, cache positions offset by them).
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers.modeling_utils import AttentionInterface

from benchmark.train.packing import _varlen, _varlen_attention
from benchmark.train.routing import scoped

GROUP = "peft_bench_group"  # our entry in transformers' attention registry


@dataclass
class Layout:
    lengths: list[int]  # the examples of the row, in order (a member's padding is an example of its own)
    virtual: list[int | None]  # per example: the index into `caches` of the virtual key/values it sees, or None
    caches: list  # per prefix member: its virtual key/values (a transformers Cache of batch 1), this forward's

    def __post_init__(self):
        self.max_length = max(self.lengths)
        self.cu_seqlens = None

    def flash_layout(self, device):
        if self.cu_seqlens is None:
            self.cu_seqlens = torch.tensor([0, *self.lengths], device=device, dtype=torch.int32).cumsum(0, dtype=torch.int32)
        return self


_LAYOUT: ContextVar[Layout | None] = ContextVar("peft_bench_group_layout", default=None)


def laid_out(layout: Layout):
    return scoped(_LAYOUT, layout)


def group_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """query (1, heads, width, dim), key/value (1, kv_heads, width, dim); returns (1, width, heads, dim)."""
    layout = _LAYOUT.get()
    if layout is None or attention_mask is not None or query.shape[0] != 1 or key.shape[2] != query.shape[2]:
        raise RuntimeError("group_attention: runs inside a co-trained group's packed forward only")
    if sum(layout.lengths) != query.shape[2]:
        raise RuntimeError(f"group_attention: the layout covers {sum(layout.lengths)} tokens, the row has {query.shape[2]}")
    varlen = _varlen()
    if (varlen is not None and query.is_cuda and query.dtype in (torch.float16, torch.bfloat16)
            and not layout.caches):
        return _varlen_attention(varlen, query, key, value, layout.flash_layout(query.device), scaling), None
    groups = query.shape[1] // key.shape[1]
    pieces = []
    for q, k, v, virtual in zip(*(x.split(layout.lengths, dim=2) for x in (query, key, value)), layout.virtual):
        if virtual is None:
            if groups > 1:
                k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
            pieces.append(F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scaling))
            continue
        cached = layout.caches[virtual].layers[module.layer_idx]
        k = torch.cat([cached.keys.to(k.dtype), k], dim=2)
        v = torch.cat([cached.values.to(v.dtype), v], dim=2)
        if groups > 1:
            k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
        n, n_virtual = q.shape[2], cached.keys.shape[2]
        sees = torch.ones(n, n_virtual + n, dtype=torch.bool, device=q.device)
        sees[:, n_virtual:] = torch.ones(n, n, dtype=torch.bool, device=q.device).tril()
        pieces.append(F.scaled_dot_product_attention(q, k, v, attn_mask=sees, scale=scaling))
    out = torch.cat(pieces, dim=2) if len(pieces) > 1 else pieces[0]
    return out.transpose(1, 2), None


AttentionInterface.register(GROUP, group_attention)
