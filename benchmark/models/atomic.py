"""Build a cache directory once, atomically, safe when several processes (Ray workers) race.

A directory is "fresh" when its stamp file equals the stamp the caller expects (a version and
the settings it was built from), so a config change rebuilds it. Builders write into a temporary
sibling directory, the stamp last, and the result is renamed into place: readers only ever see
a complete directory. A lock file serialises builders, so two workers never build the same thing
twice or swap a fresh directory away from under each other.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

STAMP_FILE = "peft-bench-stamp.json"


def _canonical(stamp: dict) -> str:
    return json.dumps(stamp, sort_keys=True)


def is_fresh(directory: Path, stamp: dict) -> bool:
    try:
        found = json.loads((directory / STAMP_FILE).read_text())
    except (OSError, ValueError):
        return False
    return _canonical(found) == _canonical(stamp)


@contextlib.contextmanager
def _locked(lock_path: Path):
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_once(final: Path, stamp: dict, build: Callable[[Path], None]) -> Path:
    """`final`, built by `build(tmp_dir)` unless it already carries `stamp`."""
    if is_fresh(final, stamp):
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with _locked(final.parent / f".{final.name}.lock"):
        if is_fresh(final, stamp):  # another process built it while we waited for the lock
            return final
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
        try:
            build(tmp)
            (tmp / STAMP_FILE).write_text(_canonical(stamp))  # last: a stamped directory is complete
            if final.exists():  # stale (older version or settings): move it aside, then swap in
                trash = final.with_name(f".{final.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}")
                os.rename(final, trash)
                os.rename(tmp, final)
                shutil.rmtree(trash, ignore_errors=True)
            else:
                os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final
