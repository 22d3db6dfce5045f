"""Full fine-tuning: every weight trains (optionally keeping the embeddings frozen)."""

from __future__ import annotations

from dataclasses import dataclass

from benchmark.checks import check
from benchmark.methods import Method, register
from benchmark.registry.catalogue import FAMILIES


@dataclass(frozen=True)
class Config:
    train_embeddings: bool = True  # False freezes the input (and tied output) embeddings

    def __post_init__(self):
        check(isinstance(self.train_embeddings, bool), "train_embeddings", self.train_embeddings, "true or false")


def inject(model, cfg: Config):
    for param in model.parameters():
        param.requires_grad_(True)
    if not cfg.train_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    return model


register(Method("full", Config, inject, library="torch", model_families=FAMILIES,
                description="full fine-tuning (all parameters train)"))
