"""What `peft-bench perf` measures and how much of it: the full run, --quick, and the tiny test size."""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field, replace

from benchmark.paths import SUITES_DIR
from benchmark.perf import PARTS


@functools.cache
def workload() -> dict[str, str]:
    """The datasets perf measures on, from suites/perf.yaml (data, like every dataset name)."""
    from benchmark.registry.yamlio import load_yaml, require

    file = SUITES_DIR / "perf.yaml"
    body = require(load_yaml(file), "perf", dict, file, "")
    return {key: require(body, key, str, file, "perf") for key in ("train_data", "eval_data")}


@dataclass(frozen=True)
class Settings:
    model: str = "tiny-llama"
    parts: tuple[str, ...] = PARTS
    eval_dataset: str = field(default_factory=lambda: workload()["eval_data"])
    eval_prompts: int = 120  # every example of the embedded eval set
    max_new_tokens: int = 256  # the reference protocol's math setting
    # The reference (no cache, every position recomputed at every step) at a shorter length, where at the
    # protocol's it would take hours on a CPU; ours is timed at both lengths, the peer at max_new_tokens.
    reference_max_new_tokens: int | None = None
    num_beams: int = 4
    eval_batch_size: int | None = None  # examples per batch of our decoding; None: as the runner sizes it
    train_dataset: str = field(default_factory=lambda: workload()["train_data"])
    train_examples: int = 1024
    train_steps: int = 64  # one epoch of train_examples at batch_size
    train_repeats: int = 3  # each loop's runs, alternating; the fastest of each is kept
    cotrain_members: int = 8  # the co-training part's trials (perf/cotrain.py MEMBERS, in order)
    # LLM-Adapters' math commands: batches of 16 in micro-batches of 4 (gradient accumulation 4).
    batch_size: int = 16
    micro_batch_size: int = 4
    cutoff_len: int = 256
    plan_trials: int = 10_000
    store_trials: int = 10_000
    store_writers: int | None = None  # processes writing trial files at once; None: one per CPU, as the runner
    threads: int | None = None  # torch threads; None leaves torch's default

    def __post_init__(self):
        for name in ("eval_prompts", "max_new_tokens", "reference_max_new_tokens", "num_beams", "eval_batch_size", "train_examples",
                     "train_steps", "train_repeats", "cotrain_members", "batch_size", "micro_batch_size", "plan_trials", "store_trials", "store_writers"):
            value = getattr(self, name)
            if name in ("eval_batch_size", "store_writers", "reference_max_new_tokens") and value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"perf.{name}: got {value!r}; allowed: an integer >= 1")
        if self.reference_max_new_tokens is not None and self.reference_max_new_tokens > self.max_new_tokens:
            raise ValueError(f"perf.reference_max_new_tokens: got {self.reference_max_new_tokens}; allowed: at most "
                             f"max_new_tokens ({self.max_new_tokens})")
        if self.batch_size % self.micro_batch_size:
            raise ValueError(f"perf.batch_size: got {self.batch_size}; allowed: a multiple of micro_batch_size "
                             f"({self.micro_batch_size})")
        if self.cutoff_len < 8:
            raise ValueError(f"perf.cutoff_len: got {self.cutoff_len!r}; allowed: an integer >= 8")
        if not self.parts or any(part not in PARTS for part in self.parts):
            raise ValueError(f"perf.parts: got {', '.join(self.parts) or 'none'}; allowed: one or more of {', '.join(PARTS)}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"perf.threads: got {self.threads!r}; allowed: an integer >= 1 or none")

    def to_dict(self) -> dict:
        return asdict(self)


FULL = Settings()
# --quick: the same protocol (4 beams, 256 new tokens) on fewer prompts and steps; minutes on 2 CPU cores.
QUICK = Settings(eval_prompts=96, train_examples=512, train_steps=32)
# --quick on a model with real weights (not the embedded zoo): the reference decodes one prompt at a time with no
# cache, recomputing every position at every step. On 2 CPU cores smollm2-135m took 19 s a prompt at 64 new
# tokens, and an estimated 8 minutes or more at 256 (it rarely stops early on these prompts); a training step
# takes seconds. So 8 prompts (the same 4 beams): the reference and ours at 64 new tokens, ours and the peer at
# the protocol's 256; a few training steps, once each.
QUICK_REAL = replace(QUICK, eval_prompts=8, max_new_tokens=256, reference_max_new_tokens=64, train_examples=64,
                     train_steps=4, train_repeats=1)
# For the test suite: every code path, seconds.
TINY = Settings(eval_prompts=3, max_new_tokens=6, eval_batch_size=2, train_examples=32, train_steps=2, train_repeats=1,
                cotrain_members=3,
                batch_size=16, micro_batch_size=4, cutoff_len=128, plan_trials=40, store_trials=20, store_writers=2)


def pick(quick: bool, model: str | None = None, parts: list[str] | None = None) -> Settings:
    chosen = FULL
    if quick:
        from benchmark.registry import catalogue

        chosen = QUICK if catalogue.model(model or FULL.model).is_embedded else QUICK_REAL
    if model:
        chosen = replace(chosen, model=model)
    # In PARTS' order, once each, whatever order the command line gave.
    return replace(chosen, parts=tuple(p for p in PARTS if p in parts)) if parts else chosen
