"""`peft-bench eval SUITE`: evaluate the adapters a suite's trials kept again, without training.

For every trial of the plan stored as ok: its base model, with what it kept (results/<suite>/adapters/<trial_id>/,
benchmark/methods/saving.py) loaded on top, evaluated by the task's own evaluate on the trial's eval sets (or
--eval-data) under the trial's protocol (or --protocol). The rows are stored beside the trial's, one record per
(trial, protocol, eval set), marked source=eval (benchmark/store/evals.py); a record already stored is skipped.
Everything is checked before the first model loads: the protocol, the eval sets (planned as the trial's own,
same task kind), and every adapter folder (a damaged one stops the command in one line, nothing stored).
A method that trains nothing (zero-shot `none`) keeps nothing: its base model is evaluated as the run did.
Runs in this process, one trial after another: evaluation is minutes where training was hours.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

from benchmark.checks import check
from benchmark.errors import UserError
from benchmark.registry.spec import PROTOCOLS

SOURCE = "eval"


@dataclass
class EvalSummary:
    evaluated: list[str] = field(default_factory=list)  # "trial_id eval_data protocol: metric value" lines
    already: int = 0  # records already stored
    not_kept: list[str] = field(default_factory=list)  # ok trials without an adapter folder
    not_run: int = 0  # planned trials not stored as ok

    def line(self) -> str:
        return (f"{len(self.evaluated)} evaluated, {self.already} already stored, {len(self.not_kept)} without a kept "
                f"adapter, {self.not_run} not stored as ok")


def check_protocol(protocol: str | None) -> None:
    if protocol is not None:
        try:
            check(protocol in PROTOCOLS, "--protocol", protocol, ", ".join(PROTOCOLS))
        except ValueError as exc:
            raise UserError(str(exc)) from None


def evaluate_suite(suite: str, filters: list[str], embedded: bool, results: str, data_root: str,
                   protocol: str | None = None, eval_data: list[str] | None = None,
                   say: Callable[[str], None] = print, switches: dict[str, bool] | None = None) -> EvalSummary:
    """`switches`: quirks switched on top of each trial's (extraction and generation ones act; what trained the
    adapter cannot change). Records are keyed by the label of what produced them (registry/quirks.replay)."""
    from benchmark import methods
    from benchmark.planner import plan, resolve
    from benchmark.registry.quirks import label, replay
    from benchmark.scheduler.core import absolute_root
    from benchmark.store import Store
    from benchmark.store.fs import locate

    check_protocol(protocol)
    _, trials = plan(suite, filters, embedded=embedded)
    locate(results)
    store = Store(absolute_root(results))
    summary = EvalSummary()
    ok = {name: store.ok_trial_ids(name) for name in {trial.spec.suite for trial in trials}}
    work = []
    for trial in trials:
        spec = trial.spec
        if spec.trial_id not in ok[spec.suite]:
            summary.not_run += 1
            continue
        redone = replay(spec.eval.protocol, spec.eval.quirks, protocol or spec.eval.protocol,
                        {**spec.eval.quirks, **(switches or {})}, ("extraction", "generation"))
        used = label(spec.eval.protocol, redone)
        names = tuple(eval_data) if eval_data else spec.eval_data
        wanted = dataclasses.replace(spec, eval_data=names, eval=dataclasses.replace(spec.eval, quirks=redone))
        eval_trial = resolve(wanted, f"--eval-data (trial {spec.trial_id} of suite {spec.suite})")
        todo = tuple(e for e in eval_trial.eval_data
                     if not store.eval_stored(spec.suite, spec.trial_id, SOURCE, used, e.name))
        summary.already += len(eval_trial.eval_data) - len(todo)
        if not todo:
            continue
        kept = store.has_adapter(spec.suite, spec.trial_id)  # a damaged folder stops here, before any work
        if not kept and methods.get(spec.method).trains:  # zero-shot trials keep nothing and need nothing
            summary.not_kept.append(spec.trial_id)
            say(f"{spec.trial_id}: no adapter kept (run with --no-save-adapters, or stored before adapters were "
                "kept); skipped")
            continue
        work.append((trial, dataclasses.replace(eval_trial, eval_data=todo), kept, used))
    for trial, eval_trial, kept, used in work:
        summary.evaluated.extend(_evaluate_one(store, trial, eval_trial, kept, used, data_root, say))
    return summary


def _evaluate_one(store, trial, eval_trial, kept: bool, protocol: str, data_root: str, say) -> list[str]:
    import shutil

    from benchmark.runner import evaluate_saved
    from benchmark.scheduler.core import cap_threads

    cap_threads(trial.spec)  # the thread count the trial computed with
    folder = store.fetch_adapter(trial.spec.suite, trial.spec.trial_id) if kept else None
    try:
        result = evaluate_saved(trial, eval_trial, folder, data_root)
    finally:
        if folder is not None and not store.loc.local:  # a download of an object store's folder
            shutil.rmtree(folder, ignore_errors=True)
    store.write_eval(result, SOURCE, protocol)
    lines = [f"{trial.spec.trial_id} {m.eval_data} {protocol}: {m.metric} {m.value:.2f} (n={m.n_examples})"
             for m in result.metrics]
    for line in lines:
        say(line)
    return lines
