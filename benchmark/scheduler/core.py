"""The scheduler's backend-neutral bookkeeping: which trials to run, running one and storing it, what
happened. A backend (Ray Tune in tune_driver.py, Slurm job arrays in slurm_array.py) only decides where
and when each pending trial runs; everything it must agree on with the others lives here, so a trial
runs and is stored the same way whichever backend started it.

The Parquet store, not the backend, records the outcome: the process that runs a trial stores it
(run_and_store), so a crash of whatever launched it loses nothing; specs already stored as ok are
skipped, so rerunning the same command resumes a sweep; a trial whose worker died without storing
anything is stored as failed by the driver that noticed (record_outcomes).

One trial, one runner: the worker claims a trial's lease in the store before running it (store/leases.py)
and releases it after storing the result. A worker whose trial another driver holds runs nothing and
reports "leased"; its driver then waits (run_rounds): a trial the other stores as ok is done, one whose
lease expires (a dead driver) or is released without an ok result is claimed and run in a next round.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from benchmark.device import release_memory
from benchmark.errors import UserError, did_you_mean, first_line
from benchmark.registry.spec import TrialSpec
from benchmark.result import TrialResult

if TYPE_CHECKING:
    from benchmark.store.leases import Holder

TrialFn = Callable[[TrialSpec, str], TrialResult]
LEASED = "leased"  # a worker's report: another driver holds (or already stored) this trial; nothing was run


@dataclass
class RunSummary:
    total: int  # specs asked for (after removing duplicate trial_ids)
    skipped: int  # already stored as ok (with retry_failed: not stored as failed)
    ok: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (trial_id, first line of the error)
    seconds: float = 0.0
    elsewhere: int = 0  # run and stored as ok by another driver meanwhile (its lease kept this one off them)

    def line(self) -> str:
        return (f"{self.total} trials: {self.skipped} already done, {self.ok} ok, {len(self.failed)} failed"
                + (f", {self.elsewhere} run by another driver" if self.elsewhere else "") + f" in {self.seconds:.1f}s")


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
                  save_adapters: bool = True, holder: Holder | None = None) -> TrialResult:
    """Run one trial in this process and store it, holding its lease meanwhile: what every backend's worker
    does for each trial. A trial another holder runs, or that is stored as ok by the time its lease is ours, is
    not run: the result has status LEASED. save_adapters: keep what the trial trained beside its result (not
    part of its identity). holder: the driver's run (its workers share it); None: this process alone."""
    from benchmark.store import Store
    from benchmark.store import fs as sfs
    from benchmark.store.leases import Holder, Leases

    store = Store.for_worker(results_root)
    lease = Leases(store.loc).claim(spec.suite, spec.trial_id, holder or Holder.new())
    if lease is None:
        return leased_result(spec, "another driver holds this trial's lease")
    with lease:  # renewed meanwhile, released only after the result is stored: a later claimant then finds it stored
        if sfs.exists(store.loc, store.trial_path(spec.suite, spec.trial_id)):
            return leased_result(spec, "stored as ok by another driver meanwhile")
        return _run_and_store(spec, data_root, store, trial_fn, save_adapters)


def _run_and_store(spec, data_root, store, trial_fn, save_adapters) -> TrialResult:
    import shutil

    cap_threads(spec)
    if trial_fn is None:
        from benchmark.runner import run_trial

        def trial_fn(spec, data_root):
            return run_trial(spec, data_root, save_adapter=save_adapters)
    result = trial_fn(spec, data_root)
    try:
        store.write(result)  # one Store per process (for_worker): a long-lived worker's files roll up
    finally:
        if result.adapter_dir is not None:  # the runner's local staging folder, published (or not) by now
            shutil.rmtree(result.adapter_dir, ignore_errors=True)
        release_memory()  # a long-lived worker runs many trials: what this one freed goes back to the OS
    return result


