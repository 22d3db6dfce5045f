"""`peft-bench rescore SUITE [--protocol P] [--quirk NAME=on|off ...] [--ledger]`: stored outputs scored again.

For every trial of the plan stored as ok and every eval set with an answer rule (DatasetEntry.answer: the
generation tasks), the stored predictions' outputs go through evaluation/extract.py under protocol P (default: the
trial's) with the trial's quirk switches and the given ones on top; the new extracted answers, correctness and
accuracy are stored as source=rescore rows beside the trial's own (benchmark/store/evals.py), under the label of
that protocol and switches (registry/quirks.label: "llm-adapters.aqua_first_letter-off"), with the same outputs,
prompts and gold answers. `--ledger`: every trial run under its protocol's defaults (no switches) is rescored once
per extraction quirk, with that quirk flipped: the quirk ledger's extraction rows (report/quirks.py), no training.
No model is loaded: seconds per suite. Eval sets without an answer rule (classification, extractive QA: their model
scores the outputs directly) are skipped with one line each; a record already stored is skipped.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from benchmark.errors import UserError

SOURCE = "rescore"


@dataclass
class RescoreSummary:
    rescored: list[str] = field(default_factory=list)  # "trial_id eval_data: before -> after" lines
    already: int = 0
    no_extraction: set[str] = field(default_factory=set)  # eval sets without an answer rule
    not_run: int = 0

    def line(self) -> str:
        return (f"{len(self.rescored)} rescored, {self.already} already stored, {self.not_run} trials not stored as ok"
                + (f"; no extraction to redo for {', '.join(sorted(self.no_extraction))}" if self.no_extraction else ""))


def parse_quirk_args(values: list[str] | None) -> dict[str, bool]:
    """--quirk NAME=on|off (repeatable) -> {name: bool}; a one-line UserError otherwise."""
    from benchmark.registry.quirks import parse_switches

    switches = {}
    for value in values or []:
        name, sep, state = value.partition("=")
        if not sep:
            raise UserError(f"--quirk: got {value!r}; allowed: NAME=on or NAME=off")
        try:
            switches.update(parse_switches({name: state}, field="--quirk"))
        except ValueError as err:
            raise UserError(str(err)) from None
    return switches


def targets(spec, protocol: str | None, switches: dict[str, bool], ledger: bool) -> list[dict[str, bool]]:
    """The switches (against the trial's own protocol) to rescore this trial under: only extraction quirks can
    change without a model, so the others keep the trial's state (registry/quirks.replay)."""
    from benchmark.registry.quirks import of_stage, replay

    own = spec.eval.protocol, spec.eval.quirks
    if ledger:
        if spec.eval.quirks:  # a quirk variant: the ledger compares against the faithful trials only
            return []
        return [replay(*own, own[0], {q.name: not spec.eval.quirk_on(q.name)}, ("extraction",))
                for q in of_stage("extraction")]
    return [replay(*own, protocol or own[0], {**own[1], **switches}, ("extraction",))]


def rescore_suite(suite: str, filters: list[str], embedded: bool, results: str, protocol: str | None,
                  say: Callable[[str], None] = print, switches: dict[str, bool] | None = None,
                  ledger: bool = False) -> RescoreSummary:
    from benchmark.planner import plan
    from benchmark.registry.quirks import label
    from benchmark.registry.spec import PROTOCOLS
    from benchmark.store import Store
    from benchmark.store.fs import locate

    if protocol is not None and protocol not in PROTOCOLS:
        raise UserError(f"--protocol: got {protocol!r}; allowed: {', '.join(PROTOCOLS)}")
    if protocol is None and not switches and not ledger:
        raise UserError("rescore: nothing to change; allowed: --protocol P, --quirk NAME=on|off or --ledger")
    _, trials = plan(suite, filters, embedded=embedded)
    locate(results)
    store = Store(results)
    summary = RescoreSummary()
    stored = {name: store.read([name]) for name in {trial.spec.suite for trial in trials}}
    for trial in trials:
        spec = trial.spec
        frame = stored[spec.suite]
        rows = frame[(frame["trial_id"] == spec.trial_id) & (frame["status"] == "ok")]
        if rows.empty:
            summary.not_run += 1
            continue
        for entry in trial.eval_data:
            if entry.answer is None:
                if entry.name not in summary.no_extraction:
                    say(f"{entry.name}: a {entry.task_family} eval set has no answer extraction to redo; skipped")
                summary.no_extraction.add(entry.name)
                continue
            for target_switches in targets(spec, protocol, switches or {}, ledger):
                name = label(spec.eval.protocol, target_switches)
                if store.eval_stored(spec.suite, spec.trial_id, SOURCE, name, entry.name):
                    summary.already += 1
                else:
                    line = _rescore_one(store, spec, entry, rows, spec.eval.protocol, target_switches)
                    summary.rescored.append(line)
                    say(line)
    return summary


def _rescore_one(store, spec, entry, rows, protocol: str, switches: dict[str, bool]) -> str:
    from benchmark import metrics
    from benchmark.evaluation.extract import extract_answer, is_correct
    from benchmark.registry.quirks import label
    from benchmark.result import Metric, Prediction, TrialResult

    name = label(protocol, switches)
    mine = rows[(rows["eval_data"] == entry.name) & (rows["split"].fillna("test") == "test")]
    before = mine.iloc[0] if len(mine) else None
    stored = store.read_predictions(spec.suite, spec.trial_id, entry.name)
    predictions = []
    for row in stored.itertuples(index=False):
        extracted = extract_answer(entry, row.output, protocol, switches)
        predictions.append(Prediction(id=row.id, prompt=row.prompt, output=row.output, extracted=extracted,
                                      gold=row.gold, correct=is_correct(entry, extracted, row.gold, protocol)))
    metric = Metric(eval_data=entry.name, task_family=entry.task_family,
                    metric=before["metric"] if before is not None else "accuracy",
                    value=metrics.percent_true([p.correct for p in predictions]), n_examples=len(predictions))
    decoding = json.loads(before["decoding"]) if before is not None and isinstance(before["decoding"], str) else {}
    result = TrialResult(spec=spec, metrics=[metric], predictions={entry.name: predictions},
                         decoding={entry.name: {**decoding, "protocol": protocol, "quirks": name,
                                                "rescored_from": before["protocol"] if before is not None else None}},
                         trainable_params=_int(before, "trainable_params"), total_params=_int(before, "total_params"))
    store.write_eval(result, SOURCE, name)
    was = f"{before['value']:.2f} ({before['protocol']})" if before is not None else "?"
    return f"{spec.trial_id} {entry.name}: {metric.metric} {was} -> {metric.value:.2f} ({name})"


def _int(row, column: str) -> int | None:
    import pandas as pd

    return None if row is None or pd.isna(row[column]) else int(row[column])
