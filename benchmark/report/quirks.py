"""The quirk ledger: how much each protocol quirk moves a study's numbers, measured on paired predictions.

A study is the protocol of its faithful trials (eval.quirks {}: the protocol as its reference ran it). A quirk is
measured against a faithful trial in one of two ways:
  - generation and training quirks: a variant trial whose spec is the faithful one's but for eval.quirks, which
    switches exactly that one quirk (suites/llm_adapters/quirks.yaml runs them);
  - extraction quirks: a rescore record of the faithful trial (store/evals.py, source rescore) whose protocol is the
    label "PROTOCOL.NAME-on|off" (registry/quirks.label): the faithful outputs read again with that quirk switched.
The two sides' stored predictions are matched by prediction id, so each example counts once with the quirk on and
once with it off. Per quirk and dataset, pooled over the model x method pairs measured on that dataset:
  effect     mean over the paired examples of (correct with the quirk on) - (correct with it off), in accuracy
             points, from the verdicts evaluation stored (the tables' accuracy);
  interval   95% percentile bootstrap of the effect: each pair's examples resampled with replacement, an example's
             two sides together, every pair keeping its size (the pooled effect weighs pairs by their size too);
             a fixed generator, so a rebuilt report shows the same interval;
  flips      examples correct with the quirk off and wrong with it on (correct->wrong), and the reverse.
So effect x n / 100 = wrong->correct - correct->wrong. Under the paired effect, each quirk's section lists the
numbers the tables would show with the quirk on and off (the stored scores of both sides), per model x method.
"""

from __future__ import annotations

import functools
import json
import re
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from benchmark.registry import catalogue
from benchmark.registry.quirks import QUIRKS, Quirk, acts_on, default_on, parse_label, parse_switches
from benchmark.report import groups
from benchmark.report.trials import Trial, is_null
from benchmark.report.uncertainty import RESAMPLES, SEED

RESCORE = "rescore"  # the source of rescore records (benchmark/rescore.py; the report may not import it)
NOT_MEASURED = "not measured"
CSV = "quirks.csv"
_DISPLAY_ONLY = ("trial_id", "resources", "cell", "suite_version")  # never part of what a variant changes


@dataclass
class Pair:
    """One model x method measured on one dataset with a quirk on and off, its predictions matched by id."""

    quirk: str
    protocol: str  # the study: the faithful trial's protocol
    dataset: str
    label: str  # "model / method", as the tables name the row
    trials: tuple[str, str]  # (faithful trial, variant trial or rescore label): a stable order for the bootstrap
    on: np.ndarray  # per paired example: correct with the quirk on
    off: np.ndarray  # ... and with it off
    on_value: float  # the stored score of each side: the number a table would show
    off_value: float


@dataclass
class Effect:
    effect: float  # accuracy points, quirk on minus off
    low: float
    high: float
    correct_to_wrong: int
    wrong_to_correct: int
    n: int  # paired predictions
    pairs: int  # model x method pairs pooled

    @property
    def text(self) -> str:
        return f"{self.effect:+.1f}"

    @property
    def interval_text(self) -> str:
        return f"95% CI [{self.low:+.1f}, {self.high:+.1f}]"

    @property
    def flips_text(self) -> str:
        return (f"flips {self.correct_to_wrong} correct→wrong, {self.wrong_to_correct} wrong→correct "
                f"(n={self.n}, {self.pairs} pair{'s' if self.pairs != 1 else ''})")


@dataclass
class NumbersRow:
    label: str  # model / method
    cells: list[str]  # per dataset of the study: "on 45.0 / off 40.0" (seeds: their means), or "-"


@dataclass
class QuirkRow:
    quirk: Quirk
    default: bool  # on in the study's protocol
    effects: dict[str, Effect]  # dataset -> pooled effect; a dataset absent is not measured
    numbers: list[NumbersRow] = field(default_factory=list)
    # dataset -> why the quirk cannot change it (registry/quirks.acts_on: another answer rule), where not measured
    inert: dict[str, str] = field(default_factory=dict)

    @property
    def measured(self) -> bool:
        return bool(self.effects)


