"""The method registry: one module per PEFT method, each registering a Method on import.

A method is a validated Config dataclass plus `inject(model, cfg) -> model`, the model families it supports
and, when it changes the inputs a model decodes from (prefix and prompt tuning), its decode hook. Methods know
nothing of training loops: after inject, whatever has requires_grad=True is what trains.
No module here imports peft at import time (it costs seconds); inject functions import it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from benchmark.errors import UserError, did_you_mean
from benchmark.methods.family import model_family_of
from benchmark.registry.catalogue import FAMILIES


@dataclass(frozen=True)
class Method:
    name: str
    config_cls: type
    inject: Callable[[Any, Any], Any]  # (model, config) -> model
    library: str  # "peft", "in-house", "adapters", "torch"
    model_families: tuple[str, ...]  # the catalogue's model families the method supports (plan-time check)
    description: str = ""
    # (config, model family) -> None: a UserError when this config cannot run on the family, found without a model
    # (e.g. no default target modules for it); None: every config runs on every declared family.
    check_config: Callable[[Any, str], None] | None = None
    # How the fast decoder feeds a model this method changed (evaluation/beam.py's DecodeHook protocol); None: the
    # model is called as it is (methods that only change modules: LoRA, adapters, full fine-tuning).
    decode_hook: object | None = None
    # False: the method trains nothing of its own (zero-shot, `none`): inject freezes the model and changes nothing,
    # so the runner skips training when no task head trains either. The generic matrix checks whichever is declared.
    trains: bool = True
    # True: the method leaves the base model untouched (it replaces or wraps modules with its own, or feeds virtual
    # key/values through its decode hook), so trials of it can train together on one shared base in a co-trained
    # group (benchmark/train/cotrain.py). Methods that change the base's own parameters stay False.
    co_trains: bool = False
    # True: the injected model is a peft model whose adapter folds into the base weights (`merge_adapter()` /
    # `unmerge_adapter()`: LoRA, DoRA, (IA)^3), so its inference overhead can also be measured merged
    # (benchmark/evaluation/overhead.py). Methods that keep extra modules or inputs at inference stay False.
    merges: bool = False


_METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    if method.name in _METHODS:
        raise ValueError(f"method {method.name!r} registered twice")
    families = method.model_families
    if not (isinstance(families, tuple) and families and all(f in FAMILIES for f in families)):
        raise ValueError(f"method {method.name}: model_families: got {families!r}; "
                         f"allowed: a non-empty tuple of {', '.join(FAMILIES)}")
    for flag in ("trains", "co_trains", "merges"):
        if not isinstance(getattr(method, flag), bool):
            raise ValueError(f"method {method.name}: {flag}: got {getattr(method, flag)!r}; allowed: true or false")
    _METHODS[method.name] = method
    return method


def unregister(name: str) -> None:
    """Remove a registered method (a test's own method, after the test)."""
    _METHODS.pop(name, None)


def names() -> list[str]:
    return sorted(_METHODS)


def get(name: str) -> Method:
    try:
        return _METHODS[name]
    except KeyError:
        raise UserError(f"method {name!r} is not known{did_you_mean(name, _METHODS)}; allowed: {', '.join(names())}") from None


def check_supported(method_name: str, model_family: str, config=None) -> None:
    """UserError unless the method supports the model family and, given its validated config (build_config), unless
    that config can run on the family. The planner calls this before anything loads."""
    method = get(method_name)
    if model_family not in method.model_families:
        raise UserError(f"method {method_name} does not support model family {model_family!r}; "
                        f"it supports: {', '.join(method.model_families)}")
    if config is not None and method.check_config is not None:
        method.check_config(config, model_family)


def build_config(name: str, args: dict | None = None):
    """The method's Config from user arguments; any problem is a UserError naming method_args.<field>."""
    method = get(name)
    args = dict(args or {})
    fields = [f.name for f in dataclasses.fields(method.config_cls)]
    for key in args:
        if key not in fields:
            allowed = ", ".join(fields) if fields else "none"
            raise UserError(f"method {name}: unknown argument {key!r}{did_you_mean(key, fields)}; allowed: {allowed}")
    try:
        return method.config_cls(**args)
    except (ValueError, TypeError) as exc:
        # Config messages start with the field name ("r: got 0; allowed: ...").
        raise UserError(f"method {name}: method_args.{exc}") from None


def apply(model, name: str, args: dict | None = None):
    """Validate the arguments and the model's family, then inject the method into the model; returns the (maybe
    wrapped) model. The planner checks the family first; this keeps a direct call from training the wrong thing."""
    cfg = build_config(name, args)
    check_supported(name, model_family_of(model), cfg)
    return get(name).inject(model, cfg)


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total), each parameter counted once (tied weights, peft wrappers, adapters included)."""
    unique = {id(p): p for p in model.parameters()}  # parameters() already drops duplicates; id() makes it explicit
    total = sum(p.numel() for p in unique.values())
    trainable = sum(p.numel() for p in unique.values() if p.requires_grad)
    return trainable, total


# Registration happens on import; keep these last (they import register/Method from above).
from benchmark.methods import (  # noqa: E402,F401
    adapters_components,
    bitfit,
    bottleneck,
    dora,
    full,
    ia3,
    lora,
    none,
    prefix,
    prompt,
    unipelt,
)
