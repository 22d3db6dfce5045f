"""`peft-bench slurm SUITE --array`: an sbatch script with one Slurm array task per pending trial (or co-trained
group of trials, scheduler/groups.py), no Ray.

The second scheduler backend. Slurm does the scheduling: the array has one task per trial not yet stored
as ok when the script is rendered (the plan minus the store, core.pending_specs), at most --max-concurrent
running at once (the `%` throttle), each task asking for what the most demanding pending trial asks for
(or --gpus-per-task / --cpus-per-task). The trial ids are written into the script; array task i runs
`peft-bench run-trial SUITE <ids of unit i>`, which runs and stores that trial (or co-trains that group and stores
each member) like any backend's worker.

Resuming is re-rendering: a new script lists only what is still not stored ok, and an old script's task
whose trial is stored meanwhile does nothing (run-trial skips it). A trial's own failure is stored by
run-trial (exit status 1); a task killed by a signal (out of memory, a lost node) stored nothing and is
retried in place up to --max-failures times, then left for the next submission.
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass

from benchmark.registry.spec import TrialSpec
from benchmark.scheduler.command import ShellWord, run_trial_argv, shell_line
from benchmark.scheduler.slurm import (
    SlurmOptions,
    check_room,
    common_sbatch,
    plan_specs,
    refuse,
    run_options,
    validated,
    venv_lines,
)


@dataclass(frozen=True)
class ArrayScript:
    text: str | None  # None: nothing is pending, so there is nothing to submit
    pending: int
    total: int
    tasks: int = 0  # array tasks: one per pending trial, or per co-trained group of them


def task_shape(opts: SlurmOptions, pending: list[TrialSpec]) -> tuple[int, int, int | None]:
    """(GPUs, CPUs, memory in GB or None) for every task: the options, else the most any pending trial asks for
    (rounded up: a trial that shares a GPU under Ray gets a whole one here)."""
    gpus = opts.gpus_per_task if opts.gpus_per_task is not None else math.ceil(max(s.resources.gpus for s in pending))
    cpus = opts.cpus_per_task if opts.cpus_per_task is not None else math.ceil(max(s.resources.cpus for s in pending))
    check_room(pending, {"--gpus-per-task": (gpus, "gpus"), "--cpus-per-task": (cpus, "cpus")})
    memory = [s.resources.memory_gb for s in pending if s.resources.memory_gb]
    return gpus, max(cpus, 1), math.ceil(max(memory)) if memory else None


def render_array(opts: SlurmOptions, units: list[list[TrialSpec]], total: int) -> str:
    """The sbatch script for already validated options and a non-empty list of pending trials, as scheduling units
    (scheduler/groups.py: a trial alone, or a co-trained group)."""
    pending = [spec for unit in units for spec in unit]
    gpus, cpus, memory = task_shape(opts, pending)
    throttle = f"%{opts.max_concurrent}" if opts.max_concurrent else ""
    sbatch = [*common_sbatch(opts), f"--array=0-{len(units) - 1}{throttle}", "--ntasks=1", f"--cpus-per-task={cpus}"]
    if gpus:
        sbatch.append(f"--gpus-per-task={gpus}")
    if memory:
        sbatch.append(f"--mem={memory}G")
    # Unquoted: a group's ids (hexadecimal, space separated) become one argument each.
    run_trial = shell_line(run_trial_argv(run_options(opts), ShellWord("$trial_id"), ["peft-bench"]))
    at_once = f", at most {opts.max_concurrent} at once" if opts.max_concurrent else ""
    return "\n".join([
        "#!/bin/bash",
        f"# peft-bench slurm --array: {shlex.quote(opts.suite)}, {len(pending)} of {total} trials pending, "
        f"{len(units)} array tasks (a trial, or a co-trained group of trials, each){at_once}",
        "# Submit with `sbatch FILE`. To resume, render the script again: only trials not stored as ok get a task.",
        *(f"#SBATCH {line}" for line in sbatch),
        "",
        "set -euo pipefail",
        "export PYTHONUNBUFFERED=1  # output reaches the task's log as it happens (python -u)",
        *venv_lines(opts),
        "",
        "# Array task i runs trial_ids[i] (one trial, or a co-trained group's, space separated): the trials not",
        "# stored as ok when this script was rendered.",
        "trial_ids=(",
        *(f"  {shlex.quote(' '.join(spec.trial_id for spec in unit))}" for unit in units),
        ")",
        "task=${SLURM_ARRAY_TASK_ID:?run this script with sbatch: it is a job array}",
        'if [[ ! $task =~ ^[0-9]+$ ]] || (( task >= ${#trial_ids[@]} )); then',
        '  echo "peft-bench: array task $task: allowed: 0 to $(( ${#trial_ids[@]} - 1 )) (one per unit)" >&2',
        "  exit 2",
        "fi",
        "trial_id=${trial_ids[task]}",
        'command -v peft-bench >/dev/null || { echo "peft-bench: peft-bench not found on PATH (use --venv)" >&2; exit 1; }',
        f"max_failures={opts.max_failures}",
        'echo "peft-bench: array task $task of ${#trial_ids[@]}: trial $trial_id"',
        "",
        "# run-trial stores the trial whatever its outcome (exit 1: failed, stored). Killed by a signal (status >= 128:",
        "# out of memory, a lost node) it stored nothing: try again, at most max_failures times.",
        "attempt=0",
        "while true; do",
        "  status=0",
        f"  {run_trial} || status=$?",
        '  (( status >= 128 && attempt < max_failures )) || exit "$status"',
        "  attempt=$(( attempt + 1 ))",
        '  echo "peft-bench: trial $trial_id killed (exit status $status); retry $attempt of $max_failures" >&2',
        "done",
        "",
    ])


def build_array_script(opts: SlurmOptions) -> ArrayScript:
    """Validate, plan the suite, subtract what the store holds as ok (with retry_failed: keep only the failed), render."""
    from benchmark.scheduler.core import pending_specs, unique_specs
    from benchmark.store import Store

    opts = validated(opts)
    refuse(opts, {"nodes": "--nodes", "gpus_per_node": "--gpus-per-node", "cpus_per_node": "--cpus-per-node"},
           "only without --array (Ray on the allocation); allowed with --array: --gpus-per-task, --cpus-per-task")
    specs = unique_specs(plan_specs(opts))
    pending = pending_specs(Store(opts.results), specs, opts.retry_failed)
    if not pending:
        return ArrayScript(None, 0, len(specs))
    from benchmark.scheduler import groups

    units = groups.form(pending, groups.parse_co_train(opts.co_train))
    return ArrayScript(render_array(opts, units, len(specs)), len(pending), len(specs), len(units))

