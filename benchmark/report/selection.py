"""Learning-rate search + seeds: which trials a report cell shows.

Trials that differ only in `train.learning_rate` and `train.seed` form one cell. The rule (the
PT+UniPELT / UniPELT protocol: "best dev configuration reported on test"):

1. Candidates: the learning rates of the cell's trials.
2. Each candidate's dev score: the mean over its ok seeds of the best dev value stored for the
   column's dataset and metric (split "dev"; another dev metric of the same dataset if that one is
   missing).
3. The chosen rate has the highest dev mean (ties: the smaller rate, so the choice is stable).
4. The cell shows the chosen rate's test values: mean ± std over its seeds, n shown.

Dev numbers only select; they are never shown as results. Where a cell has several rates and some
candidate has no dev number at all, nothing can be selected honestly: `selectable` says so and the
table shows one row per rate instead (the learning rate in the row label).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from benchmark.report.trials import Trial


@dataclass
class Candidate:
    learning_rate: float | None
    dev_mean: float | None  # None: no dev number for this column
    n_dev: int
    test: list[float]  # this rate's test values over ok seeds


@dataclass
class Selection:
    """What one report cell shows, and why."""

    values: list[float]  # test values of the chosen rate (one per seed)
    failed: int  # trials of the chosen rate (or of all rates when none ran) that failed on this column
    learning_rate: float | None
    candidates: list[Candidate] = field(default_factory=list)  # more than one: a search took place
    trial_ids: list[str] = field(default_factory=list)  # the chosen rate's trials, for the drill-down

    @property
    def searched(self) -> bool:
        return len(self.candidates) > 1

    def explain(self) -> str:
        """'lr 5e-4 chosen by dev mean 61.2 (n=3) over 2e-4: 58.0 (n=3), 5e-4: 61.2 (n=3)' for a tooltip."""
        if not self.searched:
            return f"lr {_lr(self.learning_rate)}" if self.learning_rate is not None else ""
        parts = ", ".join(f"{_lr(c.learning_rate)}: " + (f"{c.dev_mean:.1f} (n={c.n_dev})" if c.dev_mean is not None
                                                         else "no dev number") for c in self.candidates)
        return f"lr {_lr(self.learning_rate)} chosen by the best mean dev value over seeds; candidates {parts}"


def _lr(value: float | None) -> str:
    return "?" if value is None else f"{value:g}"


def _dev(trial: Trial, dataset: str, metric: str | None) -> float | None:
    """The trial's dev value for a column. The runner stores the dev split under its own name (the
    held-out part of train_data, or dev_data) and scores it with the metric the eval set reports, so
    after an exact match the same metric of any dev split selects, then any dev value (SQuAD's em
    column is selected by the dev F1)."""
    items = sorted(trial.dev_values.items())
    if (dataset, metric) in trial.dev_values:
        return trial.dev_values[(dataset, metric)]
    for accept in (lambda d, m: d == dataset, lambda d, m: m == metric, lambda d, m: True):
        found = next((v for (d, m), v in items if accept(d, m)), None)
        if found is not None:
            return found
    return None


def by_rate(trials: list[Trial]) -> dict[float | None, list[Trial]]:
    groups: dict[float | None, list[Trial]] = {}
    for trial in sorted(trials, key=lambda t: (t.learning_rate is None, t.learning_rate or 0.0, t.seed or 0)):
        groups.setdefault(trial.learning_rate, []).append(trial)
    return groups


def selectable(trials: list[Trial]) -> bool:
    """Whether the trials of one row can share a cell: one rate, or every rate's ok trials carry dev numbers."""
    groups = by_rate(trials)
    if len(groups) <= 1:
        return True
    return all(any(t.dev_values for t in group if t.ok) or not any(t.ok for t in group) for group in groups.values())


def select(trials: list[Trial], dataset: str, metric: str | None) -> Selection:
    """The cell for (dataset, metric) of the row made of `trials` (which must be `selectable`)."""
    relevant = [t for t in trials if dataset in t.eval_data]
    candidates = []
    for rate, group in by_rate(relevant).items():
        ok = [t for t in group if t.ok]
        devs = [v for t in ok if (v := _dev(t, dataset, metric)) is not None]
        candidates.append(Candidate(rate, statistics.fmean(devs) if devs else None, len(devs),
                                    [t.values[(dataset, metric)] for t in ok if (dataset, metric) in t.values]))
    if not candidates:
        return Selection([], 0, None)
    ranked = [c for c in candidates if c.test and (len(candidates) == 1 or c.dev_mean is not None)]
    if not ranked:  # nothing ran on this column: count the failures of every rate
        failed = sum(1 for t in relevant if not t.ok)
        return Selection([], failed, None, candidates if len(candidates) > 1 else [])
    chosen = max(ranked, key=lambda c: (c.dev_mean if c.dev_mean is not None else 0.0, -(c.learning_rate or 0.0)))
    group = [t for t in relevant if t.learning_rate == chosen.learning_rate]
    return Selection(values=chosen.test, failed=sum(1 for t in group if not t.ok), learning_rate=chosen.learning_rate,
                     candidates=candidates if len(candidates) > 1 else [],
                     trial_ids=[t.trial_id for t in group if t.ok and (dataset, metric) in t.values])
