"""The scheduler's backend-neutral bookkeeping: which trials to run, running one and storing it, what
happened. A backend (Ray Tune in tune_driver.py, Slurm job arrays in slurm_array.py) only decides where
and when each pending trial runs; everything it must agree on with the others lives here, so a trial
runs and is stored the same way whichever backend started it.

The Parquet store, not the backend, records the outcome: the process that runs a trial stores it
(run_and_store), so a crash of whatever launched it loses nothing; specs already stored as ok are
skipped, so rerunning the same command resumes a sweep; a trial whose worker died without storing
anything is stored as failed by the driver that noticed (record_outcomes).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from benchmark.device import release_memory
from benchmark.errors import UserError, did_you_mean, first_line
from benchmark.registry.spec import TrialSpec
from benchmark.result import TrialResult

TrialFn = Callable[[TrialSpec, str], TrialResult]


@dataclass
class RunSummary:
    total: int  # specs asked for (after removing duplicate trial_ids)
    skipped: int  # already stored as ok (with retry_failed: not stored as failed)
    ok: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (trial_id, first line of the error)
    seconds: float = 0.0

    def line(self) -> str:
        return (f"{self.total} trials: {self.skipped} already done, {self.ok} ok, {len(self.failed)} failed "
                f"in {self.seconds:.1f}s")


class Outcome(NamedTuple):
    """What a backend learnt about one trial it launched."""

    status: str | None  # what the worker reported after storing the trial (ok | failed); None: it never reported
    error: str  # reported: the first line of the trial's error; not reported: why (the exception, the dead worker)


def absolute_root(results_root: str) -> str:
    """Workers may run in another folder (Tune's trial dir, a Slurm task's cwd): a local root made absolute."""
    from benchmark.store.fs import is_uri

    return results_root if is_uri(results_root) else str(Path(results_root).resolve())


def unique_specs(specs: list[TrialSpec]) -> list[TrialSpec]:
    """One spec per trial_id, in plan order (two grid cells can resolve to the same trial)."""
    return list({spec.trial_id: spec for spec in specs}.values())


def pending_specs(store, specs: list[TrialSpec], retry_failed: bool = False) -> list[TrialSpec]:
    """The specs still to run: not stored as ok, or with retry_failed only those stored as failed."""
    statuses = {tid: status for suite in {s.suite for s in specs} for tid, status in store.statuses(suite).items()}
    if retry_failed:
        return [spec for spec in specs if statuses.get(spec.trial_id) == "failed"]
    return [spec for spec in specs if statuses.get(spec.trial_id) != "ok"]


def find_trial(specs: list[TrialSpec], trial_id: str, suite: str) -> TrialSpec:
    for spec in specs:
        if spec.trial_id == trial_id:
            return spec
    ids = [spec.trial_id for spec in specs]
    raise UserError(f"trial {trial_id!r}: not a trial of suite {suite!r}{did_you_mean(trial_id, ids)}; allowed: one of "
                    f"its {len(ids)} trial ids (see `peft-bench plan {suite}`)")


def cap_threads(spec: TrialSpec) -> None:
    """Match torch's thread pool to what the trial reserved (neither Ray nor Slurm sets one for torch), so a
    trial computes the same way under every backend."""
    import torch

    torch.set_num_threads(max(1, int(spec.resources.cpus)))


def run_and_store(spec: TrialSpec, data_root: str, results_root: str, trial_fn: TrialFn | None = None,
                  save_adapters: bool = True) -> TrialResult:
    """Run one trial in this process and store it: what every backend's worker does for each trial.
    save_adapters: keep what the trial trained beside its result (not part of its identity)."""
    import shutil

    from benchmark.store import Store

    cap_threads(spec)
    if trial_fn is None:
        from benchmark.runner import run_trial

        def trial_fn(spec, data_root):
            return run_trial(spec, data_root, save_adapter=save_adapters)
    result = trial_fn(spec, data_root)
    try:
        Store.for_worker(results_root).write(result)  # one Store per process: a long-lived worker's files roll up
    finally:
        if result.adapter_dir is not None:  # the runner's local staging folder, published (or not) by now
            shutil.rmtree(result.adapter_dir, ignore_errors=True)
        release_memory()  # a long-lived worker runs many trials: what this one freed goes back to the OS
    return result


def failed_result(spec: TrialSpec, error: str) -> TrialResult:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    return TrialResult(spec=spec, status="failed", error=error, started_at=now, finished_at=now)


def record_outcomes(store, pending: list[TrialSpec], outcomes: dict[str, Outcome], summary: RunSummary) -> None:
    """Count each launched trial as ok or failed; store a failed row for those whose worker stored nothing."""
    for spec in pending:
        outcome = outcomes.get(spec.trial_id, Outcome(None, "the backend returned no result for this trial"))
        if outcome.status == "ok":
            summary.ok += 1
        elif outcome.status is not None:
            summary.failed.append((spec.trial_id, outcome.error or "unknown error"))
        elif spec.trial_id in store.ok_trial_ids(spec.suite):
            summary.ok += 1  # the worker stored an ok result, then died before reporting it
        else:
            # The trial function itself raised or its worker died: the worker stored nothing, so we do.
            store.write(failed_result(spec, outcome.error))
            summary.failed.append((spec.trial_id, first_line(outcome.error)))


def compact_quietly(store, suites: list[str]) -> None:
    """Fold this run's trial files into each suite's consolidated file, so the next read or resume is
    one file, not thousands. Only an optimisation: a failure (read-only storage) is logged, not raised."""
    try:
        store.compact(suites)
    except Exception as exc:
        logging.getLogger(__name__).warning("store: compaction skipped (%s: %s)", type(exc).__name__, exc)
