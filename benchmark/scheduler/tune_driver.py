"""The Ray backend: run a list of TrialSpecs as Ray Tune trials, locally or on a cluster.

One Tune trial per pending TrialSpec, each asking for its own spec.resources. The worker runs and stores
the trial (core.run_and_store, the same call `peft-bench run-trial` makes) and reports a small summary to
Tune; which specs are pending, the failed rows for trials whose worker died and the run summary are the
backend-neutral bookkeeping of core.py. Only Ray things live here.

Multi-node: `results_root` and `storage_path` must be shared storage, and the `benchmark` package
importable on every node (Ray Jobs' `working_dir` or an install).
"""

from __future__ import annotations

import logging
import os
import re
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from ray import tune

from benchmark.errors import UserError, first_line
from benchmark.registry.spec import TrialSpec
from benchmark.scheduler.core import (
    Outcome,
    RunSummary,
    TrialFn,
    absolute_root,
    compact_quietly,
    pending_specs,
    record_outcomes,
    run_and_store,
    unique_specs,
)

ANSI_ESCAPES = re.compile(r"\x1b\[[0-9;]*m")  # Ray colours its task names
PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])


def placement_for(config: dict):
    """Each trial's own resources (Tune calls this per trial with its resolved config)."""
    from ray.tune.execution.placement_groups import PlacementGroupFactory

    res = config["spec"]["resources"]
    bundle = {"CPU": float(res["cpus"])}
    if res["gpus"]:
        bundle["GPU"] = float(res["gpus"])
    if res.get("memory_gb"):
        bundle["memory"] = int(res["memory_gb"] * 1024**3)
    return PlacementGroupFactory([bundle])


def make_trainable(trial_fn: TrialFn | None, data_root: str, results_root: str, save_adapters: bool = True):
    """The function Tune runs in a worker: rebuild the spec, run it, store it, report a summary."""

    def run_one_trial(config: dict) -> None:
        spec = TrialSpec.from_dict(config["spec"])
        result = run_and_store(spec, data_root, results_root, trial_fn, save_adapters)
        values = [m.value for m in result.metrics if m.value is not None]
        tune.report({
            "status": result.status,
            "trial_id": spec.trial_id,
            "error": first_line(result.error) if result.status != "ok" else "",
            "main_metric": sum(values) / len(values) if values else None,
        })

    return run_one_trial


class ProgressPrinter(tune.Callback):
    """Feeds Tune's trial events to the live progress display (benchmark.scheduler.progress)."""

    def __init__(self, total: int, started: float):
        from benchmark.scheduler.progress import Progress

        self.progress = Progress(total)
        self.progress.started = started

    @staticmethod
    def _name(trial) -> str:
        return trial.config.get("spec", {}).get("trial_id", trial.trial_id)

    def on_trial_start(self, iteration, trials, trial, **info):
        self.progress.start(self._name(trial))

    def on_step_end(self, iteration, trials, **info):
        self.progress.tick()

    def on_trial_complete(self, iteration, trials, trial, **info):
        result = trial.last_result or {}
        self.progress.finish(self._name(trial), result.get("status") == "ok", result.get("error", ""))

    def on_trial_error(self, iteration, trials, trial, **info):
        self.progress.finish(self._name(trial), False, "the trial function raised (see the store for the traceback)")

    def on_experiment_end(self, trials, **info):
        self.progress.close()


ADDRESS_FORMS = "auto (the cluster this node belongs to), HOST:PORT (its GCS) or ray://HOST:10001 (Ray Client)"
# What Ray Client ships to the cluster so workers import this very checkout (as `peft-bench submit` does).
SHIP_EXCLUDES = [".venv", "results", "reports", ".cache", ".git", "**/__pycache__", "*.parquet"]


def check_address(address: str) -> str:
    """The forms ray.init accepts for an existing cluster; anything else is a one-line UserError."""
    if address == "auto" or re.fullmatch(r"(ray://)?[\w.\-\[\]:]+:\d{1,5}", address):
        return address
    raise UserError(f"--address {address!r}: allowed: {ADDRESS_FORMS}")


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """ray.init retries an unreachable GCS for minutes: try the TCP port first and fail in seconds."""
    import socket

    if address == "auto":
        return  # ray.init itself fails fast when no cluster runs on this node
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise UserError(f"--address {address}: nothing answers there ({exc.strerror or exc}); allowed: {ADDRESS_FORMS}, "
                        "of a running cluster") from None


def ensure_ray(address: str | None, ray_init_kwargs: dict | None) -> bool:
    """Connect to `address`, reuse an initialised Ray, or start a local one. True if we started it."""
    import ray

    if ray.is_initialized():
        return False
    kwargs = {"include_dashboard": False, **(ray_init_kwargs or {})}
    if address is not None:
        check_address(address)
        kwargs.pop("include_dashboard")  # only for a Ray instance we start ourselves
        _check_reachable(address)
        if address.startswith("ray://"):
            kwargs.setdefault("runtime_env", {"working_dir": PACKAGE_PARENT, "excludes": SHIP_EXCLUDES})
        try:
            ray.init(address=address, **kwargs)
        except (ConnectionError, TimeoutError, RuntimeError, ValueError) as exc:
            first = first_line(str(exc))
            raise UserError(f"--address {address}: cannot connect to a Ray cluster there ({first[:200]}); allowed: "
                            f"{ADDRESS_FORMS}, of a running cluster") from None
    else:
        kwargs.setdefault("num_cpus", os.cpu_count())
        # Local workers inherit this environment: make `benchmark` importable whatever the cwd.
        paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
        if PACKAGE_PARENT not in paths:
            os.environ["PYTHONPATH"] = os.pathsep.join([PACKAGE_PARENT, *filter(None, paths)])
        ray.init(**kwargs)
    return True


