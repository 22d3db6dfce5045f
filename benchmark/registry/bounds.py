"""Upper bounds on every numeric setting, in one place so each error can say its bound.

Each bound sits far above what a real run needs (the comment says which run sized it) and far below what a typo
gives (an extra zero or three, `1.0e+30`, a timestamp pasted as a seed): such a value would otherwise pass the
plan and then allocate, loop or overflow for hours on a cluster before anything failed.
"""

from __future__ import annotations

EPOCHS = 1000  # TAPT trains 100 epochs, UniPELT's low-resource runs 50
STEPS = 10_000_000  # optimizer or warm-up steps: DAPT takes 12,500; pretraining-scale runs ~1e6
BATCH = 65_536  # sequences per optimizer step or per forward (DAPT: 2048)
TOKENS = 131_072  # any length in tokens (cutoff, stride, generation, span): 128k-token contexts
EXAMPLES = 100_000_000  # caps on examples or documents read, held-out sizes
BEAMS = 64  # LLM-Adapters decodes with 4
SEED = 2**32 - 1  # numpy's seed range (torch's is wider)
SECONDS = 30 * 24 * 3600  # a training phase's time budget: a month
GRAD_NORM = 1_000_000  # clipping norms are ~1
WEIGHT_DECAY = 10  # AdamW's is ~0.01-0.1
CPUS = 1024  # one trial's request, however many nodes it spans
GPUS = 64
MEMORY_GB = 65_536
COLUMN = 1000  # a report table's column position
WIDTH = 65_536  # a method's width: LoRA ranks, bottleneck sizes (LLM-Adapters: 8-256; a 70B's hidden size: 8192)
CONCURRENT = 100_000  # trials at once, nodes, CPUs or GPUs a launcher asks for: the largest clusters run ~10,000 GPUs
RETRIES = 100  # retries of a trial whose worker died (the default is 2)
SCALE = 1_000_000  # a method's positive factor: LoRA's alpha (16-64), AdapterHub's reduction factor (16)


def up_to(limit: int, low: int = 1, what: str = "an integer") -> str:
    """The `allowed` text of an integer setting: 'an integer in 1..64'."""
    return f"{what} in {low}..{limit}"
