"""LoRA through peft (same semantics as LLM-Adapters: A kaiming, B zeros, scale alpha/r, dropout on the input)."""

from __future__ import annotations

from dataclasses import dataclass

from benchmark.checks import check, is_int, is_number
from benchmark.methods import Method, register
from benchmark.methods.family import model_family_of, normalize_targets, resolve_targets
from benchmark.registry import bounds
from benchmark.registry.catalogue import CAUSAL_FAMILIES, FAMILIES

# LLM-Adapters' defaults when no target modules are given (docs/protocols/llm-adapters.md).
DEFAULT_TARGETS = {
    "llama": ("q_proj", "v_proj"),
    "bloom": ("query_key_value",),
    "gptj": ("q_proj", "v_proj"),
    "bert": ("query", "value"),
    "roberta": ("query", "value"),
}
BIAS_CHOICES = ("none", "all", "lora_only")


@dataclass(frozen=True)
class Config:
    r: int = 8
    alpha: float = 16
    dropout: float = 0.05
    target_modules: tuple[str, ...] | None = None  # None = the family's default above
    bias: str = "none"

    def __post_init__(self):
        check(is_int(self.r) and 1 <= self.r <= bounds.WIDTH, "r", self.r, bounds.up_to(bounds.WIDTH))
        check(is_number(self.alpha) and 0 < self.alpha <= bounds.SCALE, "alpha", self.alpha,
              f"a number in (0, {bounds.SCALE:,}]")
        check(is_number(self.dropout) and 0 <= self.dropout < 1, "dropout", self.dropout, "a number in [0, 1)")
        check(self.bias in BIAS_CHOICES, "bias", self.bias, ", ".join(BIAS_CHOICES))
        object.__setattr__(self, "target_modules", normalize_targets(self.target_modules))


def inject_lora(model, cfg: Config, method: str = "lora", use_dora: bool = False):
    """peft LoRA with the family's default targets; shared by lora and dora (use_dora=True)."""
    import peft  # late: costs seconds

    targets = resolve_targets(model, cfg.target_modules, DEFAULT_TARGETS, method)
    task_type = "CAUSAL_LM" if model_family_of(model) in CAUSAL_FAMILIES else None
    peft_cfg = peft.LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=list(targets),
                               bias=cfg.bias, task_type=task_type, use_dora=use_dora)
    return peft.get_peft_model(model, peft_cfg)


def inject(model, cfg: Config):
    return inject_lora(model, cfg)


register(Method("lora", Config, inject, library="peft", model_families=FAMILIES,
                description="LoRA (peft); LLM-Adapters default targets", co_trains=True, merges=True))
