"""Generation for the evaluation: our cached beam search, transformers' generate, and the reference way.

The reference (evaluate.py) decodes one example at a time without attention mask or KV cache,
which costs the maintainers "20+ hours" for gsm8k. `generate_ids` gives the same tokens far faster:

- prompts sorted by length (longest first), left-padded, with the attention mask from which the
  position ids (llama, gptj) or ALiBi offsets (bloom) are derived, so padding changes nothing;
- the prompt is run once per example, not once per beam (all beams start from the same prompt);
- a KV cache in preallocated buffers (`benchmark.evaluation.kv`); for llama-like models an
  example's beams share its prompt and generated keys, so a beam reorder moves a small table of
  indices, not the cache;
- an example leaves the batch the moment its result can no longer change (transformers keeps
  every row running until the last example of the batch is done, often to max_new_tokens);
- the attention mask is handed to the model ready-made where building it costs more than the
  layers (transformers' vmap mask builder dominates a decode step of a small llama on CPU).

The search itself (`benchmark.evaluation.beam`) is transformers 4.57's beam search (length
penalty, early stopping, EOS, max length), or its greedy search for one beam, step for step.
A method that changes the inputs a model decodes from (virtual tokens before the prompt) comes with its
`decode_hook` (beam.DecodeHook), passed in by the caller. Models the loop cannot feed safely
(logits processors from the generation config, peft prompt methods without a hook, encoder-decoders)
go through transformers' own batched `generate` instead; both give the reference's tokens in fp32.

Every path returns the prompt plus the continuation, cut after the first EOS of the continuation
and decoded with skip_special_tokens=True.
"""

from __future__ import annotations

import torch

from benchmark.evaluation import beam


def _special_ids(tokenizer) -> tuple[int, int | None]:
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return pad_id, tokenizer.eos_token_id


def _model_device(model) -> torch.device:
    return next(model.parameters()).device


def _cut_at_eos(ids: list[int], prompt_len: int, eos_id: int | None, pad_id: int) -> list[int]:
    """Prompt + continuation up to and including the first EOS; trailing pads dropped."""
    continuation = ids[prompt_len:]
    if eos_id is not None and eos_id in continuation:
        continuation = continuation[:continuation.index(eos_id) + 1]
    elif pad_id != eos_id:
        while continuation and continuation[-1] == pad_id:
            continuation.pop()
    return ids[:prompt_len] + continuation


def _prompt_mask(ids: list[int], pad_id: int, eos_id: int | None) -> list[int]:
    # The reference passes no mask, so transformers infers one: a prompt token equal to the pad id
    # is masked out when pad and EOS differ. Batched paths must mask the same tokens.
    if pad_id == eos_id or pad_id not in ids:
        return [1] * len(ids)
    return [int(t != pad_id) for t in ids]


def _encode(tokenizer, prompts: list[str]) -> list[list[int]]:
    """Each prompt's ids, as tokenizer(prompt) gives them one at a time (one batched call: faster)."""
    return [list(ids) for ids in tokenizer(list(prompts))["input_ids"]] if prompts else []


