"""Prompt tuning through peft: num_virtual_tokens trainable input embeddings, randomly initialised, prepended to the input.

peft drops position_ids for prompt tuning (forward and generate), so a rotary model (llama, gptj) numbers the
positions 0..n-1 over [prompt | left padding | tokens]: a left-padded row then sees the prompt at a different
distance than the same row unpadded. A forward pre-hook on the base model fills the missing position_ids from the
(prompt-extended) attention mask, as transformers' generate does for a plain model; with no padding they equal the
default positions. BLOOM (ALiBi from the mask) takes no position_ids and needs no hook.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

from benchmark.errors import UserError
from benchmark.methods import Method, check, register
from benchmark.methods.family import CAUSAL_FAMILIES, family_of


@dataclass(frozen=True)
class Config:
    num_virtual_tokens: int = 30  # LLM-Adapters' default

    def __post_init__(self):
        check(isinstance(self.num_virtual_tokens, int) and not isinstance(self.num_virtual_tokens, bool)
              and self.num_virtual_tokens >= 1, "num_virtual_tokens", self.num_virtual_tokens, "an integer >= 1")


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


def inject(model, cfg: Config):
    family = family_of(model)
    if family not in CAUSAL_FAMILIES:
        # Without a task type peft adds the prompt encoder but never prepends it: refuse rather than train nothing.
        raise UserError(f"method prompt: family {family!r} is not supported; allowed: {', '.join(CAUSAL_FAMILIES)}")
    import peft  # late: costs seconds

    peft_cfg = peft.PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=cfg.num_virtual_tokens,
                                       prompt_tuning_init=peft.PromptTuningInit.RANDOM)
    wrapped = peft.get_peft_model(model, peft_cfg)
    base = wrapped.get_base_model()
    if "position_ids" in inspect.signature(base.forward).parameters:
        base.register_forward_pre_hook(_positions_from_mask, with_kwargs=True)
    return wrapped


register(Method("prompt", Config, inject, library="peft", description="prompt tuning (peft), random init"))
