"""What a model's attention layers can be asked to do, and a scoped switch of their implementation.

Models written on transformers' AttentionInterface (llama and the like) look their attention
function up by name in `config._attn_implementation` at every forward; our decoding
(evaluation/kv.py) and packed training (train/packing.py) register functions of their own and
switch to them only while they run.
"""

from __future__ import annotations

import contextlib
import sys


def base_of(model):
    """The transformers model under a peft wrapper (or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def dispatches_attention(core) -> bool:
    """Does the model pick its attention function from transformers' registry (llama and the like)?"""
    module = sys.modules.get(type(core).__module__)
    attentions = [m for m in core.modules() if hasattr(m, "layer_idx") and hasattr(m, "scaling")]
    return bool(module is not None and hasattr(module, "ALL_ATTENTION_FUNCTIONS") and attentions)


@contextlib.contextmanager
def implementation(core, name: str):
    """Every attention layer of `core` uses the registered function `name` inside the block. The
    config object is shared by the layers, so one assignment switches them all; it is restored after,
    also on error."""
    config = core.config
    before = config._attn_implementation
    config._attn_implementation = name
    try:
        yield
    finally:
        config._attn_implementation = before
