"""The `peft-bench run` and `peft-bench run-trial` command lines, written once for every launcher.

A Ray Job's entrypoint (jobs.py), the Ray-on-Slurm script (slurm.py) and every Slurm array task
(slurm_array.py) start one of these two commands: they build a RunOptions and render it here, so an
option added to `run` reaches every backend by construction.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path


class ShellWord(str):
    """A word written into a script as is, unquoted: a variable the script itself sets, e.g. '"$ray_address"'."""


@dataclass(frozen=True)
class RunOptions:
    suite: str
    results: str = "results"
    filters: list[str] = field(default_factory=list)
    embedded: bool = False
    data_dir: str | None = None
    address: str | None = None  # run only: an existing Ray cluster
    max_concurrent: int | None = None  # run only
    max_failures: int | None = None  # run only; None: the command's default
    retry_failed: bool = False  # run only
    save_adapters: bool = True  # False: --no-save-adapters (not part of a trial's identity)
    co_train: str | None = None  # --co-train (run, and the array's groups); None: the command's default (auto)
    # The user's catalogue files (--catalogue and $PEFT_BENCH_CATALOGUE's), as the launched process finds them:
    # passed as --catalogue, so it plans against the catalogue the submitting command planned against.
    catalogues: list[str] = field(default_factory=list)


def _common(opts: RunOptions) -> list[str]:
    argv = ["--results", opts.results]
    if opts.data_dir is not None:
        argv += ["--data-dir", opts.data_dir]
    for text in opts.filters:
        argv += ["--filter", text]
    if opts.embedded:
        argv.append("--embedded")
    if not opts.save_adapters:
        argv.append("--no-save-adapters")
    for file in opts.catalogues:
        argv += ["--catalogue", file]
    return argv


def run_argv(opts: RunOptions, program: list[str]) -> list[str]:
    """`program run SUITE ...`: every option of `peft-bench run` that `opts` sets."""
    argv = [*program, "run", opts.suite]
    if opts.address is not None:
        argv += ["--address", opts.address]
    argv += _common(opts)
    if opts.max_concurrent is not None:
        argv += ["--max-concurrent", str(opts.max_concurrent)]
    if opts.max_failures is not None:
        argv += ["--max-failures", str(opts.max_failures)]
    if opts.retry_failed:
        argv.append("--retry-failed")
    if opts.co_train is not None:
        argv += ["--co-train", opts.co_train]
    return argv


def run_trial_argv(opts: RunOptions, trial_ids: str, program: list[str]) -> list[str]:
    """`program run-trial SUITE TRIAL_ID... ...`: one trial, or a co-trained group's (a ShellWord the shell splits into
    several ids), in the calling process (the run-only options do not apply)."""
    return [*program, "run-trial", opts.suite, trial_ids, *_common(opts)]


def job_path(file: str, working_dir: Path) -> str:
    """A catalogue file as a Ray Job sees it: inside the shipped working directory, relative to it (the job runs in
    a copy of it, where the entries' relative paths resolve too); else its absolute path (shared storage)."""
    path = Path(file).resolve()
    return path.relative_to(working_dir).as_posix() if path.is_relative_to(working_dir) else str(path)


def shell_line(argv: list[str]) -> str:
    """argv as one line of shell: every word quoted, except ShellWords."""
    return " ".join(word if isinstance(word, ShellWord) else shlex.quote(word) for word in argv)
