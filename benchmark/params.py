"""Trainable and total parameters of (model, method) without weights: the model is built on the
meta device from its catalogue architecture, so pricing a 13B grid costs no download and no memory.
"""

from __future__ import annotations

from benchmark.errors import UserError
from benchmark.registry import catalogue


def model_config(entry: catalogue.ModelEntry):
    """The HF config: the catalogue's `arch`, the embedded zoo's config, or the source's config.json."""
    from transformers import AutoConfig

    if entry.arch:
        arch = dict(entry.arch)
        return AutoConfig.for_model(arch.pop("model_type"), **arch)
    if entry.is_embedded:
        from benchmark.models import zoo

        return AutoConfig.from_pretrained(zoo.ensure(entry.source.split(":", 1)[1]))
    try:
        return AutoConfig.from_pretrained(entry.source, trust_remote_code=entry.trust_remote_code)
    except OSError as exc:
        raise UserError(f"model {entry.name}: no config for {entry.source!r} (add `arch:` to its entry in "
                        f"suites/models.yaml, or make it available locally): {str(exc).splitlines()[0]}") from None


def count_for(model: str, method: str, args: dict | None = None, with_head: bool = False) -> dict:
    """{model, method, method_args, trainable, total, trainable_pct} for the method on the model's real shape."""
    import torch
    from transformers import AutoModelForCausalLM

    from benchmark import methods

    entry = catalogue.model(model)
    methods.build_config(method, args)  # a bad argument fails before anything is built
    config = model_config(entry)
    with torch.device("meta"):
        net = AutoModelForCausalLM.from_config(config)
    net = methods.apply(net, method, args)
    trainable, total = methods.count_parameters(net)
    return {"model": entry.name, "source": entry.source, "method": method, "method_args": dict(args or {}),
            "trainable": trainable, "total": total, "trainable_pct": 100.0 * trainable / total,
            "with_head": with_head}