def check_fits(specs: list[TrialSpec]) -> None:
    """A trial larger than the whole cluster would wait forever: say so now, naming it."""
    import ray

    have = ray.cluster_resources()
    for spec in specs:
        gpus = spec.resources.gpus
        if gpus > 1 and gpus != int(gpus):
            raise UserError(f"trial {spec.trial_id} ({spec.model}/{spec.method}): resources.gpus={gpus:g}; allowed: "
                            "a fraction up to 1 (several trials share a GPU) or a whole number of GPUs")
        for key, want in (("CPU", spec.resources.cpus), ("GPU", spec.resources.gpus)):
            if want > have.get(key, 0):
                raise UserError(f"trial {spec.trial_id} ({spec.model}/{spec.method}): resources.{key.lower()}s={want} "
                                f"but the Ray cluster has {have.get(key, 0):g}; lower it or use a larger cluster")


def run_specs(specs: list[TrialSpec], data_root: str, results_root: str, address: str | None = None,
              max_concurrent: int | None = None, max_failures: int = 0, trial_fn: TrialFn | None = None,
              storage_path: str | None = None, progress: bool = True,
              ray_init_kwargs: dict | None = None, retry_failed: bool = False, save_adapters: bool = True) -> RunSummary:
    """Run every spec not yet stored as ok (retry_failed: only those stored as failed) on Ray; return what
    happened. See the module docstring."""
    from benchmark.store import Store

    started = time.monotonic()
    results_root = absolute_root(results_root)
    store = Store(results_root)
    unique = unique_specs(specs)
    pending = pending_specs(store, unique, retry_failed)
    summary = RunSummary(total=len(unique), skipped=len(unique) - len(pending))
    if not pending:
        summary.seconds = time.monotonic() - started
        return summary

    we_started = ensure_ray(address, ray_init_kwargs)
    try:
        check_fits(pending)
        # Absolute paths: Tune runs each trial with its trial folder as the working directory.
        try:
            outcomes = _fit(pending, str(Path(data_root).resolve()), results_root, max_concurrent,
                            max_failures, trial_fn, storage_path, progress, started, save_adapters)
        except Exception as exc:  # Tune itself gave up (e.g. Ray killed a starting worker for memory): what the
            # workers stored stands; every other trial gets a failed row saying why, and a rerun retries it.
            why = first_line(describe_error(exc))
            logging.getLogger(__name__).error("Ray Tune stopped the run: %s", why)
            outcomes = {spec.trial_id: Outcome(None, f"the run was cut short before this trial reported: {why}")
                        for spec in pending}
    finally:
        if we_started:
            import ray

            ray.shutdown()

    record_outcomes(store, pending, outcomes, summary)
    compact_quietly(store, sorted({spec.suite for spec in pending}))
    summary.seconds = time.monotonic() - started
    return summary


def _fit(pending, data_root, results_root, max_concurrent, max_failures, trial_fn, storage_path, progress, started,
         save_adapters=True):
    """Run the Tune experiment; return trial_id -> what its worker reported, or why it reported nothing."""
    trainable = tune.with_resources(make_trainable(trial_fn, data_root, results_root, save_adapters), placement_for)
    storage = storage_path or (f"{results_root.rstrip('/')}/.ray" if "://" in results_root
                               else str(Path(results_root) / ".ray"))
    suites = sorted({spec.suite for spec in pending})
    name = f"{'+'.join(suites)[:60].replace('/', '-')}-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    tuner = tune.Tuner(
        trainable,
        param_space={"spec": tune.grid_search([spec.to_dict() for spec in pending])},
        tune_config=tune.TuneConfig(
            max_concurrent_trials=max_concurrent, reuse_actors=True,
            # Short, meaningful names instead of Tune's rendering of the whole spec dict.
            trial_name_creator=lambda trial: trial.config["spec"]["trial_id"],
            trial_dirname_creator=lambda trial: trial.config["spec"]["trial_id"],
        ),
        run_config=tune.RunConfig(
            name=name, storage_path=storage, verbose=0,
            failure_config=tune.FailureConfig(max_failures=max_failures),
            callbacks=[ProgressPrinter(len(pending), started)] if progress else [],
        ),
    )
    outcomes = {}
    for result in tuner.fit():
        # A trial whose actor never started has no config; its folder is named after the trial_id.
        trial_id = result.config["spec"]["trial_id"] if result.config else Path(result.path).name
        reported = result.metrics or {}
        if result.error is None and reported.get("status"):
            outcomes[trial_id] = Outcome(reported["status"], reported.get("error") or "")
        else:
            outcomes[trial_id] = Outcome(None, "Tune returned no result for this trial" if result.error is None
                                         else describe_error(result.error))
    return outcomes


def describe_error(exc: BaseException) -> str:
    """'Type: message' of the original exception first, then the remote traceback Ray carried over."""
    cause = getattr(exc, "cause", None) or exc  # RayTaskError wraps the worker's exception
    detail = ANSI_ESCAPES.sub("", str(exc))
    if exc.__traceback__ is not None and cause is exc:
        detail += "\n" + "".join(traceback.format_tb(exc.__traceback__))
    return f"{type(cause).__name__}: {cause}\n{detail}"


__all__ = ["run_specs"]
