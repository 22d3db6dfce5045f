"""BitFit (Ben Zaken et al., 2022): only the encoder's bias terms train. In-house (torch), for BERT/RoBERTa:
`adapters` 1.3.0 has no BitFit config, so this sets requires_grad on the biases directly.

Source: UniPELT (Mao et al., ACL 2022; docs/protocols/pt-unipelt.md): BitFit is one of its baselines
(Table 4: 103K on BERT-base = every bias of the encoder: Q, K, V, attention output, intermediate, output, both
LayerNorms per layer, the embedding LayerNorm and the pooler: 102,912). Like `adapters`' train_adapter, the encoder
(`model.base_model`) is frozen except its biases and a task head outside it is left as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmark.methods import Method, register
from benchmark.registry.catalogue import ENCODER_FAMILIES


@dataclass(frozen=True)
class Config:
    pass  # no knobs: every bias of the encoder trains


def inject(model, cfg: Config):
    for name, param in model.base_model.named_parameters():
        param.requires_grad_(name == "bias" or name.endswith(".bias"))
    return model


register(Method("bitfit", Config, inject, library="torch", model_families=ENCODER_FAMILIES,
                description="BitFit: the encoder's biases train"))
