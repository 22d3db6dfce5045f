"""Co-training: several trials' adapters trained on one shared frozen base, one forward and backward per step.

Each member is a solo trial in everything but the forward: its own TrialRun (loop.py: data order, optimizer,
schedule, clipping, step count, early stopping), its own random stream for dropout, its own model tree sharing the
base's weights (routing.py). A group step takes every active member's next optimizer step (the examples solo
training would feed it), lays them out together, runs the shared base once, and weights each member's token losses
by its own step's label tokens, as solo training does; one backward of the members' summed losses gives each member
exactly its own gradients (its adapter only touches its rows; rows never meet). Then each member clips and steps.

Layouts: a base whose attention goes through transformers' registry gets one packed row (every member's examples
back to back, group_attention.py: causal per example, prefix members' virtual key/values in front of their own
examples); any other base gets padded rows (each member's rows at their own width inside the batch's), with prefix
members' virtual key/values as a per-row cache, masked where a row has fewer or none.

A member leaves the group when it is done (its steps, early stopping) or fails (its own error, a non-finite loss);
the others go on. The caller evaluates and stores each member on its own.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from benchmark.metrics import MetricDef
from benchmark.models.attention import base_of, implementation
from benchmark.registry.spec import TrainConfig
from benchmark.train.collate import IGNORE_INDEX, padded_length
from benchmark.train.group_attention import GROUP, Layout, laid_out
from benchmark.train.loop import TrainStats, TrialRun, _autocast, loss_dtype
from benchmark.train.packing import can_pack
from benchmark.train.routing import MemberError, MemberRNG, Route, RoutedBase, routed

log = logging.getLogger(__name__)


@dataclass
class Member:
    """One trial of a group: its model tree (a sharing copy of the base with its method injected) and training."""

    model: torch.nn.Module
    tokenizer: object
    features: list[dict]
    cfg: TrainConfig
    val_features: list[dict] | None = None
    dev_score: Callable | None = None
    dev_metric: MetricDef | None = None
    hook: object | None = None  # the method's decode hook when it feeds virtual key/values (prefix tuning)


@dataclass
class _Active:
    slot: int
    member: Member
    run: TrialRun
    rng: MemberRNG
    rows: list[list[int]] | None = None  # this step's examples, kept so a retried step feeds the same


def train_group(core, members: list[Member], device: str = "cpu", log_every: int = 10,
                max_members: int | None = None) -> list[TrainStats | BaseException]:
    """Train every member; per member its TrainStats, or the exception that ended it. `core` is the base tree the
    members' trees share weights with; it is changed during the call and restored after. CannotCoTrain (routing.py)
    when this group cannot share the base; nothing has trained then. max_members: at most this many train at once,
    the rest in later rounds (None: on CUDA as many as a probe step says fit in free memory; elsewhere all)."""
    most = max_members or members_that_fit(core, members, device)
    if most < len(members):
        return [outcome for start in range(0, len(members), most)
                for outcome in train_group(core, members[start:start + most], device, log_every, most)]
    rngs = [MemberRNG(m.cfg.seed, device) for m in members]
    routing = RoutedBase(core, [base_of(m.model) for m in members], rngs)
    outcomes: list[TrainStats | BaseException | None] = [None] * len(members)
    active: list[_Active] = []
    try:
        for slot, member in enumerate(members):
            try:
                run = TrialRun(member.model, member.tokenizer, member.features, member.cfg, device, log_every,
                               member.val_features, member.dev_score, member.dev_metric)
                active.append(_Active(slot, member, run, rngs[slot]))
            except Exception as error:  # noqa: BLE001  this member's own setup failed
                outcomes[slot] = error
        packed = can_pack(core)
        core.train()
        while active:
            for a in active:
                if a.rows is None:
                    a.rows = a.run.next_step()
            try:
                losses = _step(core, active, packed, device)
            except MemberError as failed:  # that member leaves; the others retry the same step
                leaving = next(a for a in active if a.slot == failed.slot)
                outcomes[leaving.slot] = _close(leaving, failed.error)
                active.remove(leaving)
                continue
            for a in list(active):
                loss, a.rows = losses[a.slot], None
                try:
                    if isinstance(loss, BaseException):
                        raise loss
                    a.run.stats.forwards += 1
                    a.run.finish_step(loss)
                except Exception as error:  # noqa: BLE001  non-finite loss, time budget, dev scoring
                    outcomes[a.slot] = _close(a, error)
                    active.remove(a)
                    continue
                if a.run.done:
                    outcomes[a.slot] = _close(a, None)
                    active.remove(a)
    except BaseException as error:  # the group itself failed: every member still in it fails with it
        for a in active:
            outcomes[a.slot] = _close(a, error)
        if not isinstance(error, Exception):
            raise
    finally:
        routing.remove()
        core.eval()
    return outcomes


def members_that_fit(core, members: list[Member], device: str, headroom: float = 0.9) -> int:
    """How many members' steps fit in the accelerator's free memory at once: one member's first step (forward and
    backward, its own model tree, no update; its random streams untouched) measured at peak, plus its optimizer's
    two moments, against the free memory. Everywhere but CUDA: all of them (no allocator to ask)."""
    if not str(device).startswith("cuda") or len(members) < 2:
        return len(members)
    from benchmark.train.collate import collate

    probe = members[0]
    free, _ = torch.cuda.mem_get_info()
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    features = probe.features[:probe.cfg.batch_size]
    pad_id = probe.tokenizer.pad_token_id if probe.tokenizer.pad_token_id is not None else 0
    batch = {k: v.to(device) for k, v in collate(features, pad_id, "right").items()}
    params = [p for p in probe.model.parameters() if p.requires_grad]
    with torch.random.fork_rng(devices=[torch.cuda.current_device()]), _autocast(core, device):
        probe.model.train()
        probe.model(**batch).loss.backward()
    for p in params:
        p.grad = None
    probe.model.eval()
    per_member = torch.cuda.max_memory_allocated() - before + 2 * sum(p.numel() * p.element_size() for p in params)
    fit = max(1, int(headroom * free // max(per_member, 1)))
    if fit < len(members):
        log.info("co-training: %d members fit in %.1f GiB free (%.2f GiB each on a probe step): rounds of %d",
                 fit, free / 2**30, per_member / 2**30, fit)
    return min(fit, len(members))


def _close(a: _Active, error: BaseException | None) -> TrainStats | BaseException:
    a.run.stop()
    if error is not None:
        return error
    try:
        return a.run.result()
    except Exception as failed:  # noqa: BLE001  e.g. its held-out loss
        return failed


def _step(core, active: list[_Active], packed: bool, device: str) -> dict[int, float | BaseException]:
    """One forward and backward of every active member's step; per member its step loss, or its non-finite-loss error."""
    saved = {a.slot: (a.rng.state.clone(), a.rng.cuda_state) for a in active}
    try:
        caches = {}
        for a in active:
            if a.member.hook is not None:
                try:
                    ids = torch.zeros(1, 1, dtype=torch.long, device=device)
                    caches[a.slot] = a.member.hook.prefill_inputs(a.member.model, ids)["past_key_values"]
                except Exception as error:
                    raise MemberError(a.slot, error) from error
        batch = (_packed_batch if packed else _padded_batch)(active, caches, device)
        with routed(batch["route"]), _autocast(core, device), contextlib.ExitStack() as stack:
            if packed:
                stack.enter_context(implementation(core, GROUP))
                stack.enter_context(laid_out(batch["layout"]))
            logits = core(**batch["inputs"]).logits
        sums = _member_loss_sums(logits, batch)
    except MemberError:
        for a in active:  # the retried step draws the same dropout masks
            a.rng.state, a.rng.cuda_state = saved[a.slot]
        raise
    results: dict[int, float | BaseException] = {}
    total = None
    for a, summed in zip(active, sums):
        n = batch["label_tokens"][a.slot]
        if n == 0:  # every label masked: solo training skips such a step's forwards
            results[a.slot] = 0.0
            continue
        loss = summed / n
        if not torch.isfinite(loss):
            step = a.run.stats.steps + 1
            results[a.slot] = FloatingPointError(f"non-finite loss at step {step}: {loss.item()}")
            continue
        results[a.slot] = loss.item()
        total = loss if total is None else total + loss
    if total is not None:
        total.backward()
    return results


