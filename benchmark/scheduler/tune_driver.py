"""Run a list of TrialSpecs as Ray Tune trials; the Parquet store, not Ray, records the outcome.

One Tune trial per TrialSpec, each asking for its own spec.resources. The worker runs the trial
(benchmark.runner.run_trial by default), writes its result to the store itself (so a crash of the
driver later loses nothing) and reports a small summary to Tune. Specs already stored as `ok`
are skipped, so rerunning the same command resumes a sweep. A trial whose function raises (a bug,
a dead worker) is still stored, as `failed`, by the driver: every spec ends up in the store.

Multi-node: `results_root` and `storage_path` must be shared storage, and the `benchmark` package
importable on every node (Ray Jobs' `working_dir` or an install).
"""

from __future__ import annotations

import os
import re
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ray import tune

from benchmark.errors import UserError
from benchmark.registry.spec import TrialSpec
from benchmark.result import TrialResult

TrialFn = Callable[[TrialSpec, str], TrialResult]
ANSI_ESCAPES = re.compile(r"\x1b\[[0-9;]*m")  # Ray colours its task names
PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])


@dataclass
class RunSummary:
    total: int  # specs asked for (after removing duplicate trial_ids)
    skipped: int  # already stored as ok
    ok: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (trial_id, first line of the error)
    seconds: float = 0.0

    def line(self) -> str:
        return (f"{self.total} trials: {self.skipped} already done, {self.ok} ok, {len(self.failed)} failed "
                f"in {self.seconds:.1f}s")


def first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else "unknown error"


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


def make_trainable(trial_fn: TrialFn | None, data_root: str, results_root: str):
    """The function Tune runs in a worker: rebuild the spec, run it, store it, report a summary."""

    def run_one_trial(config: dict) -> None:
        import torch

        from benchmark.store import Store

        spec = TrialSpec.from_dict(config["spec"])
        # Ray sets no thread cap for function trainables; match torch to what the trial reserved.
        torch.set_num_threads(max(1, int(spec.resources.cpus)))
        if trial_fn is None:
            from benchmark.runner import run_trial as fn
        else:
            fn = trial_fn
        result = fn(spec, data_root)
        Store(results_root).write(result)
        values = [m.value for m in result.metrics if m.value is not None]
        tune.report({
            "status": result.status,
            "trial_id": spec.trial_id,
            "error": first_line(result.error) if result.status != "ok" else "",
            "main_metric": sum(values) / len(values) if values else None,
        })

    return run_one_trial


class ProgressPrinter(tune.Callback):
    """One short line per finished trial: done / failed / remaining and elapsed time."""

    def __init__(self, total: int, started: float):
        self.total, self.started = total, started
        self.done, self.failed, self.seen = 0, 0, set()

    def _finish(self, trial, ok: bool, why: str = "") -> None:
        if trial.trial_id in self.seen:
            return
        self.seen.add(trial.trial_id)
        self.done += ok
        self.failed += not ok
        remaining = self.total - self.done - self.failed
        name = trial.config.get("spec", {}).get("trial_id", trial.trial_id)
        print(f"[peft-bench] {name} {'ok' if ok else 'FAILED: ' + why[:120]} | {self.done} done, {self.failed} failed, "
              f"{remaining} remaining, {time.monotonic() - self.started:.0f}s", flush=True)

    def on_trial_complete(self, iteration, trials, trial, **info):
        result = trial.last_result or {}
        self._finish(trial, result.get("status") == "ok", result.get("error", ""))

    def on_trial_error(self, iteration, trials, trial, **info):
        self._finish(trial, False, "the trial function raised (see the store for the traceback)")


def ensure_ray(address: str | None, ray_init_kwargs: dict | None) -> bool:
    """Connect to `address`, reuse an initialised Ray, or start a local one. True if we started it."""
    import ray

    if ray.is_initialized():
        return False
    kwargs = {"include_dashboard": False, **(ray_init_kwargs or {})}
    if address is not None:
        ray.init(address=address, **kwargs)
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
        for key, want in (("CPU", spec.resources.cpus), ("GPU", spec.resources.gpus)):
            if want > have.get(key, 0):
                raise UserError(f"trial {spec.trial_id} ({spec.model}/{spec.method}): resources.{key.lower()}s={want} "
                                f"but the Ray cluster has {have.get(key, 0):g}; lower it or use a larger cluster")


def failed_result(spec: TrialSpec, error: str) -> TrialResult:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    return TrialResult(spec=spec, status="failed", error=error, started_at=now, finished_at=now)


def run_specs(specs: list[TrialSpec], data_root: str, results_root: str, address: str | None = None,
              max_concurrent: int | None = None, max_failures: int = 0, trial_fn: TrialFn | None = None,
              storage_path: str | None = None, progress: bool = True,
              ray_init_kwargs: dict | None = None) -> RunSummary:
    """Run every spec not yet stored as ok; return what happened. See the module docstring."""
    from benchmark.store import Store

    started = time.monotonic()
    store = Store(results_root)
    unique = list({spec.trial_id: spec for spec in specs}.values())
    done_ok = {tid for suite in {s.suite for s in unique} for tid in store.ok_trial_ids(suite)}
    pending = [spec for spec in unique if spec.trial_id not in done_ok]
    summary = RunSummary(total=len(unique), skipped=len(unique) - len(pending))
    if not pending:
        summary.seconds = time.monotonic() - started
        return summary

    we_started = ensure_ray(address, ray_init_kwargs)
    try:
        check_fits(pending)
        # Absolute paths: Tune runs each trial with its trial folder as the working directory.
        results = _fit(pending, str(Path(data_root).resolve()), str(Path(results_root).resolve()), max_concurrent,
                       max_failures, trial_fn, storage_path, progress, started)
    finally:
        if we_started:
            import ray

            ray.shutdown()

    by_id = {spec.trial_id: spec for spec in pending}
    for trial_id, spec in by_id.items():
        metrics, error = results.get(trial_id, ({}, "Tune returned no result for this trial"))
        if error is None and metrics.get("status") == "ok":
            summary.ok += 1
        elif error is None and metrics.get("status"):
            summary.failed.append((trial_id, metrics.get("error") or "unknown error"))
        elif trial_id in store.ok_trial_ids(spec.suite):
            summary.ok += 1  # the worker stored an ok result, then died before reporting it
        else:
            # The trial function itself raised or its worker died: the worker stored nothing, so we do.
            store.write(failed_result(spec, error))
            summary.failed.append((trial_id, first_line(error)))
    summary.seconds = time.monotonic() - started
    return summary


def _fit(pending, data_root, results_root, max_concurrent, max_failures, trial_fn, storage_path, progress, started):
    """Run the Tune experiment; return trial_id -> (last reported metrics, error text or None)."""
    trainable = tune.with_resources(make_trainable(trial_fn, data_root, results_root), placement_for)
    storage = storage_path or str(Path(results_root).resolve() / ".ray")
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
        outcomes[trial_id] = (result.metrics or {}, None if result.error is None else describe_error(result.error))
    return outcomes


def describe_error(exc: BaseException) -> str:
    """'Type: message' of the original exception first, then the remote traceback Ray carried over."""
    cause = getattr(exc, "cause", None) or exc  # RayTaskError wraps the worker's exception
    detail = ANSI_ESCAPES.sub("", str(exc))
    if exc.__traceback__ is not None and cause is exc:
        detail += "\n" + "".join(traceback.format_tb(exc.__traceback__))
    return f"{type(cause).__name__}: {cause}\n{detail}"


__all__ = ["RunSummary", "run_specs"]
