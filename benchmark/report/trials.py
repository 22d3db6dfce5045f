"""From store rows to one Trial per trial_id: what it ran, its test and dev numbers, its metadata.

The store is long format (one row per trial x eval dataset x metric x split); the trial's metadata
repeats on every row, so the first row carries it. Rows with split "dev" are the selection split
(early stopping, learning-rate search): they are kept apart in `dev_values` and never shown as a
result. A null split (files written before schema version 2) means test.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field

import pandas as pd

# Spelling of the masked-LM adaptation stages in labels ("full + DAPT+TAPT"), and the published
# method names the DAPT paper gives the same pipelines (suites/baselines/pt_unipelt.yaml).
ADAPT_LABELS = {"dapt": "DAPT", "tapt": "TAPT"}
# Grid axes that name the low-resource K: the paper's K stays the table's K in an embedded rehearsal,
# where the training cap of `run --embedded` may have lowered max_train_examples.
K_AXES = ("train.max_train_examples", "k", "K")
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
    k: int | None  # low-resource K (train examples) when the grid sweeps it; None otherwise
    eval_data: list[str]
    values: dict  # (eval_data, metric) -> test value
    dev_values: dict  # (eval_data, metric) -> best dev value (selection only, never a result)
    trainable_params: int | None
    total_params: int | None
    spec: dict
    meta: dict = field(default_factory=dict)

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


def _k(cell: dict, train: dict) -> int | None:
    for axis in K_AXES:
        if axis in cell:
            digits = re.findall(r"\d+", str(cell[axis]))
            return int(digits[-1]) if digits else _int(train.get("max_train_examples"))
    return None


def _split(value) -> str:
    return "test" if is_null(value) else str(value)


def _own_training_split(train_data: str, eval_data: list[str]) -> bool:
    """Whether train_data is the training split of one of the eval datasets: the same name, or a catalogue
    entry reading the same files (format and path) as the eval entry, e.g. cola-train and cola."""
    if train_data in eval_data:
        return True
    from benchmark.registry import catalogue

    entries = catalogue.datasets()
    train = entries.get(train_data)
    if train is None:
        return False
    return any((e := entries.get(name)) is not None and (e.format, e.path) == (train.format, train.path)
               for name in eval_data)


def collect_trials(frame: pd.DataFrame) -> list[Trial]:
    trials = []
    for trial_id, rows in frame.groupby("trial_id", sort=True):
        first = rows.iloc[0]
        spec = loads(first["spec"])
        train = loads(first["train_config"])
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
        shared = {"train_data": own, "protocol": first["protocol"], **train}
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
            k=_k(cell, train), eval_data=list(dict.fromkeys(eval_data)), values=values, dev_values=dev,
            trainable_params=_int(first["trainable_params"]), total_params=_int(first["total_params"]),
            spec=spec, meta={k: first[k] for k in first.index}))
    return trials


def dataset_families(frame: pd.DataFrame) -> dict[str, str]:
    known = frame[frame["eval_data"].notna() & frame["eval_family"].notna()]
    return dict(zip(known["eval_data"], known["eval_family"]))
