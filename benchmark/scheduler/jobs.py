"""`peft-bench submit` and `peft-bench jobs`: a run sent to an existing Ray cluster as a Ray Job.

The job's driver is `python -m benchmark run SUITE ... --address auto` (the same command as
`peft-bench run`, spelled so that it imports the shipped copy of the package even where no console
script is installed). The working directory is shipped as the job's runtime_env (without the
virtual environment, results, reports, caches and git history); Ray puts it on the driver's and
every worker's import path. The job reserves `driver_cpus`/`driver_gpus` for its driver, so it
cannot start on a cluster with no room for it and never competes with its own trials.
"""

from __future__ import annotations

import os
import re
import sys
import time
from dataclasses import replace
from pathlib import Path

from benchmark.errors import UserError, first_line
from benchmark.scheduler.command import RunOptions, run_argv, shell_line

EXCLUDES = [".venv", "results", "reports", ".cache", ".git", "**/__pycache__", "*.parquet", "*.sbatch"]
TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}
DASHBOARD_FORM = "http://HEAD:8265 (the Ray dashboard of the cluster's head node)"


def client(address: str):
    if not re.fullmatch(r"https?://[^\s/:]+(:\d{1,5})?/?", address or ""):
        raise UserError(f"--address {address!r}: allowed: {DASHBOARD_FORM}")
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(address)
    except Exception as exc:  # ConnectionError, RuntimeError, aiohttp errors: all mean "not reachable"
        raise UserError(f"--address {address}: no Ray Jobs API answers there ({_first(exc)}); allowed: "
                        f"{DASHBOARD_FORM}, with the dashboard running (ray start --head --include-dashboard=true)") from None


def _first(exc: BaseException) -> str:
    return (first_line(str(exc)) if str(exc).strip() else type(exc).__name__)[:200]


def suite_argument(suite: str, working_dir: Path) -> str:
    """A suite name stays a name; a suite file must lie inside the shipped working directory."""
    path = Path(suite)
    if not (suite.endswith((".yaml", ".yml")) or path.is_file()):
        return suite
    try:
        return path.resolve().relative_to(working_dir).as_posix()
    except ValueError:
        raise UserError(f"suite {suite!r}: the job only sees the shipped working directory {working_dir}; allowed: a "
                        "suite name (under suites/) or a YAML file inside the working directory (see --working-dir)") from None


def remote_path(option: str, value: str | None) -> str | None:
    """Paths the job uses must mean the same on the cluster: a URI or an absolute path (shared storage)."""
    if value is None or "://" in value or os.path.isabs(value):
        return value
    raise UserError(f"{option} {value!r}: the job runs in a temporary copy of the working directory on the cluster; "
                    "allowed: an absolute path on storage every node shares, or a URI such as s3://bucket/results")


def entrypoint(run: RunOptions) -> str:
    """The job's driver: `peft-bench run` on the cluster it runs in (its options rendered by command.py)."""
    return shell_line(run_argv(replace(run, address="auto"), ["python", "-m", "benchmark"]))


def runtime_env(working_dir: Path, env: list[str]) -> dict:
    env_vars = {}
    for text in env:
        key, sep, value = text.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise UserError(f"--env {text!r}: allowed: NAME=VALUE")
        env_vars[key] = value
    out = {"working_dir": str(working_dir), "excludes": list(EXCLUDES)}
    if env_vars:
        out["env_vars"] = env_vars
    return out


# A head that has just started answers "No available agent to submit job" until its dashboard agent is up
# (seconds; longer on a loaded node): that one answer is retried, every other error is the user's to see.
AGENT_WAIT_S = 90


def submit(address: str, entry: str, working_dir: Path, env: list[str], driver_cpus: float, driver_gpus: float) -> str:
    jobs = client(address)
    deadline = time.monotonic() + AGENT_WAIT_S
    while True:
        try:
            return jobs.submit_job(entrypoint=entry, runtime_env=runtime_env(working_dir, env),
                                   entrypoint_num_cpus=driver_cpus, entrypoint_num_gpus=driver_gpus or None)
        except UserError:
            raise
        except Exception as exc:
            if "No available agent" in str(exc) and time.monotonic() < deadline:
                time.sleep(2)
                continue
            raise UserError(f"submit to {address} failed: {_first(exc)}") from None


def _call(address: str, job_id: str, what: str):
    jobs = client(address)
    try:
        return getattr(jobs, what)(job_id)
    except Exception as exc:
        raise UserError(f"job {job_id!r} at {address}: {_first(exc)}; allowed: a job id that `ray job list "
                        f"--address {address}` shows (e.g. raysubmit_...)") from None


def status(address: str, job_id: str) -> tuple[str, str]:
    info = _call(address, job_id, "get_job_info")
    return str(getattr(info.status, "value", info.status)), info.message or ""


def logs(address: str, job_id: str) -> str:
    return _call(address, job_id, "get_job_logs")


def stop(address: str, job_id: str) -> bool:
    return bool(_call(address, job_id, "stop_job"))


def wait(address: str, job_id: str, timeout_s: float | None = None, poll_s: float = 2.0) -> str:
    """Poll until the job ends; its final status (or the current one when timeout_s runs out)."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        state, _ = status(address, job_id)
        if state in TERMINAL or (deadline is not None and time.monotonic() > deadline):
            return state
        time.sleep(poll_s)


def submit_command(args) -> int:
    """`peft-bench submit`: plan here (typos fail before anything is sent), ship the folder, start the Ray Job."""
    from benchmark.planner import plan
    from benchmark.registry.catalogues import current
    from benchmark.scheduler.command import job_path
    from benchmark.scheduler.groups import parse_co_train

    _, trials = plan(args.suite, args.filter, embedded=args.embedded)  # a typo fails here, not on the cluster
    parse_co_train(args.co_train)
    working_dir = Path(args.working_dir).resolve()
    if not working_dir.is_dir():
        raise UserError(f"--working-dir {args.working_dir!r}: not a directory; allowed: the folder to ship (default: .)")
    entry = entrypoint(RunOptions(
        suite=suite_argument(args.suite, working_dir), results=remote_path("--results", args.results),
        filters=args.filter, embedded=args.embedded, data_dir=remote_path("--data-dir", args.data_dir),
        max_concurrent=args.max_concurrent, max_failures=args.max_failures, retry_failed=args.retry_failed,
        catalogues=[job_path(file, working_dir) for file in current().user_files], co_train=args.co_train))
    job_id = submit(args.address, entry, working_dir, args.env, args.driver_cpus, args.driver_gpus)
    print(job_id)
    print(f"submitted {len(trials)} trials as {job_id}; follow it with: peft-bench jobs logs {job_id} --address {args.address}",
          file=sys.stderr)
    if not args.wait:
        return 0
    state = wait(args.address, job_id)
    sys.stdout.write(logs(args.address, job_id))
    print(f"{job_id}: {state}")
    return 0 if state == "SUCCEEDED" else 1
