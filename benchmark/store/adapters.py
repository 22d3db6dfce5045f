"""Trained adapters in the store: `<suite>/adapters/<trial_id>/`, one folder per ok trial that kept one.

What the folder holds is benchmark/methods/saving.py's business; the store only publishes it whole and checks
it is whole. Every folder ends with manifest.json (written last when staged): each file's relative path and
size. Publication follows the store's rule, nothing visible until complete:
- local (and file://): the staged folder is copied to `<final>.tmp-<pid>-<uuid>` beside the final name, then
  renamed onto it (rename(2) of a folder: atomic). A folder already there is never rewritten: the rename
  fails, the copy is removed (a rerun of a trial, or two runs racing, keep the first folder).
- object stores have no folder rename: every file is copied to its final key, the manifest last, so a
  folder without its manifest is an unfinished publication: not there for exists() (readers never see it), a
  temporary leftover for the doctor, and completed by the next publication.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import pyarrow.fs as pafs

from benchmark.errors import UserError
from benchmark.store.fs import TMP_MARK, Location

MANIFEST = "manifest.json"
FORMAT = 1


def seal(folder: Path, info: dict) -> int:
    """Write the manifest of a staged local folder (every file and its size, plus `info`); returns the folder's
    size in bytes, manifest included (the row's adapter_bytes)."""
    files = {p.relative_to(folder).as_posix(): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file()}
    (folder / MANIFEST).write_text(json.dumps({"format": FORMAT, **info, "files": files}, sort_keys=True, indent=1))
    return sum(files.values()) + (folder / MANIFEST).stat().st_size


def check(loc: Location, folder: str) -> dict:
    """The manifest of a published folder once every file it lists is there with its size; else a UserError naming
    the folder and the file."""
    shown = _shown(loc, folder)
    try:
        with loc.fs.open_input_stream(f"{folder}/{MANIFEST}") as handle:
            manifest = json.loads(handle.read())
        files = dict(manifest["files"])
    except FileNotFoundError:
        raise UserError(f"adapter folder {shown}: {MANIFEST}: missing (an unfinished or foreign folder); allowed: a "
                        f"folder peft-bench published, which ends with its {MANIFEST}") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"adapter folder {shown}: {MANIFEST}: unreadable ({type(exc).__name__}); allowed: the JSON "
                        "manifest peft-bench wrote") from None
    infos = loc.fs.get_file_info([f"{folder}/{name}" for name in files])
    for (name, size), info in zip(files.items(), infos):
        if info.type != pafs.FileType.File:
            raise UserError(f"adapter folder {shown}: {name}: missing; allowed: every file its {MANIFEST} lists, "
                            "as the trial wrote it")
        if info.size != size:
            raise UserError(f"adapter folder {shown}: {name}: {info.size} bytes, {MANIFEST} says {size} (truncated "
                            "or changed); allowed: the file as the trial wrote it")
    return manifest


def check_complete(folder: Path) -> dict:
    """check() of a local folder."""
    return check(Location(pafs.LocalFileSystem(), str(Path(folder).resolve()), str(folder)), str(Path(folder).resolve()))


def exists(loc: Location, folder: str) -> bool:
    """Whether a folder is published there. On an object store that is once its manifest is: the files land one by
    one, the manifest last, so the part an interrupted publication left is invisible (and the next one completes
    it). A local folder appears whole by its rename, so one there without its manifest is damaged (check says so)."""
    if loc.local:
        return loc.fs.get_file_info(folder).type == pafs.FileType.Directory
    return loc.fs.get_file_info(f"{folder}/{MANIFEST}").type == pafs.FileType.File


def publish(loc: Location, staged: Path, final: str) -> bool:
    """Publish the local folder `staged` at `final` (see the module docstring); False when a complete folder was
    already there (left as it is)."""
    if loc.local:
        if exists(loc, final):
            return False
        tmp = f"{final}{TMP_MARK}{os.getpid()}-{uuid.uuid4().hex}"
        try:
            shutil.copytree(staged, tmp)
            os.rename(tmp, final)  # fails when `final` appeared meanwhile: the first folder stays
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            if exists(loc, final):
                return False
            raise
        return True
    if exists(loc, final):
        return False
    files = sorted((p for p in staged.rglob("*") if p.is_file()), key=lambda p: p.name == MANIFEST)  # manifest last
    for path in files:
        key = f"{final}/{path.relative_to(staged).as_posix()}"
        loc.fs.create_dir(key.rsplit("/", 1)[0], recursive=True)
        with loc.fs.open_output_stream(key) as out, path.open("rb") as source:
            shutil.copyfileobj(source, out)
    return True


def fetch(loc: Location, folder: str) -> Path:
    """A local copy of a checked folder: the folder itself on a local store, a temporary download otherwise."""
    manifest = check(loc, folder)
    if loc.local:
        return Path(folder)
    local = Path(tempfile.mkdtemp(prefix="peft-bench-adapter-"))
    for name in [*manifest["files"], MANIFEST]:
        (local / name).parent.mkdir(parents=True, exist_ok=True)
        with loc.fs.open_input_stream(f"{folder}/{name}") as source, (local / name).open("wb") as out:
            shutil.copyfileobj(source, out)
    return local


def _shown(loc: Location, folder: str) -> str:
    return folder if loc.local else f"{loc.display.rstrip('/')}/{folder[len(loc.base):].lstrip('/')}"
