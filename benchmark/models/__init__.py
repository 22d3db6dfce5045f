"""Model loading: a catalogue entry -> (model, tokenizer).

Three kinds of source, one code path: `embedded:<name>` is built once into the cache by the zoo
and from then on is a local directory; a local directory is a user's checkpoint; anything else is
an HF id that transformers resolves (HF_HOME and offline caches apply; nothing is fetched unless
the user named that id). Causal families get a causal-LM head and the LLM-Adapters tokenizer
settings (pad id 0, left padding); encoders get their masked-LM head (task heads come later).

Safety: `trust_remote_code` comes from the catalogue entry only (off by default), and weights are
read from safetensors; a checkpoint that has only pickle (.bin) weights is refused unless the user
sets PEFT_BENCH_ALLOW_PICKLE=1, because unpickling runs code.

`load_cached` keeps the pristine base model of the last source in the worker process and hands
each trial a deep copy, so a worker that runs many trials of one model reads the weights once and
nothing one trial does (injected adapters, updated weights) reaches the next.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

from benchmark.errors import UserError
from benchmark.registry.catalogue import CAUSAL_FAMILIES, ModelEntry

LLM_ADAPTERS_PAD_ID = 0  # finetune.py: tokenizer.pad_token_id = 0 ("unk"), padding_side = "left"
ALLOW_PICKLE_ENV = "PEFT_BENCH_ALLOW_PICKLE"


def resolve_source(entry: ModelEntry) -> str:
    """A local directory (the zoo's, or the user's) or the HF id, as transformers should receive it."""
    if entry.is_embedded:
        from benchmark.models import zoo

        return str(zoo.ensure(entry.source.split(":", 1)[1]))
    local = Path(entry.source).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise UserError(f"model {entry.name}: source {entry.source!r} is a directory without config.json "
                            "(allowed: a save_pretrained directory, an HF id, or embedded:<name>)")
        _refuse_pickle_only(entry, local)
        return str(local)
    if entry.source.startswith((".", "/", "~")):
        raise UserError(f"model {entry.name}: source {entry.source!r} looks like a path but no such directory exists")
    return entry.source


def _refuse_pickle_only(entry: ModelEntry, directory: Path) -> None:
    has_safetensors = any(directory.glob("*.safetensors"))
    has_pickle = any(directory.glob("*.bin")) or any(directory.glob("*.pt"))
    if has_pickle and not has_safetensors and os.environ.get(ALLOW_PICKLE_ENV) != "1":
        raise UserError(f"model {entry.name}: {directory} holds only pickle weights (*.bin), which can run code when "
                        f"loaded; convert them to safetensors or set {ALLOW_PICKLE_ENV}=1 if you trust the files")


def _torch_dtype(name: str | None):
    import torch

    return {None: torch.float32, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def load_tokenizer(entry: ModelEntry, source: str | None = None):
    from transformers import AutoTokenizer

    source = source or resolve_source(entry)
    tok = AutoTokenizer.from_pretrained(source, trust_remote_code=entry.trust_remote_code)
    if entry.family in CAUSAL_FAMILIES:
        tok.pad_token_id = LLM_ADAPTERS_PAD_ID
        tok.padding_side = "left"
        # generate() must not receive token_type_ids (GPT-J's and BLOOM's forward reject or misuse them).
        tok.model_input_names = ["input_ids", "attention_mask"]
    return tok


def load(entry: ModelEntry, dtype: str | None = None):
    """(model, tokenizer) for a catalogue entry; the model on CPU in `dtype` (default: the entry's)."""
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

    source = resolve_source(entry)
    head = AutoModelForCausalLM if entry.family in CAUSAL_FAMILIES else AutoModelForMaskedLM
    try:
        model = head.from_pretrained(source, dtype=_torch_dtype(dtype or entry.dtype),
                                     trust_remote_code=entry.trust_remote_code,
                                     use_safetensors=None if os.environ.get(ALLOW_PICKLE_ENV) == "1" else True)
    except OSError as exc:
        raise UserError(f"model {entry.name}: cannot load {entry.source!r} (an HF id must be in the local HF cache "
                        f"or reachable; a path must be a save_pretrained directory with safetensors weights): "
                        f"{str(exc).splitlines()[0]}") from None
    if model.config.model_type != entry.family:
        raise UserError(f"model {entry.name}: {entry.source!r} is a {model.config.model_type!r} model but "
                        f"suites/models.yaml says family {entry.family!r}")
    tokenizer = load_tokenizer(entry, source)
    if entry.family in CAUSAL_FAMILIES:
        model.config.pad_token_id = LLM_ADAPTERS_PAD_ID
        model.generation_config.pad_token_id = LLM_ADAPTERS_PAD_ID
    return model, tokenizer


_CACHE: dict[tuple, tuple] = {}


def load_cached(entry: ModelEntry, dtype: str | None = None):
    """Like `load`, but the base weights are read once per process: each call returns a fresh deep copy."""
    key = (entry.source, entry.family, dtype or entry.dtype, entry.trust_remote_code)
    if key not in _CACHE:
        _CACHE.clear()  # one base model at a time: a worker never holds two 7B models in memory
        _CACHE[key] = load(entry, dtype)
    model, tokenizer = _CACHE[key]
    return copy.deepcopy(model), copy.deepcopy(tokenizer)


def clear_cache() -> None:
    _CACHE.clear()
