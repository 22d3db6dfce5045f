"""Which pending trials train together as one co-trained group (train/cotrain.py) and which alone.

Trials may share a frozen base when they load the same weights the same way (model source, dtype, adapt stages,
resources) for the same kind of task, and each uses a method that declares it leaves the base untouched
(`Method.co_trains`) without gradient checkpointing (whose recompute would replay the members' dropout streams out
of order). Everything else runs alone, as before.

`--co-train`: `auto` (the default) groups trials that ask for an accelerator, up to AUTO_MEMBERS a group, where a
trial's small forwards leave the device mostly idle (1.3-2.4% MFU at the protocol's micro-batches of 4 on an H200,
docs/perf/h200-llama-1b.md) and the runner splits a group further when a probe step says it would not fit in
memory; CPU-only trials stay alone under auto: on 2 cores a group of 8 ran at 0.95x the same trials alone (a CPU step
of even a tiny model is bound by arithmetic and memory traffic, not per-call costs: docs/perf/cpu-cotrain.md), and
a group takes one trial's CPUs, which would cut a local run's parallelism. `K` groups any co-trainable trials, CPU
ones included, at most K a group; `off` runs every trial alone.

A group is one scheduler task with one trial's resources: the shared base is loaded once and each member adds only
its adapter, optimizer state and activations. Groups are cut as evenly as the size allows (9 trials at 8: 5 and 4),
in plan order, so the same pending trials always form the same groups.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from benchmark.errors import UserError
from benchmark.registry.spec import TrialSpec

AUTO_MEMBERS = 8  # auto's largest group (the 8 and 16-member measurements; the probe step may cut it)
CO_TRAIN_FORMS = "auto, off, or a whole number of members from 1 to 64"


class CoTrain(NamedTuple):
    most: int  # members a group may have; 1: every trial alone
    cpu: bool  # CPU-only trials are grouped too (an explicit K); auto groups accelerator trials only


AUTO = CoTrain(AUTO_MEMBERS, cpu=False)
OFF = CoTrain(1, cpu=True)


def parse_co_train(value: str | int | None) -> CoTrain:
    """`auto` (or None), `off`, or K; a UserError otherwise."""
    if value is None or value == "auto":
        return AUTO
    if value == "off":
        return OFF
    try:
        members = int(value)
    except (TypeError, ValueError):
        members = 0
    if str(members) != str(value) or not 1 <= members <= 64:
        raise UserError(f"--co-train: got {value!r}; allowed: {CO_TRAIN_FORMS}")
    return CoTrain(members, cpu=True)


def group_key(spec: TrialSpec, cpu: bool = True) -> tuple | None:
    """What members of one group share; None: the trial trains alone (cpu False: so does a trial without GPUs)."""
    from benchmark import methods
    from benchmark.planner import resolve

    if spec.train.gradient_checkpointing or not methods.get(spec.method).co_trains:
        return None
    if not cpu and not spec.resources.gpus:
        return None
    trial = resolve(spec)
    stages = tuple(repr(stage) for stage in spec.adapt)
    return (trial.model.source, trial.model.model_family, spec.dtype, stages, trial.task.kind,
            repr(spec.resources), repr(sorted(spec.catalogue.items())) if spec.catalogue else "")


def form(specs: list[TrialSpec], co_train: CoTrain) -> list[list[TrialSpec]]:
    """The pending specs as scheduling units: groups of 2..most that share a key, the rest alone; plan order kept
    (a unit sits where its first member was)."""
    most = co_train.most
    if most <= 1:
        return [[spec] for spec in specs]
    by_key: dict[tuple, list[TrialSpec]] = {}
    units: list[list[TrialSpec] | tuple] = []
    for spec in specs:
        key = group_key(spec, co_train.cpu)
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
