"""Which examples go into which micro-batch, per epoch, and into which forward, per optimizer step.

Plain batching (the reference: group_by_length False) shuffles and cuts. Length grouping
(peft-bench default when not packing) keeps the randomness of the order but puts similar lengths
together, so padding wastes fewer tokens: shuffle, take megabatches of ~50 micro-batches, sort each
megabatch by length, cut it into micro-batches, then shuffle the order of the micro-batches.

The micro-batches of a step decide which examples share an optimizer step; when the loop packs,
`packed_rows` then decides how those examples are fed to the model, which only memory and speed
depend on.
"""

from __future__ import annotations

import torch

from benchmark.train.collate import padded_length

MEGABATCH_MICRO_BATCHES = 50


def _chunks(indices: list[int], size: int) -> list[list[int]]:
    return [indices[i:i + size] for i in range(0, len(indices), size)]


def plain_batches(n: int, micro_batch_size: int, generator: torch.Generator) -> list[list[int]]:
    """Shuffled indices cut into micro-batches; the last one may be short (no drop_last)."""
    order = torch.randperm(n, generator=generator).tolist()
    return _chunks(order, micro_batch_size)


def length_grouped_batches(lengths: list[int], micro_batch_size: int, generator: torch.Generator,
                           megabatch_micro_batches: int = MEGABATCH_MICRO_BATCHES) -> list[list[int]]:
    """Micro-batches of similar lengths in a random order; the longest batch first.

    Putting the longest micro-batch first (as transformers' LengthGroupedSampler does) makes an
    out-of-memory error happen at step 1, not hours into a run.
    """
    order = torch.randperm(len(lengths), generator=generator).tolist()
    batches: list[list[int]] = []
    for mega in _chunks(order, micro_batch_size * megabatch_micro_batches):
        mega = sorted(mega, key=lambda i: -lengths[i])
        batches.extend(_chunks(mega, micro_batch_size))
    batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
    if batches:
        longest = max(range(len(batches)), key=lambda b: max(lengths[i] for i in batches[b]))
        batches[0], batches[longest] = batches[longest], batches[0]
    return batches


def epoch_batches(lengths: list[int], micro_batch_size: int, group_by_length: bool,
                  generator: torch.Generator) -> list[list[int]]:
    if group_by_length:
        return length_grouped_batches(lengths, micro_batch_size, generator)
    return plain_batches(len(lengths), micro_batch_size, generator)


def padding_tokens(batches: list[list[int]], lengths: list[int], multiple_of: int = 8) -> int:
    """How many pad tokens these micro-batches cost once collated."""
    total = 0
    for batch in batches:
        width = padded_length(max(lengths[i] for i in batch), multiple_of)
        total += sum(width - lengths[i] for i in batch)
    return total


def packed_rows(indices: list[int], lengths: list[int], budget: int) -> list[list[int]]:
    """One optimizer step's examples, in order, cut into packed rows of at most `budget` tokens (one
    example at least): the forwards peft-bench's loop runs for the step when it packs.

    The step's loss is the mean over all its label tokens however its examples are split (loop.py),
    so the split is a matter of memory and speed only. The budget is micro_batch_size x cutoff_len:
    the largest micro-batch the reference can be handed, memory the configuration already allows
    (a packed row has no padding and no per-row extras: packing is off for methods that prepend
    virtual tokens or prefix keys). Fewer, fuller forwards: at the protocol's 16 examples in
    micro-batches of 4 the reference runs four forwards a step, each paying every layer's per-call
    costs; packed rows of ~80-token examples take two."""
    if budget < 1:
        raise ValueError(f"packed_rows: budget {budget}; allowed: an integer >= 1")
    rows: list[list[int]] = []
    tokens = 0  # in the row being filled
    for i in indices:
        if rows and tokens + lengths[i] <= budget:
            rows[-1].append(i)
            tokens += lengths[i]
        else:
            rows.append([i])
            tokens = lengths[i]
    return rows