def run_and_store_group(specs: list[TrialSpec], data_root: str, results_root: str, save_adapters: bool = True,
                        holder: Holder | None = None) -> list[TrialResult]:
    """A co-trained group (scheduler/groups.py): claim every member's lease, co-train those won and not yet stored
    (runner.run_group), store each member as its own trial. A member another holder runs, or that is stored as ok
    meanwhile, is not run (status LEASED); a group left with one member runs it as run_and_store would."""
    import contextlib
    import shutil

    from benchmark.store import Store
    from benchmark.store import fs as sfs
    from benchmark.store.leases import Holder, Leases

    store = Store.for_worker(results_root)
    suite = specs[0].suite
    leases = {lease.trial_id: lease for lease in Leases(store.loc).claim_many(suite, [s.trial_id for s in specs],
                                                                              holder or Holder.new())}
    results: dict[str, TrialResult] = {}
    with contextlib.ExitStack() as held:
        for lease in leases.values():
            held.enter_context(lease)
        run = []
        for spec in specs:
            if spec.trial_id not in leases:
                results[spec.trial_id] = leased_result(spec, "another driver holds this trial's lease")
            elif sfs.exists(store.loc, store.trial_path(spec.suite, spec.trial_id)):
                results[spec.trial_id] = leased_result(spec, "stored as ok by another driver meanwhile")
            else:
                run.append(spec)
        if run:
            cap_threads(run[0])
            for result in _run_group(run, data_root, save_adapters):
                try:
                    store.write(result)
                finally:
                    if result.adapter_dir is not None:
                        shutil.rmtree(result.adapter_dir, ignore_errors=True)
                results[result.trial_id] = result
            release_memory()
    return [results[spec.trial_id] for spec in specs]


def _run_group(specs: list[TrialSpec], data_root: str, save_adapters: bool) -> list[TrialResult]:
    """Resolve each member (one that no longer resolves is failed on its own) and co-train the rest."""
    from benchmark import runner
    from benchmark.planner import resolve

    resolved, results = [], {}
    for spec in specs:
        try:
            resolved.append(resolve(spec))
        except Exception:  # noqa: BLE001  the catalogue changed under a planned trial: run_trial records why
            results[spec.trial_id] = runner.run_trial(spec, data_root)
    for result in runner.run_group(resolved, data_root, save_adapter=save_adapters):
        results[result.trial_id] = result
    return [results[spec.trial_id] for spec in specs]


def failed_result(spec: TrialSpec, error: str) -> TrialResult:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    return TrialResult(spec=spec, status="failed", error=error, started_at=now, finished_at=now)


def leased_result(spec: TrialSpec, why: str) -> TrialResult:
    """What a worker returns for a trial it did not run (never stored: the store takes only ok and failed)."""
    return TrialResult(spec=spec, status=LEASED, error=why)


def record_outcomes(store, pending: list[TrialSpec], outcomes: dict[str, Outcome],
                    summary: RunSummary) -> list[TrialSpec]:
    """Count each launched trial as ok or failed; store a failed row for those whose worker stored nothing.
    Returns the trials another driver held (LEASED): not counted yet, see run_rounds."""
    leased = []
    for spec in pending:
        outcome = outcomes.get(spec.trial_id, Outcome(None, "the backend returned no result for this trial"))
        if outcome.status == LEASED:
            leased.append(spec)
        elif outcome.status == "ok":
            summary.ok += 1
        elif outcome.status is not None:
            summary.failed.append((spec.trial_id, outcome.error or "unknown error"))
        elif spec.trial_id in store.ok_trial_ids(spec.suite):
            summary.ok += 1  # the worker stored an ok result, then died before reporting it
        else:
            # The trial function itself raised or its worker died: the worker stored nothing, so we do.
            store.write(failed_result(spec, outcome.error))
            summary.failed.append((spec.trial_id, first_line(outcome.error)))
    return leased


Launch = Callable[[list[TrialSpec]], dict[str, Outcome]]


