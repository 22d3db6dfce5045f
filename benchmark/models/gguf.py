"""GGUF sources: a quantised single-file checkpoint (llama.cpp's format) becomes an ordinary local checkpoint.

transformers reads a .gguf file (with the PyPI package `gguf`) and dequantises it to float32, which takes
tens of seconds; a worker per trial must not pay that. So the file is converted once into
`$PEFT_BENCH_CACHE/gguf/<sha256 of the file, 16 hex>-<transformers version>/` with save_pretrained (model as
safetensors, plus the tokenizer transformers converted from the file's vocabulary, with the file's own
`tokenizer.ggml.add_bos_token`, which that conversion ignores), and from then on it
loads exactly like a user's save_pretrained directory. The key holds the transformers version because the
dequantisation and the tokenizer conversion are transformers' code. The conversion goes through
models/atomic.py: built in a temporary directory, stamped, renamed into place under a lock, so concurrent
workers convert it once and never read half a checkpoint.

The weights are the dequantised quantised ones (e.g. Q4_1), not the original float checkpoint: a result on
them is a result on that file.
"""

from __future__ import annotations

from pathlib import Path

from benchmark.models.atomic import build_once
from benchmark.registry import checkpoint

CONVERTER_VERSION = 1  # bump when what is saved changes


def _convert(path: Path, out_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    add_bos = _metadata(path, "tokenizer.ggml.add_bos_token")
    if add_bos is not None and hasattr(tokenizer, "add_bos_token"):
        # transformers 4.57 ignores this key (SmolLM2's says false, its converted tokenizer prepends <|im_start|>):
        # the file's own tokenisation is the model's
        tokenizer.add_bos_token = bool(add_bos)
    tokenizer.save_pretrained(out_dir)


def _metadata(path: Path, key: str):
    """One scalar of the GGUF header, or None."""
    from gguf import GGUFReader

    field = GGUFReader(path).fields.get(key)
    return None if field is None else field.contents()


def ensure(path: Path) -> Path:
    """The dequantised checkpoint directory of the GGUF file at `path`, converted on first use."""
    import transformers

    checkpoint.require_gguf_package()
    stamp = {"converter_version": CONVERTER_VERSION, "gguf_sha256": checkpoint.file_sha256(path),
             "file": path.name, "transformers": transformers.__version__}
    return build_once(checkpoint.gguf_cache_dir(path), stamp, lambda tmp: _convert(path, tmp))
