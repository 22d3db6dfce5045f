"""Prefix tuning through peft: LLM-Adapters' variant, a plain embedding of virtual key/values (no projection MLP)."""

from __future__ import annotations

from dataclasses import dataclass

from benchmark.errors import UserError
from benchmark.methods import Method, check, register
from benchmark.methods.family import CAUSAL_FAMILIES, family_of


@dataclass(frozen=True)
class Config:
    num_virtual_tokens: int = 30
    prefix_projection: bool = False  # True adds peft's reparameterisation MLP (not in LLM-Adapters)

    def __post_init__(self):
        check(isinstance(self.num_virtual_tokens, int) and not isinstance(self.num_virtual_tokens, bool)
              and self.num_virtual_tokens >= 1, "num_virtual_tokens", self.num_virtual_tokens, "an integer >= 1")
        check(isinstance(self.prefix_projection, bool), "prefix_projection", self.prefix_projection, "true or false")


def inject(model, cfg: Config):
    family = family_of(model)
    if family not in CAUSAL_FAMILIES:
        raise UserError(f"method prefix: family {family!r} is not supported; allowed: {', '.join(CAUSAL_FAMILIES)}")
    import peft  # late: costs seconds

    peft_cfg = peft.PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=cfg.num_virtual_tokens,
                                       prefix_projection=cfg.prefix_projection)
    return peft.get_peft_model(model, peft_cfg)


register(Method("prefix", Config, inject, library="peft", description="prefix tuning (peft), no projection MLP"))
