"""Shared plumbing for the methods built with the `adapters` library (AdapterHub), encoders only.

Every such method is one `adapters` config (a single component or a flat ConfigUnion) built from the method's
validated Config; `attach` adds it to the model under the method's name, activates it and sets it to train:
`adapters.init(model)`, `model.add_adapter(name, config)`, `model.train_adapter(name)` (or a `Stack` of copies).
train_adapter freezes the encoder (`model.base_model`) and unfreezes exactly the adapter's parameters; a task
head outside the encoder (e.g. RobertaForSequenceClassification.classifier) is left as it is (trainable when
built fresh), which is how `adapters` trains a task. The paper's counts exclude any head: `peft-bench params`
builds the bare encoder unless --with-head.

`adapters` supports BERT and RoBERTa here; it does not support BLOOM at all, and its prompt tuning and
ConfigUnion-with-UniPELT work on encoders only, so every method registered through this module declares the
encoder families alone. `import adapters` costs seconds: it happens inside `attach` only.
"""

from __future__ import annotations

import logging

from benchmark.checks import check, is_int, is_number
from benchmark.errors import UserError
from benchmark.methods import Method, register
from benchmark.registry import bounds
from benchmark.registry.catalogue import ENCODER_FAMILIES


def _hide_inactive_warning(record: logging.LogRecord) -> bool:
    # set_active_adapters runs a ForwardContext before the setup is stored and logs this; nothing is wrong.
    return "none are activated" not in record.getMessage()


def attach(model, method: str, adapter_config, copies: int = 1):
    """Add `adapter_config` as adapter `method` (or `copies` adapters `method_0..` composed with Stack), activate it
    and train it; returns the same model object."""
    import adapters  # late: costs seconds
    from adapters.composition import Stack

    adapters.init(model)
    names = [method] if copies == 1 else [f"{method}_{i}" for i in range(copies)]
    taken = [n for n in names if n in model.adapters_config]
    if taken:
        raise UserError(f"method {method}: the model already has adapter {taken[0]!r}; inject into a fresh model")
    logger = logging.getLogger("adapters.model_mixin")
    logger.addFilter(_hide_inactive_warning)
    try:
        for name in names:
            model.add_adapter(name, config=adapter_config)
        model.train_adapter(names[0] if copies == 1 else Stack(*names))  # freezes the encoder, activates the setup
    finally:
        logger.removeFilter(_hide_inactive_warning)
    return model


def register_adapters_method(name: str, config_cls: type, description: str, copies: int = 1) -> Method:
    """Register a method whose Config has `adapters_config()` (the `adapters` config it stands for)."""
    def inject(model, cfg):
        return attach(model, name, cfg.adapters_config(), copies=copies)

    inject.__name__ = f"inject_{name}"
    return register(Method(name, config_cls, inject, library="adapters", model_families=ENCODER_FAMILIES,
                           description=description))


# ---- Config validation helpers of the `adapters` methods (ValueError naming the field, via checks.check) ----

def check_int(value, field: str, minimum: int = 1) -> None:
    check(is_int(value) and minimum <= value <= bounds.WIDTH, field, value, bounds.up_to(bounds.WIDTH, minimum))


def check_positive(value, field: str) -> None:
    check(is_number(value) and 0 < value <= bounds.SCALE, field, value, f"a number in (0, {bounds.SCALE:,}]")


def check_fraction(value, field: str) -> None:
    check(is_number(value) and 0 <= value < 1, field, value, "a number in [0, 1)")


def check_bool(value, field: str) -> None:
    check(isinstance(value, bool), field, value, "true or false")


def check_choices(values, field: str, choices: tuple[str, ...]) -> tuple[str, ...]:
    """A non-empty list/tuple (or "a,b") of distinct names from `choices`, as a tuple."""
    if isinstance(values, str):
        values = [part.strip() for part in values.split(",")]
    ok = (isinstance(values, (list, tuple)) and values and len(set(values)) == len(values)
          and all(isinstance(v, str) and v in choices for v in values))
    check(bool(ok), field, values, f"a non-empty list of distinct names from {', '.join(choices)}")
    return tuple(values)
