"""Zero-shot: the base model evaluated as it is, nothing trained (LLM-Adapters users ask for this row: issues #16 and
#59 of that repository). Every weight is frozen and the model is left unchanged, so the trial measures what the
fine-tuning methods add. The runner sees that nothing trains and skips training (no optimizer, no dev selection).

On an encoder task with a fresh head (classification, QA) the head is the task's, not the method's: the runner
trains it as for every method, so there `none` is a linear probe of the frozen encoder.
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmark.methods import Method, register
from benchmark.registry.catalogue import FAMILIES


@dataclass(frozen=True)
class Config:
    pass  # no knobs: nothing is added and nothing trains


def inject(model, cfg: Config):
    for param in model.parameters():
        param.requires_grad_(False)
    return model


register(Method("none", Config, inject, library="torch", model_families=FAMILIES, trains=False,
                description="zero-shot: the base model as it is, nothing trained"))