def run_rounds(store, pending: list[TrialSpec], holder: Holder, launch: Launch, summary: RunSummary,
               say: Callable[[str], None] = print) -> None:
    """Launch the pending trials no other driver holds, then wait for those it holds: each ends stored as ok
    (counted as elsewhere) or comes back to this driver (its lease expired or was released without an ok
    result) and is launched in the next round. A trial another driver stored as failed is so tried again here."""
    todo, waiting = split_leased(store, pending, holder)
    for trial_id, owner in _abandoned(store, todo, holder).items():
        say(f"[peft-bench] taking over {trial_id}: the lease of {owner} is dead (expired, or its driver process here is gone)")
    while todo or waiting:
        if todo:
            outcomes = launch(todo)
            waiting += record_outcomes(store, todo, outcomes, summary)
            _drop_dead_workers_leases(store, todo, outcomes, holder)
        todo, waiting = wait_turn(store, waiting, holder, summary, say)


def _drop_dead_workers_leases(store, launched: list[TrialSpec], outcomes: dict[str, Outcome], holder: Holder) -> None:
    """A worker that died never released its lease: drop it now, so another driver need not wait for it to expire."""
    from benchmark.store.leases import Leases

    leases = Leases(store.loc)
    for spec in launched:
        if outcomes.get(spec.trial_id, Outcome(None, "")).status is None:
            leases.drop(spec.suite, spec.trial_id, holder.owner)


def _abandoned(store, specs: list[TrialSpec], holder: Holder) -> dict[str, str]:
    """trial_id -> owner, of the specs whose only lease files are other owners' expired ones."""
    from benchmark.store.leases import Leases

    leases, now, out = Leases(store.loc), time.time(), {}
    ids = {spec.trial_id for spec in specs}
    for suite in {spec.suite for spec in specs}:
        for tid, claims in leases.every_claim(suite).items():
            if tid in ids and claims and not any(c.live(now) or c.owner == holder.owner for c in claims):
                out[tid] = claims[0].owner
    return out


def split_leased(store, specs: list[TrialSpec], holder: Holder) -> tuple[list[TrialSpec], list[TrialSpec]]:
    """(specs free to launch, specs another holder's live lease covers), each in plan order."""
    held = _others_leases(store, specs, holder)
    return [s for s in specs if s.trial_id not in held], [s for s in specs if s.trial_id in held]


def _others_leases(store, specs: list[TrialSpec], holder: Holder) -> dict:
    from benchmark.store.leases import Leases

    leases = Leases(store.loc)
    held = {}
    for suite in {spec.suite for spec in specs}:
        held.update({tid: c for tid, c in leases.holders(suite).items() if c.owner != holder.owner})
    return held


def wait_turn(store, waiting: list[TrialSpec], holder: Holder, summary: RunSummary,
              say: Callable[[str], None]) -> tuple[list[TrialSpec], list[TrialSpec]]:
    """Poll the store until some waiting trial is resolved; (trials to launch now, trials still held elsewhere)."""
    poll_s = max(0.5, min(5.0, holder.seconds / 4))
    said = False
    while waiting:
        held = _others_leases(store, waiting, holder)
        ok = {tid for suite in {s.suite for s in waiting} for tid in store.ok_trial_ids(suite)}
        todo, still = [], []
        for spec in waiting:
            if spec.trial_id in ok:
                summary.elsewhere += 1
            elif spec.trial_id in held:
                still.append(spec)
            else:
                say(f"[peft-bench] taking over {spec.trial_id}: its lease expired or was released without an ok result")
                todo.append(spec)
        if todo or not still:
            return todo, still
        if not said:
            owners = sorted({held[spec.trial_id].owner for spec in still})
            say(f"[peft-bench] waiting for {len(still)} trial(s) that another driver runs ({', '.join(owners)}): "
                "each is done when it stores it, or taken over here when its lease expires")
            said = True
        waiting = still
        time.sleep(poll_s)
    return [], []


def compact_quietly(store, suites: list[str]) -> None:
    """Fold this run's trial files into each suite's consolidated file, so the next read or resume is
    one file, not thousands. Only an optimisation: a failure (read-only storage) is logged, not raised."""
    try:
        store.compact(suites)
    except Exception as exc:
        logging.getLogger(__name__).warning("store: compaction skipped (%s: %s)", type(exc).__name__, exc)
