"""Which examples go into which micro-batch, per epoch.

Plain batching (the reference: group_by_length False) shuffles and cuts. Length grouping
(peft-bench default) keeps the randomness of the order but puts similar lengths together, so
left padding wastes fewer tokens: shuffle, take megabatches of ~50 micro-batches, sort each
megabatch by length, cut it into micro-batches, then shuffle the order of the micro-batches.
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
