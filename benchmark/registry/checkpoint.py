"""What a model source points at, read without loading any weights: the checkpoint's config and, for
`family: auto`, the catalogue family its architecture belongs to.

It lives in the registry because the catalogue resolves `family: auto` while it parses an entry: the
family is part of every trial's identity (TrialSpec.model_family), so it must be known before a grid
expands. models/ (which loads weights) builds on the same source rules.

Sources: `python:<package>/<path>` (a file or folder inside an installed package, found without
importing it), a `.gguf` file (its dequantised copy in the cache once `models.gguf` has made it, else
the GGUF metadata through transformers), a local save_pretrained directory, or an HF id (read from the
local HF cache only: resolving a family never downloads).

The family rule of `auto`: an architecture whose decoder layers carry LLaMA's module names
(layers.N.self_attn.{q,k,v,o}_proj and layers.N.mlp.{gate,up,down}_proj) is the llama family, whatever its
model_type (mistral, qwen2, qwen3, ...): every method's llama defaults name exactly those modules. The
names are read from a one-layer model built on the meta device from the checkpoint's config (no memory,
a fraction of a second), so the rule is the modeling code's, not a list of model types.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import importlib.util
import json
import re
from pathlib import Path

from benchmark.errors import UserError
from benchmark.paths import cache_dir

PACKAGE_PREFIX = "python:"
LLAMA_LAYER_MODULES = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                       "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")
_LAYER_MODULE = re.compile(r"(?:^|\.)layers\.\d+\.(.+)$")
GGUF_HINT = "pip install gguf==0.19.0 (make smollm2 installs it)"


def is_gguf(source: str) -> bool:
    return source.lower().endswith(".gguf")


def package_path(source: str, hint: str = "") -> Path:
    """python:<package>/<path> -> that path inside the installed package (nothing is imported or downloaded)."""
    package, _, inner = source[len(PACKAGE_PREFIX):].partition("/")
    spec = importlib.util.find_spec(package) if package.isidentifier() else None
    if spec is None or not spec.submodule_search_locations:
        install = hint or f"e.g. pip install {package.replace('_', '-')}"
        raise UserError(f"source {source!r} names Python package {package!r}, which is not installed "
                        f"(allowed: an installed package; {install})")
    return Path(list(spec.submodule_search_locations)[0]) / inner


def local_path(source: str, hint: str = "") -> Path | None:
    """The file or directory a source names on this machine; None for an HF id (or an embedded: name)."""
    if source.startswith(PACKAGE_PREFIX):
        return package_path(source, hint)
    if source.startswith("embedded:"):
        return None
    path = Path(source).expanduser()
    if path.exists() or source.startswith((".", "/", "~")) or is_gguf(source):
        return path
    return None


def gguf_file(source: str, hint: str = "") -> Path:
    """The .gguf file of a GGUF source, which must exist."""
    path = local_path(source, hint)
    if path is None or not path.is_file():
        raise UserError(f"source {source!r}: no such GGUF file{f' ({hint})' if hint else ''}")
    return path


def require_gguf_package() -> None:
    if importlib.util.find_spec("gguf") is None:
        raise UserError(f"reading a .gguf source needs the Python package gguf, which is not installed; {GGUF_HINT}")


@functools.cache
def _sha256(path: str, size: int, mtime_ns: int) -> str:  # size and mtime: a replaced file is hashed again
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    stat = path.stat()
    return _sha256(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


def gguf_cache_dir(path: Path) -> Path:
    """Where the dequantised checkpoint of a GGUF file lives: keyed by the file's content and the transformers
    version (another version may dequantise or convert the tokenizer differently)."""
    import transformers

    return cache_dir() / "gguf" / f"{file_sha256(path)[:16]}-{transformers.__version__}"


def read_config(source: str, trust_remote_code: bool = False, local_only: bool = True, hint: str = ""):
    """The HF config of a source, without weights. local_only: an HF id must be in the local HF cache."""
    from transformers import AutoConfig

    path = local_path(source, hint)
    try:
        if is_gguf(source):
            path = gguf_file(source, hint)
            converted = gguf_cache_dir(path)
            if (converted / "config.json").is_file():  # seconds saved per process: the GGUF header is not parsed
                return AutoConfig.from_pretrained(converted)
            require_gguf_package()
            return AutoConfig.from_pretrained(path.parent, gguf_file=path.name)
        if path is not None:
            if not (path / "config.json").is_file():
                raise UserError(f"source {source!r}: no config.json there (allowed: a save_pretrained directory, "
                                "a .gguf file, or an HF id)")
            return AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
        return AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code, local_files_only=local_only)
    except (OSError, ValueError) as exc:
        if isinstance(exc, UserError):
            raise
        where = "not in the local HF cache" if local_only and path is None else "unreadable"
        raise UserError(f"source {source!r}: config {where}: {str(exc).strip().splitlines()[0]}") from None


def missing_llama_modules(module_names) -> list[str]:
    """LLaMA's per-layer module names (layers.N.<name>) absent from a model's module names (wrappers included)."""
    found = {m.group(1) for m in map(_LAYER_MODULE.search, module_names) if m}
    return [f"layers.N.{name}" for name in LLAMA_LAYER_MODULES if name not in found]


def layout_of_config(config, known_families: tuple[str, ...], trust_remote_code: bool = False) -> tuple[str | None, list[str]]:
    """(family, []) for a config whose model_type is a known family or whose modules carry LLaMA's names, else
    (None, the LLaMA module names missing)."""
    import torch
    from transformers import AutoModelForCausalLM

    if config.model_type in known_families:
        return config.model_type, []
    one_layer = copy.deepcopy(config)
    if hasattr(one_layer, "num_hidden_layers"):
        one_layer.num_hidden_layers = 1  # the names of layer 0 are those of every layer; a 70B builds as fast
    try:
        with torch.device("meta"):
            net = AutoModelForCausalLM.from_config(one_layer, trust_remote_code=trust_remote_code)
    except (ValueError, KeyError):  # transformers has no causal-LM class for this configuration
        return None, [f"layers.N.{name}" for name in LLAMA_LAYER_MODULES]
    missing = missing_llama_modules(name for name, _ in net.named_modules())
    return (None, missing) if missing else ("llama", [])


@functools.cache
def auto_family(source: str, trust_remote_code: bool, arch_json: str, known_families: tuple[str, ...],
                hint: str = "") -> tuple[str, str]:
    """(family, model_type) for `family: auto`: from the entry's `arch:` block when it has one (so a grid plans
    before the weights exist locally), else from the checkpoint's config. Cached per source within a process."""
    from transformers import AutoConfig

    if source.startswith("embedded:"):
        raise UserError(f"source {source!r} is an embedded model, whose family is known; allowed: "
                        f"family: one of {', '.join(known_families)}")
    arch = json.loads(arch_json)  # JSON: hashable for the cache, whatever the arch holds
    if arch:
        try:
            config = AutoConfig.for_model(arch.pop("model_type"), **arch)
        except (ValueError, KeyError) as exc:
            raise UserError(f"arch: {str(exc).strip().splitlines()[0]}") from None
    else:
        config = read_config(source, trust_remote_code, hint=hint)
    family, missing = layout_of_config(config, known_families, trust_remote_code)
    if family is None:
        raise UserError(f"{source!r} is a {config.model_type!r} model without LLaMA's module names "
                        f"{', '.join(missing)}; allowed: a LLaMA-layout decoder (llama, mistral, qwen2, ...) or "
                        f"family: one of {', '.join(known_families)}")
    return family, config.model_type
