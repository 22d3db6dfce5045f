"""Prompt tuning through peft: num_virtual_tokens trainable input embeddings, randomly initialised, prepended to the input.

peft drops position_ids for prompt tuning (forward and generate), so a rotary model (llama, gptj) numbers the
positions 0..n-1 over [prompt | left padding | tokens]: a left-padded row then sees the prompt at a different
distance than the same row unpadded. A forward pre-hook on the base model fills the missing position_ids from the
(prompt-extended) attention mask, as transformers' generate does for a plain model; with no padding they equal the
default positions. BLOOM (ALiBi from the mask) takes no position_ids and needs no hook.

Decoding: `PromptDecoding` gives the fast decoder (evaluation/beam.py) the inputs peft's generate builds: the
virtual embeddings in front of the prompt's, the mask extended by them, and no position ids (the pre-hook numbers
them from the 2-D mask).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch

from benchmark.checks import check, is_int
from benchmark.methods import Method, register
from benchmark.registry import bounds
from benchmark.registry.catalogue import CAUSAL_FAMILIES


@dataclass(frozen=True)
class Config:
    num_virtual_tokens: int = 30  # LLM-Adapters' default

    def __post_init__(self):
        check(is_int(self.num_virtual_tokens) and 1 <= self.num_virtual_tokens <= bounds.TOKENS, "num_virtual_tokens",
              self.num_virtual_tokens, bounds.up_to(bounds.TOKENS))


def _positions_from_mask(module, args, kwargs):
    """Forward pre-hook: position_ids from a 2-D attention mask when the caller (peft) left them out."""
    mask = kwargs.get("attention_mask")
    if args or kwargs.get("position_ids") is not None or mask is None or mask.dim() != 2:
        return None
    tokens = kwargs.get("inputs_embeds")
    if tokens is None:
        tokens = kwargs.get("input_ids")
    if tokens is None or tokens.shape[1] > mask.shape[1]:
        return None
    positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
    return args, {**kwargs, "position_ids": positions[:, -tokens.shape[1]:]}


class PromptDecoding:
    """The fast decoder's hook (evaluation/beam.py DecodeHook) for a peft prompt-tuning model."""

    positions_from_mask = True  # peft passes no position ids; the pre-hook derives them from the 2-D mask

    def callee(self, model):
        return model.get_base_model()  # peft's generate calls the transformers model itself for prompt methods

    def virtual_tokens(self, model) -> int:
        return model.active_peft_config.num_virtual_tokens

    def prefill_inputs(self, model, ids: torch.Tensor) -> dict:
        embeds = model.word_embeddings(ids)
        prompts = model.get_prompt(batch_size=ids.shape[0]).to(embeds.dtype)
        return {"inputs_embeds": torch.cat([prompts, embeds], dim=1)}


def inject(model, cfg: Config):
    import peft  # late: costs seconds

    peft_cfg = peft.PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=cfg.num_virtual_tokens,
                                       prompt_tuning_init=peft.PromptTuningInit.RANDOM)
    wrapped = peft.get_peft_model(model, peft_cfg)
    base = wrapped.get_base_model()
    if "position_ids" in inspect.signature(base.forward).parameters:
        base.register_forward_pre_hook(_positions_from_mask, with_kwargs=True)
    return wrapped


# Causal families only: without a causal task type peft adds the prompt encoder but never prepends it.
register(Method("prompt", Config, inject, library="peft", model_families=CAUSAL_FAMILIES,
                description="prompt tuning (peft), random init", decode_hook=PromptDecoding()))
