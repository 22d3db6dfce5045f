"""The Ray backend: run a list of TrialSpecs as Ray Tune trials, locally or on a cluster.

One Tune trial per scheduling unit: a pending TrialSpec alone, or a co-trained group of them
(scheduler/groups.py), each asking for its (first) spec's resources. The worker runs and stores the trial
(core.run_and_store, the same call `peft-bench run-trial` makes; core.run_and_store_group for a group) and
reports a small summary to Tune, per member; which specs are pending, the failed rows for trials whose worker died and the run summary are the
backend-neutral bookkeeping of core.py. Only Ray things live here.

Multi-node: `results_root` and `storage_path` must be shared storage, and the `benchmark` package
importable on every node (Ray Jobs' `working_dir` or an install).
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from ray import tune

from benchmark.errors import UserError, first_line
from benchmark.registry.spec import TrialSpec
from benchmark.scheduler import groups
from benchmark.scheduler.address import ADDRESS_FORMS, check_address, check_reachable, watch_head
from benchmark.scheduler.core import (
    LEASED,
    Outcome,
    RunSummary,
    TrialFn,
    absolute_root,
    compact_quietly,
    pending_specs,
    run_and_store,
    run_and_store_group,
    run_rounds,
    unique_specs,
)
from benchmark.scheduler.groups import AUTO, OFF, CoTrain
from benchmark.store.leases import Holder

ANSI_ESCAPES = re.compile(r"\x1b\[[0-9;]*m")  # Ray colours its task names
PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])


def placement_for(config: dict):
    """Each trial's own resources (Tune calls this per trial with its resolved config)."""
    from ray.tune.execution.placement_groups import PlacementGroupFactory

    res = config["unit"]["spec"]["resources"]
    bundle = {"CPU": float(res["cpus"])}
    if res["gpus"]:
        bundle["GPU"] = float(res["gpus"])
    if res.get("memory_gb"):
        bundle["memory"] = int(res["memory_gb"] * 1024**3)
    return PlacementGroupFactory([bundle])


def make_trainable(trial_fn: TrialFn | None, data_root: str, results_root: str, save_adapters: bool = True,
                   holder: Holder | None = None):
    """The function Tune runs in a worker: rebuild the spec, run it, store it, report a summary. holder: this
    driver's run, the owner of every lease its workers take."""

    def run_one_trial(config: dict) -> None:
        spec, *others = (TrialSpec.from_dict(d) for d in unit_specs(config))
        if others:
            results = run_and_store_group([spec, *others], data_root, results_root, save_adapters, holder)
        else:
            results = [run_and_store(spec, data_root, results_root, trial_fn, save_adapters, holder)]
        values = [m.value for m in results[0].metrics if m.value is not None]
        tune.report({
            "status": results[0].status,
            "trial_id": spec.trial_id,
            "error": first_line(results[0].error) if results[0].status != "ok" else "",
            "main_metric": sum(values) / len(values) if values else None,
            # Every member's outcome: the progress display and the driver's bookkeeping count trials, not groups.
            "members": {r.trial_id: [r.status, first_line(r.error) if r.status != "ok" else ""] for r in results},
        })

    return run_one_trial


class ProgressPrinter(tune.Callback):
    """Feeds Tune's trial events to the live progress display (benchmark.scheduler.progress)."""

    def __init__(self, total: int, started: float, stream=None):
        from benchmark.scheduler.progress import Progress

        self.progress = Progress(total, stream)
        self.progress.started = started

    @staticmethod
    def _names(trial) -> list[str]:
        """The trial ids a Tune trial runs: one, or a co-trained group's members."""
        return [d["trial_id"] for d in unit_specs(trial.config)] if trial.config else [trial.trial_id]

    def on_trial_start(self, iteration, trials, trial, **info):
        for name in self._names(trial):
            self.progress.start(name)

    def on_step_end(self, iteration, trials, **info):
        self.progress.tick()

    def on_trial_complete(self, iteration, trials, trial, **info):
        result = trial.last_result or {}
        members = result.get("members") or {name: [result.get("status"), result.get("error", "")]
                                            for name in self._names(trial)}
        for name, (status, error) in members.items():
            if status == LEASED:
                self.progress.leased(name, error)
            else:
                self.progress.finish(name, status == "ok", error)

    def on_trial_recover(self, iteration, trials, trial, **info):
        why = why_retried(trial)
        for name in self._names(trial):
            self.progress.retry(name, why, trial.run_metadata.num_failures)

    def on_trial_error(self, iteration, trials, trial, **info):
        for name in self._names(trial):
            self.progress.finish(name, False, "the trial function raised (see the store for the traceback)")

    def on_experiment_end(self, trials, **info):
        self.progress.close()


