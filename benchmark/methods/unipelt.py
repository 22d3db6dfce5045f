"""UniPELT and the PT+UniPELT study's variants, built with the `adapters` library (BERT/RoBERTa only).

Sources (docs/protocols/pt-unipelt.md): PT+UniPELT (Chen, Pang, Yang, 2024) for the configs and the
trainable-parameter table, UniPELT (Mao et al., ACL 2022) for the components' defaults. The defaults
below are the paper's settings, which are the library's defaults; with them `peft-bench params --model
roberta-base` reproduces the paper's counts exactly (RoBERTa-base without a head, total 124,645,632):

- `unipelt`: `UniPELTConfig()` = gated `PrefixTuningConfig(prefix_length=10, bottleneck_size=512)` (the prefix
  with its re-parameterisation MLP, which is counted: ~9.86M of the total), gated
  `SeqBnConfig(reduction_factor=16)` (bottleneck 48 after the FFN on RoBERTa-base, relu) and gated
  `LoRAConfig(r=8, alpha=2)` on Q and V. Trainable 11,083,376 (8.892%).
- `pt_unipelt`: `ConfigUnion(PromptTuningConfig(prompt_length=10), *UniPELTConfig().configs)`: the same three
  gated components plus 10 prompt vectors prepended to the embeddings (`adapters` cannot nest a ConfigUnion,
  so UniPELT's components are flattened). Trainable 11,091,056 (8.898%).
- `ia3_prefix_bottleneck`: the reference's "IA3+Prefix+SeqBn, all gated" union:
  `ConfigUnion(IA3Config(use_gating=True), PrefixTuningConfig(prefix_length=10, use_gating=True),
  SeqBnConfig(reduction_factor=16, use_gating=True))` ((IA)^3 on K, V and the FFN intermediate in place of
  UniPELT's LoRA). Trainable 10,852,988 (8.707%).
- `unipelt_stack3`: three `UniPELTConfig()` adapters (`unipelt_stack3_0..2`) composed with `Stack`, all three
  trained. Trainable 33,250,128 (26.68%).

Every field changes the matching keyword of the component(s) it names; all the rest stays the library's.
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmark.methods.adapterhub import check_int, check_positive, register_adapters_method


@dataclass(frozen=True)
class Config:
    prefix_length: int = 10  # PrefixTuningConfig.prefix_length (UniPELT's L=10; the library's plain default is 30)
    prefix_bottleneck_size: int = 512  # PrefixTuningConfig.bottleneck_size: width of the re-parameterisation MLP
    reduction_factor: float = 16  # SeqBnConfig.reduction_factor: bottleneck = hidden // 16 (48 on a base model)
    lora_r: int = 8  # LoRAConfig.r (on Q and V)
    lora_alpha: float = 2  # LoRAConfig.alpha as UniPELTConfig sets it

    def __post_init__(self):
        check_int(self.prefix_length, "prefix_length")
        check_int(self.prefix_bottleneck_size, "prefix_bottleneck_size")
        check_positive(self.reduction_factor, "reduction_factor")
        check_int(self.lora_r, "lora_r")
        check_positive(self.lora_alpha, "lora_alpha")

    def adapters_config(self):
        """UniPELTConfig with this config's values: its three components, each with use_gating=True."""
        from adapters import LoRAConfig, PrefixTuningConfig, SeqBnConfig, UniPELTConfig

        return UniPELTConfig(
            prefix_tuning=PrefixTuningConfig(prefix_length=self.prefix_length, bottleneck_size=self.prefix_bottleneck_size),
            adapter=SeqBnConfig(reduction_factor=self.reduction_factor),
            lora=LoRAConfig(r=self.lora_r, alpha=self.lora_alpha),
        )


@dataclass(frozen=True)
class PromptConfig(Config):
    prompt_length: int = 10  # PromptTuningConfig.prompt_length (the paper's prompt-tuning layer)

    def __post_init__(self):
        super().__post_init__()
        check_int(self.prompt_length, "prompt_length")

    def adapters_config(self):
        from adapters import ConfigUnion, PromptTuningConfig

        # adapters cannot nest a ConfigUnion: flatten UniPELT's components after the prompt
        return ConfigUnion(PromptTuningConfig(prompt_length=self.prompt_length), *super().adapters_config().configs)


@dataclass(frozen=True)
class GatedIA3Config:
    prefix_length: int = 10  # PrefixTuningConfig.prefix_length
    prefix_bottleneck_size: int = 512  # PrefixTuningConfig.bottleneck_size
    reduction_factor: float = 16  # SeqBnConfig.reduction_factor

    def __post_init__(self):
        check_int(self.prefix_length, "prefix_length")
        check_int(self.prefix_bottleneck_size, "prefix_bottleneck_size")
        check_positive(self.reduction_factor, "reduction_factor")

    def adapters_config(self):
        from adapters import ConfigUnion, IA3Config, PrefixTuningConfig, SeqBnConfig

        return ConfigUnion(
            IA3Config(use_gating=True),
            PrefixTuningConfig(prefix_length=self.prefix_length, bottleneck_size=self.prefix_bottleneck_size,
                               use_gating=True),
            SeqBnConfig(reduction_factor=self.reduction_factor, use_gating=True),
        )


register_adapters_method("unipelt", Config, "UniPELT (adapters UniPELTConfig): gated prefix + SeqBn + LoRA")
register_adapters_method("pt_unipelt", PromptConfig, "PT+UniPELT (adapters): prompt tuning + UniPELT's components")
register_adapters_method("ia3_prefix_bottleneck", GatedIA3Config,
                         "gated (IA)^3 + prefix + SeqBn bottleneck (adapters ConfigUnion)")
register_adapters_method("unipelt_stack3", Config, "three UniPELT adapters composed with Stack (adapters)", copies=3)
