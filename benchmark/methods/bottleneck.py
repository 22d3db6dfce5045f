"""LLM-Adapters' bottleneck adapters, in-house: series (AdapterH, AdapterP) and parallel.

Each targeted nn.Linear is replaced by a BottleneckLinear that shares its weight and bias (so
the base parameter names do not change) and adds adapter_down / adapter_up (both N(0, 0.02),
no bias; up is not zero, as in the reference). The adapter computes in the dtype of its own
weights (fp32, or float64 in a float64 model) and is cast back to the input dtype. Placements, as in the reference:
  input  ("mh_adapter"):     W (x + s * up(act(down(drop(x))))) + b
  output ("output_adapter"): y = W x + b;  y + s * up(act(down(drop(y))))
  parallel:                  W x + b + s * up(act(down(drop(x))))     (in_features -> out_features)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from benchmark.checks import check, is_int, is_number
from benchmark.errors import UserError
from benchmark.methods import Method, register
from benchmark.methods.family import model_family_of, normalize_targets, resolve_targets, targets_for
from benchmark.registry import bounds
from benchmark.registry.catalogue import CAUSAL_FAMILIES

# Which side a series adapter takes, by module name (reference: per family, MLP linears only).
# Extension, llama only: o_proj -> output. The reference defines no series adapter on attention,
# but the paper's placement ablation has "series after attention"; the standard placement is
# Houlsby et al. (2019): the adapter on the attention block's output, after its output
# projection and before the residual add, i.e. output-side on o_proj. It is the attention twin of
# AdapterP (output-side on down_proj, "after the MLP"). Used by suites/llm_adapters/placement.yaml.
SERIES_SIDE = {
    "llama": {"gate_proj": "input", "up_proj": "input", "down_proj": "output", "o_proj": "output"},
    "bloom": {"dense_h_to_4h": "input", "dense_4h_to_h": "output"},
    "gptj": {"fc_in": "input", "fc_out": "output"},
}
# Default targets per registered method and family (LLM-Adapters; docs/protocols/llm-adapters.md).
DEFAULT_TARGETS = {
    "series": {"llama": ("gate_proj", "up_proj", "down_proj"), "bloom": ("dense_h_to_4h", "dense_4h_to_h"),
               "gptj": ("fc_in", "fc_out")},
    "adapterp": {"llama": ("down_proj",), "bloom": ("dense_4h_to_h",), "gptj": ("fc_out",)},
    "parallel": {"llama": ("q_proj", "v_proj", "k_proj"), "bloom": ("query_key_value",),
                 "gptj": ("q_proj", "v_proj", "k_proj")},
}
ACTIVATIONS = {
    "tanh": nn.Tanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid, "gelu": nn.GELU, "silu": nn.SiLU, "swish": nn.SiLU,
    "gelu_new": lambda: nn.GELU(approximate="tanh"), "leakyrelu": nn.LeakyReLU,
}


@dataclass(frozen=True)
class Config:
    bottleneck_size: int = 256
    non_linearity: str = "tanh"
    adapter_dropout: float = 0.0
    scaling: float | str = 1.0  # a number, or "learned": a trainable scalar initialised to 1
    target_modules: tuple[str, ...] | None = None  # None = the family's default for the method

    def __post_init__(self):
        size = self.bottleneck_size
        check(is_int(size) and 1 <= size <= bounds.WIDTH, "bottleneck_size", size, bounds.up_to(bounds.WIDTH))
        check(self.non_linearity in ACTIVATIONS, "non_linearity", self.non_linearity, ", ".join(ACTIVATIONS))
        drop = self.adapter_dropout
        check(is_number(drop) and 0 <= drop < 1, "adapter_dropout", drop,
              "a number in [0, 1)")
        check(self.scaling == "learned" or is_number(self.scaling),
              "scaling", self.scaling, 'a number or "learned"')
        object.__setattr__(self, "target_modules", normalize_targets(self.target_modules))


class BottleneckLinear(nn.Linear):
    """nn.Linear with a bottleneck adapter at `placement` (input | output | parallel); shares the wrapped weights."""

    def __init__(self, linear: nn.Linear, placement: str, cfg: Config):
        nn.Module.__init__(self)  # not nn.Linear.__init__: the weights are the wrapped layer's, not new ones
        self.in_features, self.out_features, self.placement = linear.in_features, linear.out_features, placement
        self.register_parameter("weight", linear.weight)
        self.register_parameter("bias", linear.bias)
        down_in = linear.out_features if placement == "output" else linear.in_features
        up_out = linear.in_features if placement == "input" else linear.out_features
        # Same device as the wrapped layer (meta included: init is then a no-op); fp32 like the reference, or the
        # base's dtype when it is wider (a float64 model computes its adapters in float64 too).
        factory = {"device": linear.weight.device, "dtype": torch.promote_types(linear.weight.dtype, torch.float32)}
        self.adapter_down = nn.Linear(down_in, cfg.bottleneck_size, bias=False, **factory)
        self.adapter_up = nn.Linear(cfg.bottleneck_size, up_out, bias=False, **factory)
        nn.init.normal_(self.adapter_down.weight, std=0.02)
        nn.init.normal_(self.adapter_up.weight, std=0.02)
        self.adapter_act = ACTIVATIONS[cfg.non_linearity]()
        self.adapter_drop = nn.Dropout(cfg.adapter_dropout) if cfg.adapter_dropout > 0 else nn.Identity()
        if cfg.scaling == "learned":
            self.adapter_scale = nn.Parameter(torch.ones(1, **factory))
        else:
            self.adapter_scale = float(cfg.scaling)

    def adapter(self, h: torch.Tensor) -> torch.Tensor:
        # Scale inside the adapter's dtype, then cast back, so a learned fp32 scale never upcasts the residual stream.
        z = self.adapter_up(self.adapter_act(self.adapter_down(self.adapter_drop(h.to(self.adapter_down.weight.dtype)))))
        return (z * self.adapter_scale).to(h.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.placement == "input":
            return F.linear(x + self.adapter(x), self.weight, self.bias)
        y = F.linear(x, self.weight, self.bias)
        return y + self.adapter(y if self.placement == "output" else x)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, placement={self.placement}, bottleneck={self.adapter_down.out_features}"


def _placement(kind: str, family: str, module: str) -> str:
    if kind == "parallel":
        return "parallel"
    sides = SERIES_SIDE.get(family, {})
    if module not in sides:
        allowed = ", ".join(sides) or "none"
        raise UserError(f"method {kind}: method_args.target_modules: a series adapter has no defined side for "
                        f"{module!r} in a {family} model; allowed: {allowed}")
    return sides[module]


def _placements(kind: str, cfg: Config, family: str) -> dict[str, str]:
    """Target module name -> placement; UserError when the family has no default or a target no defined side."""
    return {name: _placement(kind, family, name) for name in targets_for(family, cfg.target_modules,
                                                                          DEFAULT_TARGETS[kind], kind)}


def inject_bottleneck(model, cfg: Config, kind: str):
    """Freeze the model, wrap every targeted Linear; only adapter_* parameters train."""
    placements = _placements(kind, cfg, model_family_of(model))  # fail before changing the model
    resolve_targets(model, tuple(placements), DEFAULT_TARGETS[kind], kind)
    for param in model.parameters():
        param.requires_grad_(False)
    for name, module in list(model.named_modules()):
        leaf = name.rsplit(".", 1)[-1]
        if leaf in placements and isinstance(module, nn.Linear) and not isinstance(module, BottleneckLinear):
            parent = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
            setattr(parent, leaf, BottleneckLinear(module, placements[leaf], cfg))
    return model


def _register(kind: str, description: str) -> None:
    # Causal families only: the series sides and every default target above are defined for them alone.
    register(Method(kind, Config, functools.partial(inject_bottleneck, kind=kind), library="in-house",
                    model_families=CAUSAL_FAMILIES, description=description,
                    check_config=functools.partial(_check_config, kind=kind), co_trains=True))


def _check_config(cfg: Config, family: str, kind: str) -> None:
    _placements(kind, cfg, family)


_register("series", "AdapterH: series bottleneck adapters on the MLP linears")
_register("adapterp", "AdapterP: a series adapter after the MLP output")
_register("parallel", "parallel bottleneck adapters (attention q, k, v)")
