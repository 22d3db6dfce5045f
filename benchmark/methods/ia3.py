"""(IA)^3 through peft: learned vectors (initialised to ones) rescaling the outputs of the targeted Linears,
or their inputs for the feedforward ones. At init the model computes exactly what the base model does.
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmark.checks import check
from benchmark.errors import UserError
from benchmark.methods import Method, register
from benchmark.methods.family import model_family_of, normalize_targets, resolve_targets, targets_for
from benchmark.registry.catalogue import CAUSAL_FAMILIES, FAMILIES

# peft's own defaults (peft.utils.constants TRANSFORMERS_MODELS_TO_IA3_{TARGET,FEEDFORWARD}_MODULES_MAPPING,
# peft 0.21.2), as last-name components; LLM-Adapters has no (IA)^3. Note gptj is q_proj, v_proj, fc_out there
# (not k_proj). bert/roberta are left out: peft's "output.dense" is not a single module name here, so those
# families need method_args.target_modules (resolve_targets says so).
DEFAULT_TARGETS = {
    "llama": ("k_proj", "v_proj", "down_proj"),
    "bloom": ("query_key_value", "dense_4h_to_h"),
    "gptj": ("q_proj", "v_proj", "fc_out"),
}
DEFAULT_FEEDFORWARD = {
    "llama": ("down_proj",),
    "bloom": ("dense_4h_to_h",),
    "gptj": ("fc_out",),
}


def _normalize_feedforward(value) -> tuple[str, ...] | None:
    """None, a list/tuple of names or "a,b"; unlike target_modules it may be empty (every target scales its output)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",")] if value.strip() else []
    check(isinstance(value, (list, tuple)) and all(isinstance(v, str) and v for v in value), "feedforward_modules",
          value, "null (the family default, within target_modules) or a list of module names from target_modules")
    return tuple(value)


@dataclass(frozen=True)
class Config:
    target_modules: tuple[str, ...] | None = None  # None = the family's default above
    # None = the family's default feedforward modules that are among the targets
    feedforward_modules: tuple[str, ...] | None = None

    def __post_init__(self):
        object.__setattr__(self, "target_modules", normalize_targets(self.target_modules))
        object.__setattr__(self, "feedforward_modules", _normalize_feedforward(self.feedforward_modules))
        if self.target_modules is not None and self.feedforward_modules is not None:
            extra = [m for m in self.feedforward_modules if m not in self.target_modules]
            check(not extra, "feedforward_modules", self.feedforward_modules, "names from target_modules")


def _modules(cfg: Config, family: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(target modules, feedforward modules) for the family; UserError when it has no defaults or the
    feedforward modules are not among the targets."""
    targets = targets_for(family, cfg.target_modules, DEFAULT_TARGETS, "ia3")
    if cfg.feedforward_modules is None:
        return targets, tuple(m for m in DEFAULT_FEEDFORWARD.get(family, ()) if m in targets)
    extra = [m for m in cfg.feedforward_modules if m not in targets]
    if extra:
        raise UserError(f"method ia3: method_args.feedforward_modules: {', '.join(extra)} not among the "
                        f"target modules ({', '.join(targets)})")
    return targets, cfg.feedforward_modules


def check_config(cfg: Config, family: str) -> None:
    _modules(cfg, family)


def inject(model, cfg: Config):
    family = model_family_of(model)
    targets, feedforward = _modules(cfg, family)
    resolve_targets(model, targets, DEFAULT_TARGETS, "ia3")  # every target must be a Linear of the model
    import peft  # late: costs seconds

    task_type = "CAUSAL_LM" if family in CAUSAL_FAMILIES else None
    peft_cfg = peft.IA3Config(target_modules=list(targets), feedforward_modules=list(feedforward), task_type=task_type)
    return peft.get_peft_model(model, peft_cfg)


register(Method("ia3", Config, inject, library="peft", model_families=FAMILIES, check_config=check_config,
                description="(IA)^3 (peft); peft's default targets", co_trains=True, merges=True))
