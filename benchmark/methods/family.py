"""The model family of a loaded model, and target-module resolution shared by the methods.

Default target modules are data kept in each method module (a family -> names dict); this
module only finds the family of a loaded model and checks that the named modules exist. A model whose
model_type is no catalogue family (Mistral, Qwen2, ...) is of the llama family when its decoder layers
carry LLaMA's module names (registry/checkpoint.py, the rule of `family: auto`), so every method's llama
defaults (target modules, series-adapter sides) apply to it unchanged.
"""

from __future__ import annotations

from benchmark.errors import UserError
from benchmark.registry.catalogue import FAMILIES
from benchmark.registry.checkpoint import missing_llama_modules


def model_family_of(model) -> str:
    """llama | bloom | gptj | bert | roberta, from model.config.model_type (peft wrappers included), or llama for
    another architecture with LLaMA's module names."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type in FAMILIES:
        return model_type
    missing = missing_llama_modules(name for name, _ in model.named_modules()) if model_type else ["a config"]
    if missing:
        raise UserError(f"model type {model_type!r} is not supported: it lacks LLaMA's module names "
                        f"{', '.join(missing)}; allowed: {', '.join(FAMILIES)}, or a LLaMA-layout decoder")
    return "llama"


def normalize_targets(value) -> tuple[str, ...] | None:
    """Config helper: None, a list/tuple of names, or "a,b" -> a tuple of names (ValueError naming the field)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",")]
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"target_modules: got {value!r}; allowed: null (the family default) or a non-empty list of module names")
    return tuple(value)


def linear_suffixes(model) -> list[str]:
    """The last name component of every nn.Linear in the model, sorted and deduplicated."""
    import torch.nn as nn

    return sorted({name.rsplit(".", 1)[-1] for name, mod in model.named_modules() if isinstance(mod, nn.Linear) and name})


def targets_for(family: str, targets: tuple[str, ...] | None, defaults: dict[str, tuple[str, ...]],
                method: str) -> tuple[str, ...]:
    """The configured targets, or the family's defaults (UserError when it has none). Needs no model: the
    planner asks this (through a method's check_config) before anything loads."""
    if targets is not None:
        return tuple(targets)
    if family not in defaults:
        raise UserError(f"method {method}: no default target_modules for model family {family!r} "
                        f"(defined for {', '.join(defaults)}); set method_args.target_modules")
    return defaults[family]


def resolve_targets(model, targets: tuple[str, ...] | None, defaults: dict[str, tuple[str, ...]], method: str) -> tuple[str, ...]:
    """The configured targets, or the family's defaults; every name must match a Linear of the model."""
    family = model_family_of(model)
    targets = targets_for(family, targets, defaults, method)
    present = linear_suffixes(model)
    for name in targets:
        if name not in present:
            raise UserError(f"method {method}: method_args.target_modules: module {name!r} not found in this "
                            f"{family} model; its Linear modules are: {', '.join(present)}")
    return tuple(targets)
