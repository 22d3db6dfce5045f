"""One frozen base, several trials' adapters: each forward row (or token run) goes through its own trial's modules.

A co-trained group (train/cotrain.py) gives each member its own model tree, a copy of the base that shares every
parameter and buffer with it (`sharing_copy`), into which the member's method is injected exactly as for a solo
trial. `RoutedBase` then compares each member's tree with the base and, at every module a member replaced (peft's
LoRA/DoRA/IA3 layers, the in-house bottleneck linears, any module whose class or own parameters changed), puts a
`Routed` module into the base tree. A group forward runs the base tree once over every member's rows: modules no
member changed see the whole batch; a routed one splits its input by member (`Route`), sends each member's part
through that member's module (members using the base module there go through it in one call) and joins the parts.
Rows never meet (attention stays inside an example, train/group_attention.py), so a member's outputs and gradients
are those of a solo forward over its own rows.

Each member draws its dropout masks from its own random stream (`MemberRNG`), so its numbers do not depend on who it
trains with. Dropout outside the routed modules would draw from the group's stream, so a base with dropout is refused.
"""

from __future__ import annotations

import contextlib
import copy
from contextvars import ContextVar
from dataclasses import dataclass

import torch
import torch.nn as nn


class CannotCoTrain(Exception):
    """This group cannot share one base (the members then train one after another, as solo trials)."""


class MemberError(Exception):
    """A member's own module failed during a group forward: the member leaves, the others go on."""

    def __init__(self, slot: int, error: BaseException):
        super().__init__(f"{type(error).__name__}: {error}")
        self.slot, self.error = slot, error


@dataclass(frozen=True)
class Route:
    """How the current group forward is laid out: along `dim` (0: padded rows, 1: a packed row's tokens), the
    member in `slots[i]` owns the next `sizes[i]` entries. Padded rows: `widths[i]`, the member's own padded width
    inside the batch's; its modules see only that (the rest of its rows is padding that nothing reads), so what
    they compute, dropout draws included, never depends on its co-members' lengths."""

    dim: int
    slots: tuple[int, ...]
    sizes: tuple[int, ...]
    widths: tuple[int, ...] | None = None


_ROUTE: ContextVar[Route | None] = ContextVar("peft_bench_route", default=None)


@contextlib.contextmanager
def scoped(var: ContextVar, value):
    """`var` holds `value` inside the block (the layout a group forward's modules read), whatever happens in it."""
    token = var.set(value)
    try:
        yield
    finally:
        var.reset(token)


def routed(route: Route):
    return scoped(_ROUTE, route)


class MemberRNG:
    """A member's own random stream for dropout: swapped in around its modules, as if it trained alone after
    torch.manual_seed(seed)."""

    def __init__(self, seed: int, device: str):
        self.cuda = str(device).startswith("cuda")
        with torch.random.fork_rng(devices=[torch.cuda.current_device()] if self.cuda else []):
            torch.manual_seed(seed)
            self.state = torch.get_rng_state()
            self.cuda_state = torch.cuda.get_rng_state() if self.cuda else None

    @contextlib.contextmanager
    def active(self):
        saved = torch.get_rng_state()
        saved_cuda = torch.cuda.get_rng_state() if self.cuda else None
        torch.set_rng_state(self.state)
        if self.cuda:
            torch.cuda.set_rng_state(self.cuda_state)
        try:
            yield
        finally:
            self.state = torch.get_rng_state()
            torch.set_rng_state(saved)
            if self.cuda:
                self.cuda_state = torch.cuda.get_rng_state()
                torch.cuda.set_rng_state(saved_cuda)


def _draws(module: nn.Module) -> bool:
    return any(isinstance(m, nn.Dropout) and m.p > 0 for m in module.modules())


def sharing_copy(model: nn.Module) -> nn.Module:
    """A copy of the module tree whose parameters and buffers are the original's objects (no tensor is copied)."""
    memo = {id(t): t for t in [*model.parameters(), *model.buffers()]}
    return copy.deepcopy(model, memo)


def _attends(module: nn.Module) -> bool:
    return any(hasattr(m, "layer_idx") and hasattr(m, "scaling") for m in module.modules())


def _changed(base: nn.Module, member: nn.Module) -> bool:
    if type(member) is not type(base) or set(member._modules) != set(base._modules):
        return True
    mine = {k: id(v) for k, v in member._parameters.items()}
    return mine != {k: id(v) for k, v in base._parameters.items()}


def changed_paths(base: nn.Module, member: nn.Module, prefix: str = "") -> list[str]:
    """The outermost modules of `member` (a sharing copy of `base` with a method injected) that differ from base's."""
    if _changed(base, member):
        return [prefix]
    found: list[str] = []
    for name, child in base.named_children():
        found += changed_paths(child, member._modules[name], f"{prefix}.{name}" if prefix else name)
    return found