@dataclass
class Study:
    protocol: str
    datasets: list[str]
    rows: list[QuirkRow]

    @property
    def page(self) -> str:
        return f"quirks-{re.sub(r'[^A-Za-z0-9_-]+', '_', self.protocol)}.html"

    @property
    def title(self) -> str:
        return f"Protocol quirks: {self.protocol}"


# ---- pooling ----------------------------------------------------------------------------------

def pooled_effect(pairs: list[Pair], resamples: int = RESAMPLES, seed: int = SEED) -> Effect:
    """The effect of `pairs` (one quirk, one dataset) with its paired bootstrap interval and flips."""
    ordered = sorted(pairs, key=lambda p: (p.label, p.trials))
    diffs = [p.on.astype(np.int64) - p.off.astype(np.int64) for p in ordered]
    n = sum(len(d) for d in diffs)
    if n == 0:
        raise ValueError(f"quirk {pairs[0].quirk} on {pairs[0].dataset}: no paired predictions to pool")
    rng = np.random.default_rng(seed)
    totals = np.zeros(resamples)
    for d in diffs:  # within each pair: an example's on and off verdicts are drawn together
        totals += d[rng.integers(0, len(d), size=(resamples, len(d)))].sum(axis=1)
    low, high = np.percentile(100.0 * totals / n, [2.5, 97.5])
    return Effect(effect=100.0 * sum(int(d.sum()) for d in diffs) / n, low=float(low), high=float(high),
                  correct_to_wrong=int(sum((d == -1).sum() for d in diffs)),
                  wrong_to_correct=int(sum((d == 1).sum() for d in diffs)), n=n, pairs=len(ordered))


