"""UniPELT's single components (and prompt tuning) through the `adapters` library, for BERT/RoBERTa: the
per-component baselines of the PT+UniPELT study, built with the same library as `unipelt` and `pt_unipelt`.

Sources (docs/protocols/pt-unipelt.md): UniPELT (Mao et al., ACL 2022): prefix length 10 with a 512-wide middle
layer, adapter bottleneck 48 after the FFN, LoRA r=8; Table 4's per-method counts on BERT-base; PT+UniPELT (Chen,
Pang, Yang, 2024): prompt length 10. Ungated by default (a component alone, as in UniPELT's
baselines); `use_gating: true` gives the gated component as it sits inside UniPELT.

- `adapters_bottleneck`: `SeqBnConfig(reduction_factor=16)` (Pfeiffer: one sequential bottleneck after the FFN,
  relu, bottleneck hidden // 16 = 48 on a base model). 894,528 on RoBERTa-/BERT-base (Table 4: 895K).
- `adapters_prefix`: `PrefixTuningConfig(prefix_length=10, bottleneck_size=512)` (the library's default length is
  30; UniPELT's is 10). Counted with its re-parameterisation MLP, as the PT+UniPELT paper counts; `flat: true`
  trains the prefix vectors directly: 2 x 12 layers x 10 x 768 = 184,320 (Table 4's convention: 184K).
- `adapters_lora`: `LoRAConfig(r=8, alpha=8)` on Q and V (the library's defaults). 294,912 (Table 4: 295K).
- `adapters_prompt`: `PromptTuningConfig(prompt_length=10)` (random_uniform init, prepended to the embeddings,
  the library's defaults). 7,680 on RoBERTa-base (= pt_unipelt - unipelt).
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmark.methods.adapterhub import (
    check_bool,
    check_choices,
    check_fraction,
    check_int,
    check_positive,
    register_adapters_method,
)

ATTN_MATRICES = ("q", "k", "v")


@dataclass(frozen=True)
class BottleneckConfig:
    reduction_factor: float = 16  # SeqBnConfig.reduction_factor
    use_gating: bool = False

    def __post_init__(self):
        check_positive(self.reduction_factor, "reduction_factor")
        check_bool(self.use_gating, "use_gating")

    def adapters_config(self):
        from adapters import SeqBnConfig

        return SeqBnConfig(reduction_factor=self.reduction_factor, use_gating=self.use_gating)


@dataclass(frozen=True)
class PrefixConfig:
    prefix_length: int = 10  # PrefixTuningConfig.prefix_length
    bottleneck_size: int = 512  # PrefixTuningConfig.bottleneck_size: width of the re-parameterisation MLP
    flat: bool = False  # True: no MLP, the prefix vectors themselves train
    use_gating: bool = False

    def __post_init__(self):
        check_int(self.prefix_length, "prefix_length")
        check_int(self.bottleneck_size, "bottleneck_size")
        check_bool(self.flat, "flat")
        check_bool(self.use_gating, "use_gating")

    def adapters_config(self):
        from adapters import PrefixTuningConfig

        return PrefixTuningConfig(prefix_length=self.prefix_length, bottleneck_size=self.bottleneck_size,
                                  flat=self.flat, use_gating=self.use_gating)


@dataclass(frozen=True)
class LoraConfig:
    r: int = 8  # LoRAConfig.r
    alpha: float = 8  # LoRAConfig.alpha (scale alpha / r)
    dropout: float = 0.0  # LoRAConfig.dropout
    attn_matrices: tuple[str, ...] = ("q", "v")  # LoRAConfig.attn_matrices
    use_gating: bool = False

    def __post_init__(self):
        check_int(self.r, "r")
        check_positive(self.alpha, "alpha")
        check_fraction(self.dropout, "dropout")
        object.__setattr__(self, "attn_matrices", check_choices(self.attn_matrices, "attn_matrices", ATTN_MATRICES))
        check_bool(self.use_gating, "use_gating")

    def adapters_config(self):
        from adapters import LoRAConfig

        return LoRAConfig(r=self.r, alpha=self.alpha, dropout=self.dropout, attn_matrices=list(self.attn_matrices),
                          use_gating=self.use_gating)


@dataclass(frozen=True)
class PromptConfig:
    prompt_length: int = 10  # PromptTuningConfig.prompt_length

    def __post_init__(self):
        check_int(self.prompt_length, "prompt_length")

    def adapters_config(self):
        from adapters import PromptTuningConfig

        return PromptTuningConfig(prompt_length=self.prompt_length)


register_adapters_method("adapters_bottleneck", BottleneckConfig, "sequential bottleneck adapter (adapters SeqBnConfig)")
register_adapters_method("adapters_prefix", PrefixConfig, "prefix tuning with its MLP (adapters PrefixTuningConfig)")
register_adapters_method("adapters_lora", LoraConfig, "LoRA on Q, V (adapters LoRAConfig)")
register_adapters_method("adapters_prompt", PromptConfig, "prompt tuning on the embeddings (adapters PromptTuningConfig)")