def _left_pad(rows: list[list[int]], pad_id: int, eos_id: int | None, device,
              mask_pads: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded ids and their attention mask; mask_pads=False (the no_attention_mask quirk): every position
    attends, pads included, and positions count from the first pad, as a batch decoded with no mask does."""
    width = max(len(r) for r in rows)
    ids = torch.tensor([[pad_id] * (width - len(r)) + r for r in rows], device=device)
    if not mask_pads:
        return ids, torch.ones_like(ids)
    mask = torch.tensor([[0] * (width - len(r)) + _prompt_mask(r, pad_id, eos_id) for r in rows], device=device)
    return ids, mask


def generate_ids(model, tokenizer, prompts: list[str], max_new_tokens: int, num_beams: int = 4,
                 batch_size: int = 16, decode_hook: beam.DecodeHook | None = None, sort: bool = True,
                 mask_pads: bool = True) -> list[list[int]]:
    """Token ids (prompt + continuation) per prompt, in the original order (the fast path). `decode_hook`: the
    hook of the method injected into the model, if it declares one. sort=False batches prompts in their given order;
    mask_pads=False attends to the left padding (both: the no_attention_mask quirk, whose outputs depend on the
    batches)."""
    if batch_size < 1:
        raise ValueError(f"batch_size: got {batch_size}; allowed: an integer >= 1")
    if num_beams < 1:
        raise ValueError(f"num_beams: got {num_beams}; allowed: an integer >= 1")
    pad_id, eos_id = _special_ids(tokenizer)
    feeder = beam.Feeder.for_model(model, max_new_tokens, num_beams, pad_id, eos_id, decode_hook)
    if feeder is None:
        return generate_ids_hf(model, tokenizer, prompts, max_new_tokens, num_beams, batch_size, sort, mask_pads)
    encoded = _encode(tokenizer, prompts)
    order = _order(encoded, sort)
    settings = beam.Settings.from_model(model, max_new_tokens, num_beams, eos_id)
    results: list[list[int] | None] = [None] * len(prompts)
    device = _model_device(model)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            ids, mask = _left_pad([encoded[i] for i in rows], pad_id, eos_id, device, mask_pads)
            for row, continuation in enumerate(beam.search(feeder, ids, mask, settings)):
                i = rows[row]
                results[i] = _cut_at_eos(encoded[i] + continuation, len(encoded[i]), eos_id, pad_id)
    return results  # type: ignore[return-value]


def _order(encoded: list[list[int]], sort: bool) -> list[int]:
    """Longest first (stable: ties keep input order), or the input order."""
    if not sort:
        return list(range(len(encoded)))
    return sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))


def generate_ids_hf(model, tokenizer, prompts: list[str], max_new_tokens: int, num_beams: int = 4,
                    batch_size: int = 16, sort: bool = True, mask_pads: bool = True) -> list[list[int]]:
    """transformers' batched generate (length-sorted, left-padded, masked, cached): the fallback path."""
    if batch_size < 1:
        raise ValueError(f"batch_size: got {batch_size}; allowed: an integer >= 1")
    pad_id, eos_id = _special_ids(tokenizer)
    device = _model_device(model)
    encoded = _encode(tokenizer, prompts)
    order = _order(encoded, sort)
    results: list[list[int] | None] = [None] * len(prompts)
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        input_ids, attention_mask = _left_pad([encoded[i] for i in rows], pad_id, eos_id, device, mask_pads)
        out = model.generate(input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=max_new_tokens,
                             num_beams=num_beams, do_sample=False, use_cache=True,
                             pad_token_id=pad_id, eos_token_id=eos_id)
        width = input_ids.shape[1]
        for row, i in enumerate(rows):
            pad = width - len(encoded[i])
            results[i] = _cut_at_eos(out[row, pad:].tolist(), len(encoded[i]), eos_id, pad_id)
    return results  # type: ignore[return-value]


def generate_reference_ids(model, tokenizer, prompts: list[str], max_new_tokens: int,
                           num_beams: int = 4) -> list[list[int]]:
    """evaluate.py's way: one prompt at a time, no attention mask, no KV cache, and the scores of every
    step returned with the sequences (its generate call asks for return_dict_in_generate and output_scores)."""
    pad_id, eos_id = _special_ids(tokenizer)
    device = _model_device(model)
    results = []
    for prompt in prompts:
        input_ids = tokenizer(prompt, return_tensors="pt")["input_ids"].to(device)
        out = model.generate(input_ids=input_ids, max_new_tokens=max_new_tokens, num_beams=num_beams,
                             do_sample=False, use_cache=False, pad_token_id=pad_id, eos_token_id=eos_id,
                             return_dict_in_generate=True, output_scores=True)
        results.append(_cut_at_eos(out.sequences[0].tolist(), input_ids.shape[1], eos_id, pad_id))
    return results


def _decode(tokenizer, sequences: list[list[int]]) -> list[str]:
    return [tokenizer.decode(ids, skip_special_tokens=True) for ids in sequences]


def generate(model, tokenizer, prompts: list[str], max_new_tokens: int, num_beams: int = 4,
             batch_size: int = 16, decode_hook: beam.DecodeHook | None = None, sort: bool = True,
             mask_pads: bool = True) -> list[str]:
    """Decoded prompt + continuation per prompt, in the original order (the fast path)."""
    return _decode(tokenizer, generate_ids(model, tokenizer, prompts, max_new_tokens, num_beams, batch_size,
                                           decode_hook, sort, mask_pads))


def generate_reference(model, tokenizer, prompts: list[str], max_new_tokens: int, num_beams: int = 4) -> list[str]:
    """Decoded prompt + continuation per prompt, the reference way (slow; for tests and timing)."""
    return _decode(tokenizer, generate_reference_ids(model, tokenizer, prompts, max_new_tokens, num_beams))
