"""Which pending trials train together as one co-trained group (train/cotrain.py) and which alone.

Trials may share a frozen base when they load the same weights the same way (model source, dtype, adapt stages,
resources) for the same kind of task, and each uses a method that declares it leaves the base untouched
(`Method.co_trains`) without gradient checkpointing (whose recompute would replay the members' dropout streams out
of order). Everything else runs alone, as before. `--co-train`: `off` (every trial alone), `auto` (the default:
groups of up to AUTO_MEMBERS; on a GPU the runner splits a group further where a probe step says it would not fit
in memory), or a number K (groups of at most K).

A group is one scheduler task with one trial's resources: the shared base is loaded once and each member adds only
its adapter, optimizer state and activations. Groups are cut as evenly as K allows (9 trials at K 8: 5 and 4), in
plan order, so the same pending trials always form the same groups.
"""

from __future__ import annotations

import math

from benchmark.errors import UserError
from benchmark.registry.spec import TrialSpec

AUTO_MEMBERS = 8  # auto's largest group: measured on 2 CPU cores, 8 mixed members train 8x faster than alone
CO_TRAIN_FORMS = "auto, off, or a whole number of members from 1 to 64"


def parse_co_train(value: str | int | None) -> int:
    """The largest group: 1 for `off`, AUTO_MEMBERS for `auto` (or None), else K; a UserError otherwise."""
    if value is None or value == "auto":
        return AUTO_MEMBERS
    if value == "off":
        return 1
    try:
        members = int(value)
    except (TypeError, ValueError):
        members = 0
    if str(members) != str(value).strip() or not 1 <= members <= 64:
        raise UserError(f"--co-train: got {value!r}; allowed: {CO_TRAIN_FORMS}")
    return members


def group_key(spec: TrialSpec) -> tuple | None:
    """What members of one group share; None: the trial trains alone."""
    from benchmark import methods
    from benchmark.planner import resolve

    if spec.train.gradient_checkpointing or not methods.get(spec.method).co_trains:
        return None
    trial = resolve(spec)
    stages = tuple(repr(stage) for stage in spec.adapt)
    return (trial.model.source, trial.model.model_family, spec.dtype, stages, trial.task.kind,
            repr(spec.resources), repr(sorted(spec.catalogue.items())) if spec.catalogue else "")


def form(specs: list[TrialSpec], most: int) -> list[list[TrialSpec]]:
    """The pending specs as scheduling units: groups of 2..most that share a key, the rest alone; plan order kept
    (a unit sits where its first member was)."""
    if most <= 1:
        return [[spec] for spec in specs]
    by_key: dict[tuple, list[TrialSpec]] = {}
    units: list[list[TrialSpec] | tuple] = []
    for spec in specs:
        key = group_key(spec)
        if key is None:
            units.append([spec])
            continue
        if key not in by_key:
            by_key[key] = []
            units.append(key)
        by_key[key].append(spec)
    formed: list[list[TrialSpec]] = []
    for unit in units:
        if isinstance(unit, list):
            formed.append(unit)
            continue
        members = by_key[unit]
        count = math.ceil(len(members) / most)
        size, extra = divmod(len(members), count)
        start = 0
        for i in range(count):
            end = start + size + (1 if i < extra else 0)
            formed.append(members[start:end])
            start = end
    return formed