ACTOR_ID = re.compile(r"\bactor ([0-9a-f]{32})\b")  # as Ray's actor errors name the actor that died


def why_retried(trial) -> str:
    """Why Tune runs a trial again, in a few words: the node lost under it, else what killed its worker.

    The error Tune recorded names the trial's actor, not its node (a SIGKILLed raylet reads as a closed socket,
    long before the cluster marks the node dead); the actor table says where the actor ran, and that node is lost
    when the cluster says so or its raylet no longer answers."""
    import ray
    from ray._private.state import actors  # the GCS actor table: no dashboard needed

    try:
        text = ANSI_ESCAPES.sub("", Path(trial.error_file).read_text()).rsplit("Failure #", 1)[-1]
    except (OSError, TypeError):  # no error file: Tune kept nothing to say
        return "its worker died"
    lines = [line.strip() for line in text.splitlines()[1:] if line.strip()]
    died = f"its worker died ({lines[0][:120] if lines else 'no reason given'})"
    match = ACTOR_ID.search(text)
    try:
        node_id = actors(match.group(1))["Address"]["NodeID"] if match else None
    except (KeyError, TypeError, ValueError):
        node_id = None
    node = next((node for node in ray.nodes() if node["NodeID"] == node_id), None)
    if node is None:
        return died
    where = f"node {node['NodeManagerAddress']} ({node['NodeID'][:8]})"
    if not node.get("Alive") or not answers(node["NodeManagerAddress"], node["NodeManagerPort"]):
        return f"{where} lost"
    return f"{died[:-1]}, on {where})"


def answers(host: str, port: int, timeout_s: float = 2.0) -> bool:
    import socket

    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError:
        return False
    return True


# What Ray Client ships to the cluster so workers import this very checkout (as `peft-bench submit` does).
SHIP_EXCLUDES = [".venv", "results", "reports", ".cache", ".git", "**/__pycache__", "*.parquet"]


def ensure_ray(address: str | None, ray_init_kwargs: dict | None) -> bool:
    """Connect to `address`, reuse an initialised Ray, or start a local one. True if we started it."""
    import ray

    if ray.is_initialized():
        return False
    kwargs = {"include_dashboard": False, **(ray_init_kwargs or {})}
    if address is not None:
        check_address(address)
        kwargs.pop("include_dashboard")  # only for a Ray instance we start ourselves
        check_reachable(address)
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
              ray_init_kwargs: dict | None = None, retry_failed: bool = False, save_adapters: bool = True,
              progress_stream=None, co_train: CoTrain = AUTO) -> RunSummary:
    """Run every spec not yet stored as ok (retry_failed: only those stored as failed) on Ray; return what
    happened. progress_stream: where the progress display writes (default: sys.stdout when it writes); co_train:
    which trials train together (scheduler/groups.py). See the module docstring."""
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

    holder = Holder.new()  # a bad $PEFT_BENCH_LEASE_S fails here, before Ray starts
    we_started = ensure_ray(address, ray_init_kwargs)
    try:
        check_fits(pending)

        def launch(batch: list[TrialSpec]) -> dict[str, Outcome]:
            # Absolute paths: Tune runs each trial with its trial folder as the working directory.
            try:
                # A trial_fn (tests' fault injection) runs each trial alone: groups call the runner directly.
                units = groups.form(batch, co_train if trial_fn is None else OFF)
                return _fit(units, str(Path(data_root).resolve()), results_root, max_concurrent, max_failures, trial_fn,
                            storage_path, progress, started, save_adapters, progress_stream, holder)
            except Exception as exc:  # Tune itself gave up (e.g. Ray killed a starting worker for memory): what the
                # workers stored stands; every other trial gets a failed row saying why, and a rerun retries it.
                why = first_line(describe_error(exc))
                logging.getLogger(__name__).error("Ray Tune stopped the run: %s", why)
                return {spec.trial_id: Outcome(None, f"the run was cut short before this trial reported: {why}")
                        for spec in batch}

        def say(line: str) -> None:
            if progress:
                print(line, file=progress_stream or sys.stdout, flush=True)
            else:
                logging.getLogger(__name__).info("%s", line)

        run_rounds(store, pending, holder, launch, summary, say)  # other drivers' trials: waited for, or taken over
    finally:
        if we_started:
            import ray

            ray.shutdown()

    compact_quietly(store, sorted({spec.suite for spec in pending}))
    summary.seconds = time.monotonic() - started
    return summary


