"""From store rows to one Trial per trial_id: what it ran, its test and dev numbers, its metadata.

The store is long format (one row per trial x eval dataset x metric x split); the trial's metadata
repeats on every row, so the first row carries it. Rows with split "dev" are the selection split
(early stopping, learning-rate search): they are kept apart in `dev_values` and never shown as a
result. A null split (files written before schema version 2) means test.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import pandas as pd

from benchmark.registry import catalogue
from benchmark.registry.quirks import label as quirk_label
from benchmark.registry.quirks import parse_switches

# Spelling of the masked-LM adaptation stages in labels ("full + DAPT+TAPT"), and the published
# method names the DAPT paper gives the same pipelines (suites/baselines/pt_unipelt.yaml).
ADAPT_LABELS = {"dapt": "DAPT", "tapt": "TAPT"}
TASK_OWN_DATA = "the task's own"


def is_null(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def loads(text) -> dict | list:
    return {} if is_null(text) else json.loads(text)


def _int(value) -> int | None:
    return None if is_null(value) else int(value)


@dataclass
class Trial:
    """One trial, from the first of its rows (the metadata repeats on every row)."""

    trial_id: str
    suite: str
    status: str
    error: str
    model: str
    stands_for: str | None  # the grid's model an embedded rehearsal's tiny model replaced
    method: str
    args: dict
    adapt: tuple[str, ...]  # masked-LM stages before fine-tuning, in order: ("dapt", "tapt")
    shared: dict  # train data, protocol and train settings except seed (and lr, see selection.py)
    learning_rate: float | None
    seed: int | None
    k: int | None  # low-resource K: train_examples when the suite sweeps it (see collect_trials); None otherwise
    eval_data: list[str]
    values: dict  # (eval_data, metric) -> test value
    dev_values: dict  # (eval_data, metric) -> best dev value (selection only, never a result)
    trainable_params: int | None
    total_params: int | None
    spec: dict
    meta: dict = field(default_factory=dict)
    train_examples: int | None = None  # the examples it trained on when capped (the stored spec); None: all

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def adapt_label(self) -> str:
        return "+".join(ADAPT_LABELS.get(k, k.upper()) for k in self.adapt)

    @property
    def method_label(self) -> str:
        """'lora (r=8)', 'full + DAPT+TAPT': the method, its arguments and its adaptation stages."""
        text = self.method + (f" ({arg_text(self.args)})" if self.args else "")
        return text + (f" + {self.adapt_label}" if self.adapt else "")

    @property
    def model_label(self) -> str:
        return f"{self.stands_for} (as {self.model})" if self.stands_for else self.model

    @property
    def published_method(self) -> str:
        """The method name a published row would use: full + DAPT+TAPT is the DAPT paper's dapt_tapt."""
        if not self.adapt:
            return self.method
        stages = "_".join(self.adapt)
        return stages if self.method == "full" else f"{self.method}+{stages}"

    def row_key(self, with_lr: bool) -> tuple:
        shared = dict(self.shared, learning_rate=self.learning_rate) if with_lr else self.shared
        return (self.model, self.stands_for, self.method, json.dumps(self.args, sort_keys=True), self.adapt,
                self.k, json.dumps(shared, sort_keys=True, default=str))


def arg_text(args: dict) -> str:
    return ", ".join(f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in sorted(args.items()))


def _adapt(spec: dict) -> tuple[str, ...]:
    stages = spec.get("adapt") or []
    return tuple(str(s.get("kind", "?")) if isinstance(s, dict) else str(s) for s in stages)


def _train_examples(spec: dict, train: dict) -> tuple[int | None, int | None]:
    """(train.max_train_examples, how many of them it trained on): the cap less the val_set_size held out of it
    when no dev dataset is given (the runner samples, then holds out); (None, None) when uncapped. A low-resource
    suite and its embedded rehearsal set both so that the difference is the paper's K (K + 1,000 dev, rehearsed
    as K + 200)."""
    cap = _int(train.get("max_train_examples"))
    if cap is None:
        return None, None
    held_out = 0 if spec.get("dev_data") else (_int(train.get("val_set_size")) or 0)
    return cap, cap - held_out


def _mark_low_resource(trials: list[Trial], caps: dict[str, int | None]) -> None:
    """A suite whose trials are capped at several training sizes sweeps the low-resource K: each K (the examples
    trained on) is a table of its own. One cap for the whole suite (`run --embedded`'s training cap, a smoke
    run) is not a K, even where val_set_size differs by method."""
    suite_caps: dict[str, set] = {}
    for trial in trials:
        if caps[trial.trial_id] is not None:
            suite_caps.setdefault(trial.suite, set()).add(caps[trial.trial_id])
    for trial in trials:
        trial.k = trial.train_examples if len(suite_caps.get(trial.suite, ())) > 1 else None


