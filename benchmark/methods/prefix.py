"""Prefix tuning through peft: LLM-Adapters' variant, a plain embedding of virtual key/values (no projection MLP).

Decoding: peft's generate feeds the transformers model under the wrapper the virtual key/values as the initial
cache, the attention mask extended by them and positions offset by them; `PrefixDecoding` gives the fast decoder
(evaluation/beam.py) exactly those inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from benchmark.checks import check, is_int
from benchmark.methods import Method, register
from benchmark.registry import bounds
from benchmark.registry.catalogue import CAUSAL_FAMILIES


@dataclass(frozen=True)
class Config:
    num_virtual_tokens: int = 30
    prefix_projection: bool = False  # True adds peft's reparameterisation MLP (not in LLM-Adapters)

    def __post_init__(self):
        check(is_int(self.num_virtual_tokens) and 1 <= self.num_virtual_tokens <= bounds.TOKENS, "num_virtual_tokens",
              self.num_virtual_tokens, bounds.up_to(bounds.TOKENS))
        check(isinstance(self.prefix_projection, bool), "prefix_projection", self.prefix_projection, "true or false")


class PrefixDecoding:
    """The fast decoder's hook (evaluation/beam.py DecodeHook) for a peft prefix-tuning model."""

    positions_from_mask = False  # the decoder passes position ids, offset by the virtual tokens

    def callee(self, model):
        return model.get_base_model()  # peft's generate calls the transformers model itself for prompt methods

    def virtual_tokens(self, model) -> int:
        return model.active_peft_config.num_virtual_tokens

    def prefill_inputs(self, model, ids: torch.Tensor) -> dict:
        n, width = ids.shape
        virtual = self.virtual_tokens(model)
        return {"input_ids": ids, "past_key_values": model.get_prompt(batch_size=n, max_cache_len=-1),
                "cache_position": torch.arange(virtual, virtual + width, device=ids.device)}


def inject(model, cfg: Config):
    import peft  # late: costs seconds

    peft_cfg = peft.PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=cfg.num_virtual_tokens,
                                       prefix_projection=cfg.prefix_projection)
    model = peft.get_peft_model(model, peft_cfg)
    # Its virtual key/values are the model's cache, which transformers' checkpointed layers drop in training: the
    # training loop leaves gradient checkpointing off for it (train/loop.py reads this mark, not the method's name).
    model.peft_bench_inputs_in_cache = True
    return model


register(Method("prefix", Config, inject, library="peft", model_families=CAUSAL_FAMILIES,
                description="prefix tuning (peft), no projection MLP", decode_hook=PrefixDecoding(),
                co_trains=True))