def unit_specs(config: dict) -> list[dict]:
    """The spec dicts of one Tune trial's config: its trial, then the other members of its co-trained group."""
    unit = config["unit"]
    return [unit["spec"], *unit.get("members", ())]


def _fit(units, data_root, results_root, max_concurrent, max_failures, trial_fn, storage_path, progress, started,
         save_adapters=True, progress_stream=None, holder=None):
    """Run the Tune experiment, one Tune trial per unit (a trial, or a co-trained group); return trial_id -> what
    its worker reported, or why it reported nothing."""
    pending = [spec for unit in units for spec in unit]
    members = {unit[0].trial_id: [spec.trial_id for spec in unit] for unit in units}
    trainable = tune.with_resources(make_trainable(trial_fn, data_root, results_root, save_adapters, holder), placement_for)
    storage = storage_path or (f"{results_root.rstrip('/')}/.ray" if "://" in results_root
                               else str(Path(results_root) / ".ray"))
    printer = ProgressPrinter(len(pending), started, progress_stream) if progress else None
    suites = sorted({spec.suite for spec in pending})
    name = f"{'+'.join(suites)[:60].replace('/', '-')}-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    tuner = tune.Tuner(
        trainable,
        param_space={"unit": tune.grid_search([{"spec": unit[0].to_dict(), "members": [s.to_dict() for s in unit[1:]]}
                                               for unit in units])},
        tune_config=tune.TuneConfig(
            max_concurrent_trials=max_concurrent, reuse_actors=True,
            # Short, meaningful names instead of Tune's rendering of the whole spec dict.
            trial_name_creator=lambda trial: trial.config["unit"]["spec"]["trial_id"],
            trial_dirname_creator=lambda trial: trial.config["unit"]["spec"]["trial_id"],
        ),
        run_config=tune.RunConfig(
            name=name, storage_path=storage, verbose=0,
            failure_config=tune.FailureConfig(max_failures=max_failures),
            callbacks=[printer] if printer else [],
        ),
    )
    import ray
    from ray.util.client import ray as ray_client

    # Through Ray Client the driver runs on the cluster, and the GCS address is the cluster's own: nothing to watch
    watching = (watch_head(ray.get_runtime_context().gcs_address, printer.progress.note)
                if printer and not ray_client.is_connected() else None)
    try:
        results = tuner.fit()
    finally:
        if watching is not None:
            watching.set()
    outcomes = {}
    for result in results:
        # A trial whose actor never started has no config; its folder is named after the trial_id.
        trial_id = result.config["unit"]["spec"]["trial_id"] if result.config else Path(result.path).name
        reported = result.metrics or {}
        if result.error is None and reported.get("members"):
            for member, (status, error) in reported["members"].items():
                outcomes[member] = Outcome(status, error or "")
        elif result.error is None and reported.get("status"):
            outcomes[trial_id] = Outcome(reported["status"], reported.get("error") or "")
        else:
            why = "Tune returned no result for this trial" if result.error is None else describe_error(result.error)
            for member in members.get(trial_id, [trial_id]):
                outcomes[member] = Outcome(None, why)
    return outcomes


def describe_error(exc: BaseException) -> str:
    """'Type: message' of the original exception first, then the remote traceback Ray carried over."""
    cause = getattr(exc, "cause", None) or exc  # RayTaskError wraps the worker's exception
    detail = ANSI_ESCAPES.sub("", str(exc))
    if exc.__traceback__ is not None and cause is exc:
        detail += "\n" + "".join(traceback.format_tb(exc.__traceback__))
    return f"{type(cause).__name__}: {cause}\n{detail}"


__all__ = ["run_specs"]