def _split(value) -> str:
    return "test" if is_null(value) else str(value)


def _own_training_split(train_data: str, eval_data: list[str]) -> bool:
    """Whether train_data is the training split of one of the eval datasets: the same name, or a catalogue
    entry reading the same files (format and path) as the eval entry (a task's -train entry and its eval entry)."""
    if train_data in eval_data:
        return True
    entries = catalogue.datasets()
    train = entries.get(train_data)
    if train is None:
        return False
    return any((e := entries.get(name)) is not None and (e.format, e.path) == (train.format, train.path)
               for name in eval_data)


def _protocol_label(protocol, spec: dict):
    """The protocol with the trial's quirk switches ("llm-adapters.dropout_at_eval-on"): a quirk variant is a row of
    its own, never a seed of the faithful trial's row. A switch this version does not know: the stored protocol."""
    switches = (spec.get("eval") or {}).get("quirks")
    if not switches or is_null(protocol):
        return protocol
    try:
        return quirk_label(str(protocol), parse_switches(switches))
    except (KeyError, ValueError):
        return protocol


def collect_trials(frame: pd.DataFrame) -> list[Trial]:
    trials = []
    caps: dict[str, int | None] = {}  # trial_id -> train.max_train_examples
    for trial_id, rows in frame.groupby("trial_id", sort=True):
        first = rows.iloc[0]
        spec = loads(first["spec"])
        train = loads(first["train_config"])
        caps[str(trial_id)], train_examples = _train_examples(spec, train)  # before val_set_size leaves the row key
        seed = train.pop("seed", None)  # seeds of the same configuration share a cell (mean ± std)
        lr = train.pop("learning_rate", None)  # candidates of one lr search share a cell (selection.py)
        cell = loads(first["cell"]) if "cell" in first.index else {}
        cell = cell if isinstance(cell, dict) else {}
        # An embedded rehearsal (`run --embedded`) runs a tiny twin in place of the grid's model: name both,
        # so llama-7b's and llama-13b's rehearsals (both tiny-llama) stay apart and say what they stand for.
        grid_model = cell.get("model")
        stands_for = str(grid_model) if grid_model and grid_model != first["model"] else None
        listed = list(spec.get("eval_data") or [])
        # A task trained on its own training split (GLUE, the DAPT tasks, SQuAD: train_data is the eval dataset)
        # shares a row with the other tasks of the same method; only a separate training set tells rows apart.
        own_task = _own_training_split(str(first["train_data"]), listed)
        if own_task:  # how much of it is held out as dev is the task's protocol (RTE: 500), not a row of its own
            train.pop("val_set_size", None)
        own = TASK_OWN_DATA if own_task else first["train_data"]
        shared = {"train_data": own, "protocol": _protocol_label(first["protocol"], spec), **train}
        shared = {k: None if is_null(v) else v for k, v in shared.items()}
        ok = first["status"] == "ok"
        scored = rows[rows["metric"].notna() & rows["value"].notna()] if ok else rows.iloc[0:0]
        values, dev = {}, {}
        for r in scored.itertuples():
            (dev if _split(getattr(r, "split", None)) == "dev" else values)[(r.eval_data, r.metric)] = float(r.value)
        eval_data = listed + [d for d, _ in values if d not in listed]
        trials.append(Trial(
            trial_id=str(trial_id), suite=str(first["suite"]), status=str(first["status"]),
            error="" if is_null(first["error"]) else str(first["error"]),
            model=str(first["model"]), stands_for=stands_for, method=str(first["method"]),
            args=loads(first["method_args"]), adapt=_adapt(spec), shared=shared,
            learning_rate=None if is_null(lr) else float(lr), seed=None if is_null(seed) else int(seed),
            k=None, train_examples=train_examples, eval_data=list(dict.fromkeys(eval_data)), values=values, dev_values=dev,
            trainable_params=_int(first["trainable_params"]), total_params=_int(first["total_params"]),
            spec=spec, meta={k: first[k] for k in first.index}))
    _mark_low_resource(trials, caps)
    return trials


def dataset_families(frame: pd.DataFrame) -> dict[str, str]:
    known = frame[frame["eval_data"].notna() & frame["eval_family"].notna()]
    return dict(zip(known["eval_data"], known["eval_family"]))