class Routed(nn.Module):
    """A base module at which some members have their own: each member's part of the input goes through its module."""

    def __init__(self, base: nn.Module, members: dict[int, nn.Module], rngs: dict[int, MemberRNG]):
        super().__init__()
        self.base = base
        self.members = nn.ModuleDict({str(slot): module for slot, module in members.items()})
        self.rngs = {slot: rng for slot, rng in rngs.items() if _draws(members[slot])}

    def _module(self, slot: int) -> nn.Module | None:
        return self.members[str(slot)] if str(slot) in self.members else None

    def forward(self, x, *args, **kwargs):
        route = _ROUTE.get()
        if route is None or args or kwargs:
            raise RuntimeError("a routed module runs inside a group forward, on one input tensor")
        # Runs of neighbouring members that use the base module here go through it in one call. The input is
        # split, not sliced: the backward is then one concatenation of the parts' gradients, not a zero-filled
        # full-size tensor per part.
        runs: list[tuple[int | None, int, int]] = []  # (member slot or None for the base, width, position)
        for i, (slot, size) in enumerate(zip(route.slots, route.sizes)):
            owner = slot if self._module(slot) is not None else None
            if runs and owner is None and runs[-1][0] is None:
                runs[-1] = (None, runs[-1][1] + size, runs[-1][2])
            else:
                runs.append((owner, size, i))
        parts = x.split([width for _, width, _ in runs], dim=route.dim) if len(runs) > 1 else (x,)
        outputs = [self._run(owner, part, route, i) for (owner, _, i), part in zip(runs, parts)]
        return outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=route.dim)

    def _run(self, owner: int | None, part: torch.Tensor, route: Route, i: int) -> torch.Tensor:
        if owner is None:
            return self.base(part)
        own = route.widths[i] if route.widths is not None and part.dim() > 2 else None
        full = part.shape[1]
        if own is not None and own < full:
            part = part.narrow(1, 0, own)
        rng = self.rngs.get(owner)
        try:
            with rng.active() if rng is not None else contextlib.nullcontext():
                out = self.members[str(owner)](part)
        except Exception as error:
            raise MemberError(owner, error) from error
        if own is not None and own < full:  # back to the batch's width: padding nothing reads
            out = torch.nn.functional.pad(out, (0, 0, 0, full - own))
        return out


class RoutedBase:
    """The base tree with Routed modules where members differ; `remove()` puts the base back as it was."""

    def __init__(self, core: nn.Module, members: list[nn.Module], rngs: list[MemberRNG]):
        self.core, self.installed = core, []
        per_path: dict[str, dict[int, nn.Module]] = {}
        for slot, member in enumerate(members):
            for path in changed_paths(core, member):
                if not path:
                    raise CannotCoTrain("a member replaced the whole model")
                module = member.get_submodule(path)
                if _attends(module):
                    raise CannotCoTrain(f"a member replaced {path}, which holds an attention layer")
                per_path.setdefault(path, {})[slot] = module
        paths = sorted(per_path)
        for outer, inner in zip(paths, paths[1:]):
            if inner.startswith(outer + "."):
                raise CannotCoTrain(f"members change both {outer} and {inner} inside it")
        self._check_dropout(core, set(paths))
        self._check_trainable(core, members)
        for path in paths:
            parent_path, _, leaf = path.rpartition(".")
            parent = core.get_submodule(parent_path) if parent_path else core
            original = parent._modules[leaf]
            slots = per_path[path]
            parent._modules[leaf] = Routed(original, slots, {s: rngs[s] for s in slots})
            self.installed.append((parent, leaf, original))

    @staticmethod
    def _check_dropout(core: nn.Module, routed_paths: set[str]) -> None:
        config = getattr(core, "config", None)
        for name in ("attention_dropout", "attn_pdrop", "hidden_dropout", "resid_pdrop", "embd_pdrop", "dropout"):
            if float(getattr(config, name, 0.0) or 0.0) > 0:
                raise CannotCoTrain(f"the base model's {name} is {getattr(config, name)}: its dropout would draw "
                                    "from a stream the members share")
        for name, module in core.named_modules():
            if isinstance(module, nn.Dropout) and module.p > 0 and not any(
                    name == p or name.startswith(p + ".") for p in routed_paths):
                raise CannotCoTrain(f"the base model's {name} has dropout {module.p}")

    @staticmethod
    def _check_trainable(core: nn.Module, members: list[nn.Module]) -> None:
        base_params = {id(p) for p in core.parameters()}
        for member in members:
            if any(p.requires_grad and id(p) in base_params for p in member.parameters()):
                raise CannotCoTrain("a member trains parameters of the shared base")

    def remove(self) -> None:
        for parent, leaf, original in reversed(self.installed):
            parent._modules[leaf] = original
        self.installed = []
