"""DoRA through peft: LoRA with use_dora=True (weight decomposed into a trainable magnitude and a LoRA-updated direction).

Same arguments, defaults (r=8, alpha=16, dropout 0.05) and per-family default target modules as lora.
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmark.methods import Method, lora, register
from benchmark.registry.catalogue import FAMILIES


@dataclass(frozen=True)
class Config(lora.Config):
    """lora's fields and validation (__post_init__ is lora.Config's)."""


def inject(model, cfg: Config):
    return lora.inject_lora(model, cfg, method="dora", use_dora=True)


register(Method("dora", Config, inject, library="peft", model_families=FAMILIES,
                description="DoRA (peft LoRA, use_dora); LoRA's default targets", co_trains=True, merges=True))
