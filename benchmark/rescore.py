"""`peft-bench rescore SUITE --protocol P`: the stored outputs of a suite's trials, extracted and scored again.

For every trial of the plan stored as ok and every eval set with an answer rule (DatasetEntry.answer: the
generation tasks), the stored predictions' outputs go through evaluation/extract.py under protocol P; the new
extracted answers, correctness and accuracy are stored as source=rescore rows beside the trial's own
(benchmark/store/evals.py), with the same outputs, prompts and gold answers. No model is loaded: seconds per
suite. Eval sets without an answer rule (classification, extractive QA: their model scores the outputs
directly) are skipped with one line each; a record already stored is skipped.
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


def rescore_suite(suite: str, filters: list[str], embedded: bool, results: str, protocol: str,
                  say: Callable[[str], None] = print) -> RescoreSummary:
    from benchmark.planner import plan
    from benchmark.registry.spec import PROTOCOLS
    from benchmark.store import Store
    from benchmark.store.fs import locate

    if protocol not in PROTOCOLS:
        raise UserError(f"--protocol: got {protocol!r}; allowed: {', '.join(PROTOCOLS)}")
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
            elif store.eval_stored(spec.suite, spec.trial_id, SOURCE, protocol, entry.name):
                summary.already += 1
            else:
                line = _rescore_one(store, spec, entry, rows, protocol)
                summary.rescored.append(line)
                say(line)
    return summary


def _rescore_one(store, spec, entry, rows, protocol: str) -> str:
    from benchmark import metrics
    from benchmark.evaluation.extract import extract_answer, is_correct
    from benchmark.result import Metric, Prediction, TrialResult

    mine = rows[(rows["eval_data"] == entry.name) & (rows["split"].fillna("test") == "test")]
    before = mine.iloc[0] if len(mine) else None
    stored = store.read_predictions(spec.suite, spec.trial_id, entry.name)
    predictions = []
    for row in stored.itertuples(index=False):
        extracted = extract_answer(entry, row.output, protocol)
        predictions.append(Prediction(id=row.id, prompt=row.prompt, output=row.output, extracted=extracted,
                                      gold=row.gold, correct=is_correct(entry, extracted, row.gold, protocol)))
    metric = Metric(eval_data=entry.name, task_family=entry.task_family,
                    metric=before["metric"] if before is not None else "accuracy",
                    value=metrics.percent_true([p.correct for p in predictions]), n_examples=len(predictions))
    decoding = json.loads(before["decoding"]) if before is not None and isinstance(before["decoding"], str) else {}
    result = TrialResult(spec=spec, metrics=[metric], predictions={entry.name: predictions},
                         decoding={entry.name: {**decoding, "protocol": protocol,
                                                "rescored_from": before["protocol"] if before is not None else None}},
                         trainable_params=_int(before, "trainable_params"), total_params=_int(before, "total_params"))
    store.write_eval(result, SOURCE, protocol)
    was = f"{before['value']:.2f} ({before['protocol']})" if before is not None else "?"
    return f"{spec.trial_id} {entry.name}: {metric.metric} {was} -> {metric.value:.2f} ({protocol})"


def _int(row, column: str) -> int | None:
    import pandas as pd

    return None if row is None or pd.isna(row[column]) else int(row[column])
