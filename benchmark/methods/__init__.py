"""The method registry: one module per PEFT method, each registering a Method on import.

A method is a validated Config dataclass plus `inject(model, cfg) -> model`. Methods know
nothing of training loops: after inject, whatever has requires_grad=True is what trains.
No module here imports peft at import time (it costs seconds); inject functions import it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from benchmark.errors import UserError, did_you_mean


@dataclass(frozen=True)
class Method:
    name: str
    config_cls: type
    inject: Callable[[Any, Any], Any]  # (model, config) -> model
    library: str  # "peft", "in-house", "adapters", "torch"
    description: str = ""


_METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    if method.name in _METHODS:
        raise ValueError(f"method {method.name!r} registered twice")
    _METHODS[method.name] = method
    return method


def names() -> list[str]:
    return sorted(_METHODS)


def get(name: str) -> Method:
    try:
        return _METHODS[name]
    except KeyError:
        raise UserError(f"method {name!r} is not known{did_you_mean(name, _METHODS)}; allowed: {', '.join(names())}") from None


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
    """Validate the arguments, then inject the method into the model; returns the (maybe wrapped) model."""
    method = get(name)
    return method.inject(model, build_config(name, args))


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total), each parameter counted once (tied weights, peft wrappers, adapters included)."""
    unique = {id(p): p for p in model.parameters()}  # parameters() already drops duplicates; id() makes it explicit
    total = sum(p.numel() for p in unique.values())
    trainable = sum(p.numel() for p in unique.values() if p.requires_grad)
    return trainable, total


def check(cond: bool, field: str, value: Any, allowed: str) -> None:
    """Config validation helper: ValueError whose message starts with the field name."""
    if not cond:
        raise ValueError(f"{field}: got {value!r}; allowed: {allowed}")


# Registration happens on import; keep these last (they import register/Method from above).
# Encoder-only (BERT/RoBERTa): adapters_components and unipelt (built with `adapters`), bitfit (torch).
from benchmark.methods import (  # noqa: E402,F401
    adapters_components,
    bitfit,
    bottleneck,
    dora,
    full,
    ia3,
    lora,
    prefix,
    prompt,
    unipelt,
)
