"""Tokenised training sets cached by content hash, shared by the trials of a worker and across runs.

Most trials of a grid tokenise the same training set with the same tokenizer and settings (only
the method or a learning rate changes), and tokenising commonsense_170k costs minutes. `cached`
keys the result by a sha256 of everything that decides it, supplied by the caller as `key_parts`
(content digests, never file names or paths, so an edited data file or retrained tokenizer can
never hit a stale entry):

    features = cached(("train", examples_digest(examples), tokenizer_identity(tok), code_identity(fn),
                       cutoff_len, train_on_inputs),
                      lambda: [fn(tok, ex, cutoff_len, train_on_inputs) for ex in examples])

Two levels: an in-process LRU (a reused Ray worker gets the list back at no cost), then Arrow IPC
files under `<cache dir>/token-cache/` (a new worker or the next run reads them in milliseconds;
not pickle, which would run code). Disk writes are atomic (temporary file + os.replace), so
concurrent workers building the same entry both publish a complete file. PEFT_BENCH_TOKEN_CACHE=0
turns the disk level off. Each call returns a fresh list of fresh dicts: a caller that reorders or
edits features cannot change what the next trial gets (the token lists themselves are shared and
must not be mutated in place).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path

log = logging.getLogger(__name__)
MEMORY_ENTRIES = 4  # a worker rarely needs more than its suite's training sets; each can be large
DISK_ENV = "PEFT_BENCH_TOKEN_CACHE"
_MEMORY: OrderedDict[str, list[dict]] = OrderedDict()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def key_of(key_parts: tuple) -> str:
    """The cache key: sha256 of the canonical JSON of the parts (tuples and lists alike)."""
    return _sha(json.dumps(list(key_parts), sort_keys=True, separators=(",", ":"), default=str).encode())


def examples_digest(examples: Iterable) -> str:
    """Content hash of the examples actually used (after any sampling): order and every field count."""
    digest = hashlib.sha256()
    for ex in examples:
        fields = ex.__dict__ if hasattr(ex, "__dict__") else ex
        digest.update(json.dumps(fields, sort_keys=True, default=str).encode())
        digest.update(b"\x1e")
    return digest.hexdigest()


def file_digest(path: str | os.PathLike) -> str:
    """sha256 of a data file's bytes (for callers that key on the file rather than parsed examples)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tokenizer_identity(tokenizer) -> str:
    """A hash of what makes a tokenizer tokenise as it does: its class, vocabulary and merges (the
    fast tokenizer's whole JSON, else the vocabulary), special tokens and padding settings."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        body = backend.to_str()
    else:
        body = json.dumps(sorted(tokenizer.get_vocab().items()))
    facts = {"class": type(tokenizer).__name__, "body": _sha(body.encode()),
             "special": {k: str(v) for k, v in sorted(getattr(tokenizer, "special_tokens_map", {}).items())},
             "pad_id": getattr(tokenizer, "pad_token_id", None), "eos_id": getattr(tokenizer, "eos_token_id", None),
             "bos_id": getattr(tokenizer, "bos_token_id", None), "padding_side": getattr(tokenizer, "padding_side", None),
             "max_len": getattr(tokenizer, "model_max_length", None)}
    return _sha(json.dumps(facts, sort_keys=True, default=str).encode())


def code_identity(fn: Callable) -> str:
    """A hash of the source of the module defining `fn`: editing the tokenisation code invalidates entries."""
    try:
        source = inspect.getsource(inspect.getmodule(fn))
    except (OSError, TypeError):
        source = f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', repr(fn))}"
    return _sha(source.encode())


def _disk_dir() -> Path | None:
    if os.environ.get(DISK_ENV, "1") == "0":
        return None
    from benchmark.paths import cache_dir

    return cache_dir() / "token-cache"


def _read(path: Path) -> list[dict] | None:
    import pyarrow as pa

    try:
        with pa.memory_map(str(path)) as source:
            return pa.ipc.open_file(source).read_all().to_pylist()
    except (OSError, pa.ArrowException) as exc:  # missing, or damaged: rebuild (and overwrite) it
        if path.exists():
            log.warning("token cache: ignoring unreadable %s (%s)", path, exc)
        return None


def _write(path: Path, features: list[dict]) -> None:
    import pyarrow as pa

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex}")
    try:
        table = pa.Table.from_pylist(features)
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        os.replace(tmp, path)
    except Exception as exc:  # a full disk or read-only cache must not fail the trial: it only costs time
        tmp.unlink(missing_ok=True)
        log.warning("token cache: not stored on disk (%s: %s)", type(exc).__name__, exc)


def _fresh(features: list[dict]) -> list[dict]:
    return [dict(f) for f in features]


def cached(key_parts: tuple, build: Callable[[], list[dict]], disk: bool = True) -> list[dict]:
    """`build()`'s features for `key_parts`, from memory, then disk, then by building them (and storing)."""
    key = key_of(key_parts)
    if key in _MEMORY:
        _MEMORY.move_to_end(key)
        return _fresh(_MEMORY[key])
    folder = _disk_dir() if disk else None
    path = folder / f"{key}.arrow" if folder else None
    features = _read(path) if path and path.exists() else None
    if features is None:
        features = build()
        if path and features:
            _write(path, features)
    _MEMORY[key] = features
    while len(_MEMORY) > MEMORY_ENTRIES:
        _MEMORY.popitem(last=False)
    return _fresh(features)


def clear_memory() -> None:
    _MEMORY.clear()