def _member_loss_sums(logits: torch.Tensor, batch: dict) -> list[torch.Tensor]:
    """Each member's summed next-token loss over its own part of the batch, computed part by part: one loss over the
    whole batch's logits would be memory-bound (tens of MB per pass), a member's part stays in cache as a solo
    trial's does. Split, not sliced, so the backward joins the parts' gradients once."""
    route, labels = batch["route"], batch["labels"]
    parts = logits.split(list(route.sizes), dim=route.dim) if len(route.sizes) > 1 else (logits,)
    targets = labels.split(list(route.sizes), dim=route.dim) if len(route.sizes) > 1 else (labels,)
    sums = []
    for part, target in zip(parts, targets):
        # Within a part, position t predicts t + 1; a packed part's last position would predict the next member's
        # first token, whose label is -100 anyway.
        scores = part[:, :-1].to(loss_dtype(part))
        sums.append(F.cross_entropy(scores.flatten(0, 1), target[:, 1:].flatten(), ignore_index=IGNORE_INDEX,
                                    reduction="sum"))
    return sums


def _label_tokens(features: list[dict]) -> int:
    return sum(sum(1 for label in f["labels"][1:] if label != IGNORE_INDEX) for f in features)


def _packed_batch(active: list[_Active], caches: dict, device: str) -> dict:
    """One row: each member's examples back to back, then its own padding to a multiple of 8 (so what a member's
    modules see never depends on its co-members). Positions restart per example, after a prefix member's virtual
    tokens; the first token of every example is never a target."""
    ids, labels, positions, lengths, virtual, sizes, label_tokens = [], [], [], [], [], [], {}
    cache_list = []
    for a in active:
        features = [a.run.train_set[i] for row in a.rows for i in row]
        label_tokens[a.slot] = _label_tokens(features)
        index = None
        if a.slot in caches:
            index = len(cache_list)
            cache_list.append(caches[a.slot])
        offset = a.member.hook.virtual_tokens(a.member.model) if index is not None else 0
        start = len(ids)
        for f in features:
            n = len(f["input_ids"])
            ids += f["input_ids"]
            labels += [IGNORE_INDEX, *f["labels"][1:]]
            positions += range(offset, offset + n)
            lengths.append(n)
            virtual.append(index)
        pad = padded_length(len(ids) - start) - (len(ids) - start)
        if pad:
            ids += [a.run.pad_id] * pad
            labels += [IGNORE_INDEX] * pad
            positions += range(pad)
            lengths.append(pad)
            virtual.append(None)
        sizes.append(len(ids) - start)
    as_row = lambda values: torch.tensor([values], device=device)  # noqa: E731
    return {"inputs": {"input_ids": as_row(ids), "position_ids": as_row(positions)}, "labels": as_row(labels),
            "route": Route(1, tuple(a.slot for a in active), tuple(sizes)),
            "layout": Layout(lengths, virtual, cache_list), "label_tokens": label_tokens}