def paired(on: pd.DataFrame, off: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The verdicts of the examples both sides predicted (matched by id; a missing verdict counts as wrong)."""
    def verdicts(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[["id", "correct"]].drop_duplicates("id").assign(correct=lambda f: f["correct"].fillna(False))
    both = verdicts(on).merge(verdicts(off), on="id", suffixes=("_on", "_off"))
    return both["correct_on"].to_numpy(dtype=bool), both["correct_off"].to_numpy(dtype=bool)


# ---- finding the faithful trials and what measures a quirk against them ---------------------------

def _protocol(trial: Trial) -> str | None:
    value = (trial.spec.get("eval") or {}).get("protocol") or trial.shared.get("protocol")
    return None if is_null(value) else str(value)


def _switches(trial: Trial) -> dict[str, bool] | None:
    """The trial's quirk switches; None for a quirk this version does not know (outside the ledger)."""
    try:
        return parse_switches((trial.spec.get("eval") or {}).get("quirks"))
    except ValueError:
        return None


def _one_switch(protocol: str, switches: dict[str, bool]) -> str | None:
    """The quirk a variant measures: exactly one switch away from its protocol's default, else None."""
    changed = [name for name, on in switches.items() if on != default_on(protocol, name)]
    return changed[0] if len(changed) == 1 and len(switches) == 1 else None


def _spec_key(spec: dict) -> str:
    """The spec less its quirk switches and display-only fields: a faithful trial and its variants share it."""
    data = {k: v for k, v in spec.items() if k not in _DISPLAY_ONLY}
    data["eval"] = {k: v for k, v in (data.get("eval") or {}).items() if k != "quirks"}
    return json.dumps(data, sort_keys=True, default=str)


def _stored_score(values: dict, dataset: str, predictions: pd.DataFrame) -> float:
    """The side's stored accuracy on the dataset; the share its predictions got right where none is stored."""
    value = values.get((dataset, "accuracy"))
    return float(value) if value is not None else 100.0 * float(predictions["correct"].fillna(False).mean())


@dataclass
class _Side:
    """One side of a measurement: whose predictions, and its stored scores."""

    name: str  # trial id or rescore label
    read: Callable[[str], pd.DataFrame]  # dataset -> stored predictions
    values: dict  # (dataset, metric) -> stored test value
    datasets: list[str]


def _pair(quirk: str, protocol: str, faithful: Trial, base: _Side, other: _Side, dataset: str) -> Pair | None:
    """The faithful trial (`base`) against a variant or rescore record (`other`) on one dataset; the faithful side
    has the quirk as its protocol's default, the other the reverse. None without predictions on both sides."""
    try:
        mine, theirs = base.read(dataset), other.read(dataset)
    except (FileNotFoundError, ValueError):  # no stored predictions on one side: nothing to pair
        return None
    if default_on(protocol, quirk):  # the faithful trial has it on; the variant or rescore record switched it off
        (on_side, on), (off_side, off) = (base, mine), (other, theirs)
    else:
        (on_side, on), (off_side, off) = (other, theirs), (base, mine)
    on_correct, off_correct = paired(on, off)
    if not len(on_correct):
        return None
    return Pair(quirk=quirk, protocol=protocol, dataset=dataset,
                label=f"{faithful.model_label} / {faithful.method_label}", trials=(faithful.trial_id, other.name),
                on=on_correct, off=off_correct, on_value=_stored_score(on_side.values, dataset, on),
                off_value=_stored_score(off_side.values, dataset, off))


def _trial_side(store, trial: Trial) -> _Side:
    # cached: a faithful trial is paired with every variant and rescore record of it, and read once per dataset
    read = functools.cache(lambda d: store.read_predictions(trial.suite, trial.trial_id, d))
    return _Side(trial.trial_id, read, trial.values, list(trial.eval_data))


def _rescore_sides(store, evals: pd.DataFrame) -> dict[str, list[tuple[str, dict[str, bool], _Side]]]:
    """trial_id -> [(protocol, switches, side)] of its rescore records (test split), labels parsed."""
    if evals.empty:
        return {}
    rows = evals[(evals["source"] == RESCORE) & evals["split"].fillna("test").eq("test") & evals["value"].notna()]
    found: dict[str, list] = {}
    for (suite, trial_id, label), records in rows.groupby(["suite", "trial_id", "protocol"], sort=True):
        try:
            protocol, switches = parse_label(str(label))
        except ValueError:  # a record under a name this version does not know: not part of the ledger
            continue
        values = {(r.eval_data, r.metric): float(r.value) for r in records.itertuples()}

        def read(dataset, suite=str(suite), trial_id=str(trial_id), label=str(label)):
            return store.read_eval_predictions(suite, trial_id, RESCORE, label, dataset)
        found.setdefault(str(trial_id), []).append(
            (protocol, switches, _Side(str(label), read, values, list(dict.fromkeys(records["eval_data"])))))
    return found


def measure(store, trials: list[Trial], evals: pd.DataFrame) -> list[Pair]:
    """Every paired measurement in the results: variant trials and rescore records against their faithful trial.
    `trials`: the report's (collect_trials of store.read); `evals`: store.read_evals of the same suites."""
    trials = [t for t in trials if t.ok]
    faithful: dict[str, Trial] = {}
    for trial in trials:
        if _switches(trial) == {} and _protocol(trial) is not None:
            faithful.setdefault(_spec_key(trial.spec), trial)
    pairs: list[Pair] = []
    sides = {trial.trial_id: _trial_side(store, trial) for trial in faithful.values()}

    def add(quirk: str, base: Trial, other: _Side, protocol: str):
        base_side = sides[base.trial_id]
        for dataset in [d for d in base.eval_data if d in other.datasets]:
            pair = _pair(quirk, protocol, base, base_side, other, dataset)
            if pair is not None:
                pairs.append(pair)

    for trial in trials:
        switches, protocol = _switches(trial), _protocol(trial)
        base = faithful.get(_spec_key(trial.spec))
        quirk = _one_switch(protocol, switches) if switches and protocol else None
        if quirk is not None and base is not None and base.trial_id != trial.trial_id:
            add(quirk, base, _trial_side(store, trial), protocol)
    by_id = {t.trial_id: t for t in faithful.values()}
    for trial_id, records in _rescore_sides(store, evals).items():
        base = by_id.get(trial_id)
        for protocol, switches, side in records:
            quirk = _one_switch(protocol, switches)
            if base is not None and quirk is not None and protocol == _protocol(base):
                add(quirk, base, side, protocol)
    return pairs


# ---- the studies --------------------------------------------------------------------------------

def _quirks_of(protocol: str, measured: set[str]) -> list[Quirk]:
    """The study's quirks (a reference protocol's own; `strict`, which has none, lists every quirk), and any
    other quirk measured under it, in the registry's order."""
    own = {q.name for q in QUIRKS.values() if q.study == protocol} or set(QUIRKS)
    return [q for q in QUIRKS.values() if q.name in own | measured]


def _numbers(pairs: list[Pair], datasets: list[str]) -> list[NumbersRow]:
    """Per model x method: each dataset's stored score with the quirk on and off (several seeds: their means)."""
    by_label: dict[str, dict[str, list[Pair]]] = {}
    for pair in pairs:
        by_label.setdefault(pair.label, {}).setdefault(pair.dataset, []).append(pair)
    rows = []
    for label in sorted(by_label):
        cells = []
        for dataset in datasets:
            mine = by_label[label].get(dataset)
            if not mine:
                cells.append("-")
                continue
            on, off = statistics.fmean(p.on_value for p in mine), statistics.fmean(p.off_value for p in mine)
            cells.append(f"on {on:.1f} / off {off:.1f}" + (f" (n={len(mine)})" if len(mine) > 1 else ""))
        rows.append(NumbersRow(label, cells))
    return rows


def studies(store, trials: list[Trial], evals: pd.DataFrame) -> list[Study]:
    """One study per protocol whose faithful trials have a quirk measured against them; none without variants."""
    pairs = measure(store, trials, evals)
    found = []
    for protocol in sorted({p.protocol for p in pairs}):
        mine = [p for p in pairs if p.protocol == protocol]
        seen = list(dict.fromkeys(p.dataset for p in mine))
        datasets = [d for d, _ in groups.column_order([(d, None) for d in seen])]
        rows = []
        for quirk in _quirks_of(protocol, {p.quirk for p in mine}):
            of_quirk = [p for p in mine if p.quirk == quirk.name]
            effects = {d: pooled_effect([p for p in of_quirk if p.dataset == d]) for d in datasets
                       if any(p.dataset == d for p in of_quirk)}
            inert = {d: reason for d in datasets if d not in effects and (reason := _inert(quirk.name, d))}
            rows.append(QuirkRow(quirk, default_on(protocol, quirk.name), effects, _numbers(of_quirk, datasets),
                                 inert))
        found.append(Study(protocol, datasets, rows))
    return found


def _inert(quirk: str, dataset: str) -> str | None:
    """Why `quirk` cannot change `dataset` (it acts on other answer rules), or None. A dataset the catalogue does not
    know (a user entry of another session): None, and the cell stays "not measured"."""
    try:
        rule = catalogue.dataset(dataset).answer
    except Exception:  # noqa: BLE001 - unknown here: say nothing rather than guess
        return None
    return None if acts_on(quirk, rule) else f"0 by construction: acts on {', '.join(QUIRKS[quirk].acts_on)} sets only"


def quirks_frame(found: list[Study]) -> pd.DataFrame:
    """The CSV export: one row per study x quirk x dataset (a quirk not measured on it: empty numbers, n 0, and a
    note: "not measured", or why it cannot act there)."""
    columns = ["protocol", "quirk", "stage", "dataset", "effect", "low", "high", "correct_to_wrong",
               "wrong_to_correct", "flips", "n", "pairs", "note"]
    rows = []
    for study in found:
        for row in study.rows:
            for dataset in study.datasets:
                e = row.effects.get(dataset)
                numbers = ([round(e.effect, 4), round(e.low, 4), round(e.high, 4), e.correct_to_wrong,
                            e.wrong_to_correct, e.correct_to_wrong + e.wrong_to_correct, e.n, e.pairs]
                           if e else [None] * 6 + [0, 0])
                note = "" if e else row.inert.get(dataset, NOT_MEASURED)
                rows.append([study.protocol, row.quirk.name, row.quirk.stage, dataset, *numbers, note])
    frame = pd.DataFrame(rows, columns=columns)
    counts = ["correct_to_wrong", "wrong_to_correct", "flips", "n", "pairs"]
    return frame.astype({c: "Int64" for c in counts})  # whole numbers, empty where not measured (never 2.0)
