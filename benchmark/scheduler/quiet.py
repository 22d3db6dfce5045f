"""Ray's own output goes to a log file, not the user's terminal (unless `peft-bench run --verbose`).

What a user of `peft-bench run` reads is the progress display and the summary. Ray adds banners, token and
TensorBoard warnings, result-path hints, every worker's prints and, when a node dies, a screen of the dead
raylet's state: useful when something goes wrong, so it is kept, in a file named on the terminal. Ray's core
is C++ and writes to file descriptors 1 and 2 directly, and a local Ray's processes inherit them, so the
redirection is of the descriptors, not of sys.stdout: nothing Ray prints can slip past it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from benchmark.paths import cache_dir


def default_log(results: str, suite: str) -> Path:
    """<results>/.logs/run-<suite>-<UTC time>.log for a local results folder (a dot folder: the store and
    `doctor` skip it); $PEFT_BENCH_CACHE/logs/ when the results are on an object store."""
    from benchmark.store.fs import is_uri

    folder = cache_dir() / "logs" if is_uri(results) else Path(results) / ".logs"
    return folder / f"run-{suite.replace('/', '-')[:60]}-{datetime.now(UTC):%Y%m%d-%H%M%S}.log"


@contextmanager
def ray_output_to(log: Path | None) -> Iterator:
    """Inside, descriptors 1 and 2 of this process (and of every process it starts) append to `log`; yields a
    stream on the original stdout for what the user should see. log None (--verbose): nothing redirected."""
    if log is None:
        yield sys.stdout
        return
    log.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    terminal = os.fdopen(os.dup(1), "w", buffering=1)
    target = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.dup2(target, 1)
        os.dup2(target, 2)
        yield terminal
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, target):
            os.close(fd)
        terminal.close()