def _padded_batch(active: list[_Active], caches: dict, device: str) -> dict:
    """Right-padded rows, each member's at its own width (its modules see only that, routing.Route.widths) inside
    the batch's. Prefix members' virtual key/values form a per-row cache in front, aligned to its end and masked
    where a row has fewer (or none); positions are then given per row."""
    per_member = [[a.run.train_set[i] for row in a.rows for i in row] for a in active]
    widths = [padded_length(max(len(f["input_ids"]) for f in fs)) for fs in per_member]
    width = max(widths)
    virtual = {a.slot: a.member.hook.virtual_tokens(a.member.model) for a in active if a.slot in caches}
    most = max(virtual.values(), default=0)
    ids, labels, masks, positions, label_tokens = [], [], [], [], {}
    for a, features in zip(active, per_member):
        label_tokens[a.slot] = _label_tokens(features)
        n_virtual = virtual.get(a.slot, 0)
        for f in features:
            n, pad = len(f["input_ids"]), width - len(f["input_ids"])
            ids.append(f["input_ids"] + [a.run.pad_id] * pad)
            labels.append([IGNORE_INDEX, *f["labels"][1:]] + [IGNORE_INDEX] * pad)
            masks.append([0] * (most - n_virtual) + [1] * (n_virtual + n) + [0] * pad)
            positions.append(list(range(n_virtual, n_virtual + n)) + [n_virtual + n - 1] * pad)
    inputs = {"input_ids": torch.tensor(ids, device=device), "attention_mask": torch.tensor(masks, device=device)}
    if caches:
        inputs["past_key_values"] = _row_cache(active, caches, most, device)
        if _takes_positions(active[0].member.model):  # bloom numbers positions from the mask (ALiBi)
            inputs["position_ids"] = torch.tensor(positions, device=device)
    else:
        inputs["attention_mask"] = inputs["attention_mask"][:, most:]
    return {"inputs": inputs, "labels": torch.tensor(labels, device=device),
            "route": Route(0, tuple(a.slot for a in active), tuple(len(fs) for fs in per_member), tuple(widths)),
            "label_tokens": label_tokens}


def _takes_positions(model) -> bool:
    import inspect

    return "position_ids" in inspect.signature(base_of(model).forward).parameters


def _row_cache(active: list[_Active], caches: dict, most: int, device: str):
    """A DynamicCache whose rows hold their member's virtual key/values at the end of `most` slots (zeros elsewhere,
    masked out by the attention mask)."""
    from transformers.cache_utils import DynamicCache

    rows_per = [len([i for row in a.rows for i in row]) for a in active]
    sample = next(iter(caches.values())).layers
    cache = DynamicCache()
    for layer, reference in enumerate(sample):
        keys, values = [], []
        for a, n in zip(active, rows_per):
            shape = (n, reference.keys.shape[1], most, reference.keys.shape[3])
            k = reference.keys.new_zeros(shape)
            v = reference.values.new_zeros(shape)
            if a.slot in caches:
                own = caches[a.slot].layers[layer]
                p = own.keys.shape[2]
                k = torch.cat([k[:, :, :most - p], own.keys.expand(n, -1, -1, -1)], dim=2)
                v = torch.cat([v[:, :, :most - p], own.values.expand(n, -1, -1, -1)], dim=2)
            keys.append(k)
            values.append(v)
        cache.update(torch.cat(keys), torch.cat(values), layer)
    return cache
