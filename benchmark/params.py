"""Trainable and total parameters of (model, method) without weights: the model is built on the
meta device from its catalogue architecture, so pricing a 13B grid costs no download and no memory.
"""

from __future__ import annotations

from benchmark.errors import UserError
from benchmark.registry import catalogue


def model_config(entry: catalogue.ModelEntry):
    """The HF config: the catalogue's `arch` (under family auto its model_type may be any LLaMA-layout
    architecture, e.g. mistral or qwen2, priced as itself), the embedded zoo's config, or the source's config
    (a checkpoint directory, a package's folder or .gguf file, or an HF id)."""
    from transformers import AutoConfig

    from benchmark.registry import checkpoint

    if entry.arch:
        arch = dict(entry.arch)
        return AutoConfig.for_model(arch.pop("model_type"), **arch)
    if entry.is_embedded:
        from benchmark.models import zoo

        return AutoConfig.from_pretrained(zoo.ensure(entry.source.split(":", 1)[1]))
    try:
        return checkpoint.read_config(entry.source, entry.trust_remote_code, local_only=False, hint=entry.source_note)
    except UserError as exc:
        raise UserError(f"model {entry.name}: no config ({exc}); add `arch:` to its entry in "
                        f"{entry.file or 'its catalogue'}, or make it available locally") from None


def build(config, with_head: bool = False):
    """(model on the meta device, head description or None) for a config.

    Encoders (bert, roberta) are built bare (AutoModel: embeddings, layers, pooler), the counting convention of the
    PT+UniPELT paper (the method's parameters, no task head; RoBERTa-base total 124,645,632); `with_head` builds
    AutoModelForSequenceClassification instead (num_labels from the config, 2 by default), whose head trains with
    the method. Causal LMs are built with their LM head (AutoModelForCausalLM), `with_head` or not.
    """
    import torch
    from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification

    from benchmark.registry.catalogue import ENCODER_FAMILIES

    encoder = config.model_type in ENCODER_FAMILIES
    if encoder:
        auto, kind = (AutoModelForSequenceClassification, "sequence-classification") if with_head else (AutoModel, None)
    else:
        auto, kind = AutoModelForCausalLM, "causal-lm"
    with torch.device("meta"):
        net = auto.from_config(config)
    if kind is None:
        return net, None
    in_base = {id(p) for p in net.base_model.parameters()}
    head_params = sum(p.numel() for p in net.parameters() if id(p) not in in_base)  # tied weights counted in the base
    head = {"kind": kind, "class": type(net).__name__, "parameters": head_params}
    if encoder:
        head["num_labels"] = config.num_labels
    return net, head


def count_for(model: str, method: str, args: dict | None = None, with_head: bool = False) -> dict:
    """{model, method, method_args, trainable, total, trainable_pct, base_total, trainable_pct_of_base, with_head,
    model_class, head} for the method on the model's real shape. `head` (null for a bare encoder) names the head
    built and its parameters outside the base model; encoders count a task head only with `with_head` (it trains
    with the method), see `build`."""
    from benchmark import methods

    entry = catalogue.model(model)
    cfg = methods.build_config(method, args)  # a bad argument fails before anything is built
    methods.check_supported(method, entry.model_family, cfg)  # so does a family the method does not support
    config = model_config(entry)
    net, head = build(config, with_head)
    model_class = type(net).__name__
    _, base_total = methods.count_parameters(net)
    net = methods.get(method).inject(net, cfg)
    trainable, total = methods.count_parameters(net)
    return {"model": entry.name, "source": entry.source, "method": method, "method_args": dict(args or {}),
            "trainable": trainable, "total": total, "trainable_pct": 100.0 * trainable / total,
            # the papers' percentage: of the model before the method (PT+UniPELT: 11,083,376 / 124,645,632 = 8.892%)
            "base_total": base_total, "trainable_pct_of_base": 100.0 * trainable / base_total,
            "with_head": with_head, "model_class": model_class, "head": head}
