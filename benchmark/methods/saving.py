"""What a trial trained, saved and loaded again, in the format of the library that built it.

A folder per trial (the store publishes it as results/<suite>/adapters/<trial_id>/):
    peft methods (lora, dora, prefix, prompt, ia3)   peft's save_pretrained files at the top of the folder
                                                     (adapter_config.json, adapter_model.safetensors), so
                                                     `PeftModel.from_pretrained(base, folder)` loads them
    `adapters` methods (unipelt, pt_unipelt, ...)    save_all_adapters: one sub-folder per adapter, in its
                                                     default format (safetensors refuses the tensors a
                                                     prefix-tuning pool shares across layers)
    in-house and torch methods (series, parallel,    parameters.safetensors: every parameter that trained
    adapterp, bitfit, full)                          (for `full`, the whole model: as large as the model),
                                                     method.json: the method and its config
    every method                                     head.safetensors: the task head, when the task added one
                                                     manifest.json (written last): every file and its size

Loading rebuilds the trial's model on a fresh copy of its base: the head tensors first (base-model names),
then the method through its library. A folder that is incomplete (a file missing or of another size than
the manifest says) is refused in one line naming the folder and the file, before anything loads.
A method that trained nothing (zero-shot) keeps nothing: save returns (None, None).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from pathlib import Path

from benchmark.errors import UserError
from benchmark.methods import get
from benchmark.store.adapters import MANIFEST, check_complete, seal

HEAD = "head.safetensors"
PARAMETERS = "parameters.safetensors"
METHOD_JSON = "method.json"


def _base(model, library: str):
    return model.get_base_model() if library == "peft" else model


def _tensors(named: dict) -> dict:
    # safetensors wants contiguous tensors that share no storage; a copy on CPU is both.
    return {name: p.detach().to("cpu").contiguous().clone() for name, p in named.items()}


def save(model, method: str, config, head_params: list) -> tuple[str | None, int | None]:
    """Write what trained into a new local folder: (its path, its size in bytes), or (None, None) when nothing
    trained. The caller (the store) publishes the folder and removes it."""
    library = get(method).library
    head_ids = {id(p) for p in head_params}
    trained = [p for p in model.parameters() if p.requires_grad]
    if not trained:
        return None, None
    folder = Path(tempfile.mkdtemp(prefix="peft-bench-adapter-"))
    try:
        info = _write(model, method, library, config, head_ids, folder)
        return str(folder), seal(folder, info)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def _write(model, method: str, library: str, config, head_ids: set, folder: Path) -> dict:
    from safetensors.torch import save_file

    head = {name: p for name, p in _base(model, library).named_parameters() if id(p) in head_ids}
    if head:
        save_file(_tensors(head), str(folder / HEAD))
    info = {"method": method, "library": library, "config": _config(config)}
    if library == "peft":
        model.save_pretrained(str(folder))
    elif library == "adapters":
        model.save_all_adapters(str(folder))  # its default (.bin): prefix-tuning pools share tensors across layers
        info["adapters"] = list(model.adapters_config.adapters)  # in the order they were added (a Stack's order)
    else:
        own = {name: p for name, p in model.named_parameters() if p.requires_grad and id(p) not in head_ids}
        save_file(_tensors(own), str(folder / PARAMETERS))
        (folder / METHOD_JSON).write_text(json.dumps({"method": method, "config": _config(config)}, sort_keys=True,
                                                     indent=1))
    return info


def _config(config) -> dict:
    return dataclasses.asdict(config) if dataclasses.is_dataclass(config) else {}


def load(base_model, method: str, config, folder: Path | None):
    """`base_model` (a fresh copy of the trial's base, with a head if its task has one) with what `folder` keeps:
    returns the model to evaluate, in eval mode. UserError naming the folder and file when it is damaged.
    folder None: a method that trains nothing (zero-shot), injected as it is."""
    from safetensors.torch import load_file

    if folder is None:
        if get(method).trains:
            raise UserError(f"method {method}: no adapter folder; allowed: a trial that kept what it trained")
        return get(method).inject(base_model, config).eval()
    folder = Path(folder)
    manifest = check_complete(folder)
    library = get(method).library
    if manifest.get("method") != method:
        raise UserError(f"adapter folder {folder}: {MANIFEST}: method {manifest.get('method')!r}; allowed: {method!r}, "
                        "the trial's method")
    if (folder / HEAD).exists():
        _assign(base_model, load_file(str(folder / HEAD)), folder / HEAD)
    if library == "peft":
        from peft import PeftModel

        model = PeftModel.from_pretrained(base_model, str(folder))
    elif library == "adapters":
        model = _load_adapters(base_model, manifest["adapters"], folder)
    else:
        model = get(method).inject(base_model, config)
        _assign(model, load_file(str(folder / PARAMETERS)), folder / PARAMETERS)
    model.eval()
    return model


def _assign(model, tensors: dict, file: Path) -> None:
    """Copy saved tensors onto the model's parameters of the same names; every name must exist with its shape."""
    import torch

    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, tensor in tensors.items():
            target = params.get(name)
            if target is None or target.shape != tensor.shape:
                what = "no such parameter" if target is None else f"shape {tuple(tensor.shape)} != {tuple(target.shape)}"
                raise UserError(f"adapter folder {file.parent}: {file.name}: {name}: {what}; allowed: the parameters "
                                "of the trial's model")
            target.copy_(tensor)


def _load_adapters(model, names: list, folder: Path):
    import adapters
    from adapters.composition import Stack

    adapters.init(model)
    for name in names:
        model.load_adapter(str(folder / name), load_as=name)
    model.set_active_adapters(names[0] if len(names) == 1 else Stack(*names))
    return model
