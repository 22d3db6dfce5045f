"""LoRA through peft (same semantics as LLM-Adapters: A kaiming, B zeros, scale alpha/r, dropout on the input)."""

from __future__ import annotations

from dataclasses import dataclass

from benchmark.methods import Method, check, register
from benchmark.methods.family import CAUSAL_FAMILIES, family_of, normalize_targets, resolve_targets

# LLM-Adapters' defaults when no target modules are given (reference/llm-adapters.md).
DEFAULT_TARGETS = {
    "llama": ("q_proj", "v_proj"),
    "bloom": ("query_key_value",),
    "gptj": ("q_proj", "v_proj"),
    "bert": ("query", "value"),
    "roberta": ("query", "value"),
}
BIAS_CHOICES = ("none", "all", "lora_only")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class Config:
    r: int = 8
    alpha: float = 16
    dropout: float = 0.05
    target_modules: tuple[str, ...] | None = None  # None = the family's default above
    bias: str = "none"

    def __post_init__(self):
        check(isinstance(self.r, int) and not isinstance(self.r, bool) and self.r >= 1, "r", self.r, "an integer >= 1")
        check(_is_number(self.alpha) and self.alpha > 0, "alpha", self.alpha, "a number > 0")
        check(_is_number(self.dropout) and 0 <= self.dropout < 1, "dropout", self.dropout, "a number in [0, 1)")
        check(self.bias in BIAS_CHOICES, "bias", self.bias, ", ".join(BIAS_CHOICES))
        object.__setattr__(self, "target_modules", normalize_targets(self.target_modules))


def inject_lora(model, cfg: Config, method: str = "lora", use_dora: bool = False):
    """peft LoRA with the family's default targets; shared by lora and dora (use_dora=True)."""
    import peft  # late: costs seconds

    targets = resolve_targets(model, cfg.target_modules, DEFAULT_TARGETS, method)
    task_type = "CAUSAL_LM" if family_of(model) in CAUSAL_FAMILIES else None
    peft_cfg = peft.LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=list(targets),
                               bias=cfg.bias, task_type=task_type, use_dora=use_dora)
    return peft.get_peft_model(model, peft_cfg)


def inject(model, cfg: Config):
    return inject_lora(model, cfg)


register(Method("lora", Config, inject, library="peft", description="LoRA (peft); LLM-Adapters default targets"))
