"""The KV cache of our beam and greedy search (beam.py) after the prefill: preallocated, and for
beams, each example's prompt and generated tokens stored once and never copied on a beam reorder.

transformers' DynamicLayer appends a token by `torch.cat` of the whole cache, and a beam reorder
copies the whole cache again (index_select): two full copies per layer and step, the largest cost
of a decode step of a small model, with K copies of every prompt for K beams.

- `BufferLayer` keeps the same keys/values (`.keys` / `.values` are views of the filled part, so
  every reader of a DynamicLayer still works) in a buffer with spare slots: an append writes one
  token in place, a reorder among the beams of one example copies only the generated slots (those
  beams share the prompt's). Used for any model whose cache is a plain DynamicCache.
- `SharedPromptLayer` keeps each example's prompt keys/values once, and the key/value of the token
  each beam slot generated at step t in slot (t, beam), written once and never moved. Which slots
  make up a beam's history is the `lineage` table of DecodeCache ((rows, steps) of beam slots; a
  reorder gathers that small integer table instead of the cache). The attention of a decode step
  (`shared_prompt_attention`) scores an example's K beam queries against its prompt keys and
  against all of its generated slots in two matmuls (each key read once per example, not per beam),
  masks the generated slots outside each beam's lineage, and takes one softmax over both parts.
  Used for models that dispatch attention through transformers' AttentionInterface (llama and the
  like), with a ready 4-D mask; the search switches the model's attention implementation to it
  only while it decodes.

Anything else (sliding windows, quantised caches, not 4-D) keeps its cache and transformers' reorder.
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer
from transformers.modeling_utils import AttentionInterface

from benchmark.models.attention import dispatches_attention, implementation

SHARED = "peft_bench_shared_prompt"  # our entry in transformers' attention registry
_ACTIVE: ContextVar[DecodeCache | None] = ContextVar("peft_bench_decode_cache", default=None)


class _Slots:
    """Keys and values of `length` tokens per row in one buffer (2, rows, heads, capacity, dim) with
    spare token slots; one buffer so that a reorder moves keys and values in one indexing call."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, spare: int):
        self.length = keys.shape[2]
        self.buffer = self._allocate(torch.stack([keys, values]), self.length + spare)

    @staticmethod
    def _allocate(filled: torch.Tensor, capacity: int) -> torch.Tensor:
        two, rows, heads, length, dim = filled.shape
        buffer = filled.new_empty(two, rows, heads, capacity, dim)
        buffer[:, :, :, :length] = filled
        return buffer

    def view(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.buffer[0, :, :, :self.length], self.buffer[1, :, :, :self.length]

    def append(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        new = keys.shape[2]
        if self.length + new > self.buffer.shape[3]:
            # Double the room: a long generation copies its cache a few times, not every step.
            room = 2 * max(new, self.buffer.shape[3] - self.length, 16)
            self.buffer = self._allocate(self.buffer[:, :, :, :self.length], self.length + room)
        self.buffer[0, :, :, self.length:self.length + new] = keys
        self.buffer[1, :, :, self.length:self.length + new] = values
        self.length += new

    def select(self, source: torch.Tensor, start: int = 0, moved: torch.Tensor | None = None) -> None:
        """Row i becomes old row source[i]. Slots before `start` are promised equal in every pair of
        rows `source` maps together (one example's beams share its prompt), so they are not copied.
        `moved` (same number of rows only): the rows whose source is another row; the others stay."""
        filled = self.buffer[:, :, :, start:self.length]
        if moved is not None:
            if moved.numel() and start < self.length:
                self.buffer[:, moved, :, start:self.length] = filled[:, source.index_select(0, moved)]
            return
        if source.numel() > self.buffer.shape[1]:  # more rows than before: a new buffer
            self.buffer = self._allocate(self.buffer[:, :, :, :self.length].index_select(1, source), self.buffer.shape[3])
            return
        rows = source.numel()
        if start < self.length:  # fewer or as many rows: gather into the buffer's first rows
            self.buffer[:, :rows, :, start:self.length] = filled.index_select(1, source)
        self.buffer = self.buffer[:, :rows]


class BufferLayer(DynamicLayer):
    """A DynamicLayer in preallocated buffers (see the module docstring)."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, spare: int):
        super().__init__()
        self.dtype, self.device, self.is_initialized = keys.dtype, keys.device, True
        self.slots = _Slots(keys, values, spare)
        self.keys, self.values = self.slots.view()

    def update(self, key_states, value_states, cache_kwargs=None):
        self.slots.append(key_states, value_states)
        self.keys, self.values = self.slots.view()
        return self.keys, self.values

    def select(self, source: torch.Tensor, items: torch.Tensor | None, shared: int, moved=None) -> None:
        self.slots.select(source, 0 if items is not None else shared, moved)
        self.keys, self.values = self.slots.view()

    def reorder_cache(self, beam_idx: torch.Tensor) -> None:
        beam_idx = beam_idx.to(self.device)
        self.select(beam_idx, beam_idx, 0)

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self.reorder_cache(indices)


class SharedPromptLayer(DynamicLayer):
    """One layer of a beam search's cache: prompt keys/values per example, generated ones per (step, beam slot).

    `.keys` / `.values` are the prompt part (items, kv_heads, prompt, dim); the generated part is
    `generated_kv()`. Only `shared_prompt_attention` reads this layer, inside DecodeCache.active()."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, beams: int, spare: int):
        super().__init__()
        self.dtype, self.device, self.is_initialized = keys.dtype, keys.device, True
        self.keys, self.values = keys.contiguous(), values.contiguous()
        self.beams, self.length = beams, 0
        items, heads, _, dim = keys.shape
        # (key|value, item, head, step, beam slot, dim): steps x slots of one item and head form one
        # contiguous run, so the attention reads all of an example's generated keys as one matrix.
        # Every slot below `length` is written (all beams of all examples write every step), so the
        # attention never reads uninitialised memory.
        self.buffer = keys.new_empty(2, items, heads, max(spare, 1), beams, dim)

    def get_seq_length(self) -> int:
        return self.keys.shape[2] + self.length

    def get_mask_sizes(self, cache_position: torch.Tensor) -> tuple[int, int]:
        return self.get_seq_length() + cache_position.shape[0], 0

    def generated_kv(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of every generated slot, (items, kv_heads, steps x beams, dim), step-major."""
        filled = self.buffer[:, :, :, :self.length]
        two, items, heads, steps, beams, dim = filled.shape
        return filled[0].reshape(items, heads, steps * beams, dim), filled[1].reshape(items, heads, steps * beams, dim)

    def update(self, key_states, value_states, cache_kwargs=None):
        rows, heads, new, dim = key_states.shape
        if new != 1:
            raise RuntimeError("SharedPromptLayer takes one token per row and step")
        if self.length == self.buffer.shape[3]:  # full: twice the steps (a few copies per generation)
            grown = self.buffer.new_empty(*self.buffer.shape[:3], 2 * self.length, *self.buffer.shape[4:])
            grown[:, :, :, :self.length] = self.buffer
            self.buffer = grown
        items = self.buffer.shape[1]
        for part, states in ((0, key_states), (1, value_states)):  # row = item * beams + slot
            self.buffer[part, :, :, self.length] = states.reshape(items, self.beams, heads, dim).transpose(1, 2)
        self.length += 1
        return key_states, value_states

    def select(self, source: torch.Tensor, items: torch.Tensor | None, shared: int, moved=None) -> None:
        # Rows that only swap beams need nothing here (DecodeCache moves the lineage); evicted
        # examples leave the prompt and generated buffers.
        if items is not None and items.numel() < self.keys.shape[0]:
            self.keys, self.values = self.keys.index_select(0, items), self.values.index_select(0, items)
            kept = items.numel()  # compact into the buffer's first examples: no new allocation
            self.buffer[:, :kept, :, :self.length] = self.buffer[:, :, :, :self.length].index_select(1, items)
            self.buffer = self.buffer[:, :kept]


def shared_prompt_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Decode-step attention over SharedPromptLayer: softmax(q [prompt keys; lineage keys]) [values].

    query (rows, heads, 1, dim), rows = items x beams; key/value (this step's) are already in the
    layer; attention_mask: None or (rows, 1, 1, prompt + generated) boolean. Returns (rows, 1,
    heads, dim) as transformers' attention functions do."""
    decode = _ACTIVE.get()
    layer = decode.cache.layers[module.layer_idx] if decode is not None else None
    if not isinstance(layer, SharedPromptLayer) or query.shape[2] != 1:
        raise RuntimeError("shared_prompt_attention runs only inside DecodeCache.active(), one token per row")
    rows, heads, _, dim = query.shape
    prompt_k, prompt_v = layer.keys, layer.values
    items, kv_heads, prompt_len, _ = prompt_k.shape
    beams, groups = rows // items, heads // kv_heads
    scale = dim ** -0.5 if scaling is None else scaling
    # Per example: its beams' queries side by side, (items, kv_heads, beams x groups, dim).
    q = query.reshape(items, beams, kv_heads, groups, dim).transpose(1, 2).reshape(items, kv_heads, beams * groups, dim)
    prompt_scores = torch.matmul(q, prompt_k.transpose(-1, -2)) * scale
    if attention_mask is not None:
        keep = attention_mask[::beams, :, :, :prompt_len]  # (items, 1, 1, prompt): one example's beams agree
        prompt_scores = prompt_scores.masked_fill(~keep, float("-inf"))
    gen_k, gen_v = layer.generated_kv()
    gen_scores = torch.matmul(q, gen_k.transpose(-1, -2)) * scale
    own = decode.lineage_mask  # (items, 1, beams, steps x beams): the slots of each beam's history
    if groups > 1:
        own = own.repeat_interleave(groups, dim=2)
    gen_scores = gen_scores.masked_fill(~own, float("-inf"))
    probs = torch.softmax(torch.cat([prompt_scores, gen_scores], dim=-1), dim=-1, dtype=torch.float32).to(query.dtype)
    out = torch.matmul(probs[..., :prompt_len], prompt_v) + torch.matmul(probs[..., prompt_len:], gen_v)
    out = out.reshape(items, kv_heads, beams, groups, -1).transpose(1, 2).reshape(rows, heads, 1, -1)
    return out.transpose(1, 2), None


AttentionInterface.register(SHARED, shared_prompt_attention)


def _plain_dynamic(cache) -> bool:
    return (type(cache) is DynamicCache and bool(cache.layers)
            and all(type(layer) is DynamicLayer and layer.is_initialized and layer.keys.dim() == 4
                    and layer.keys.shape == layer.values.shape for layer in cache.layers))


class DecodeCache:
    """The search's handle on a prefilled cache: buffered layers, and one reorder call per step."""

    def __init__(self, cache, core, beams: int, spare: int, mask_4d: bool):
        self.cache, self.core, self.beams = cache, core, beams
        self.mode = "plain"
        if _plain_dynamic(cache):
            if beams > 1 and mask_4d and dispatches_attention(core):
                cache.layers = [SharedPromptLayer(layer.keys, layer.values, beams, spare) for layer in cache.layers]
                self.mode = "shared"
                # lineage[row, t]: the beam slot that generated token t of this row's hypothesis.
                self.lineage = torch.empty(cache.layers[0].keys.shape[0], 0, dtype=torch.long,
                                           device=cache.layers[0].keys.device)
                self.lineage_mask = None
            else:
                cache.layers = [BufferLayer(layer.keys, layer.values, spare) for layer in cache.layers]
                self.mode = "buffer"

    def select(self, source: torch.Tensor, items: torch.Tensor | None, shared: int) -> None:
        """Before a decode step: rows become old rows `source`. `items` (the surviving examples, by
        old index) is given when rows change examples (eviction, the first beam step); otherwise rows
        only swap beams of one example and the first `shared` slots (the prompt) are equal among them."""
        if self.mode == "plain":
            self.cache.reorder_cache(source)
            return
        if self.mode == "shared":
            # Each row inherits its parent's history and will write this step's token in its own slot.
            own = torch.arange(source.numel(), device=source.device) % self.beams
            self.lineage = torch.cat([self.lineage.index_select(0, source), own[:, None]], dim=1)
            slots = torch.arange(self.beams, device=source.device)
            mask = self.lineage[:, :, None] == slots  # (rows, steps, beam slots)
            self.lineage_mask = mask.reshape(-1, 1, self.beams, mask.shape[1] * self.beams)
            for layer in self.cache.layers:
                layer.select(source, items, shared)
            return
        # Same rows, beams swapped: about half the rows keep their own history and need no copy.
        moved = None if items is not None else (source != torch.arange(source.numel(), device=source.device)).nonzero()[:, 0]
        for layer in self.cache.layers:
            layer.select(source, items, shared, moved)

    @contextlib.contextmanager
    def active(self):
        """While decoding with SharedPromptLayers, the model's attention is shared_prompt_attention."""
        if self.mode != "shared":
            yield
            return
        token = _ACTIVE.set(self)
        try:
            with implementation(self.core, SHARED):
                yield
        finally:
            _ACTIVE.reset(token)
