"""Evaluation throughput on the same model and prompts: the reference decoding (evaluate.py: batch 1, no cache,
no mask), ours, and the peer path: transformers' own batched `generate` (KV cache, left padding, attention mask,
the same beams and max_new_tokens), which is how lm-evaluation-harness's HF backend and LLaMA-Factory's predict
decode. The peer runs at our batch size on the same length-sorted batches, so the gap is the decoding loop's
alone; its outputs are compared with ours and the reference's token for token (a batched fp32 forward can
round differently from batch 1), ours must equal the reference's.

On real weights the reference runs at a shorter length (Settings.reference_max_new_tokens): ours is timed
against it there and against the peer at the protocol's length, where the peer's per-step costs (a full
copy of every beam's cache per step, prompts prefilled once per beam) show as they would in a real run.
"""

from __future__ import annotations

import time

from benchmark.perf.settings import Settings


def check_model(name: str) -> None:
    """A catalogue model that decodes (a causal LM), before anything loads: one line otherwise."""
    from benchmark.errors import UserError
    from benchmark.registry import catalogue

    entry = catalogue.model(name)
    if entry.model_family in catalogue.ENCODER_FAMILIES:
        raise UserError(f"perf --model {name}: family {entry.model_family} is an encoder; allowed: a causal catalogue "
                        f"model (families {', '.join(catalogue.CAUSAL_FAMILIES)}), e.g. tiny-llama")


def load_model(name: str):
    from benchmark import models
    from benchmark.registry import catalogue

    model, tokenizer = models.load(catalogue.model(name), dtype="float32")  # fp32: outputs must match exactly
    return model.eval(), tokenizer


def eval_prompts(s: Settings) -> list[str]:
    from benchmark.data import load_examples
    from benchmark.data.prompts import eval_prompt
    from benchmark.registry import catalogue

    examples = load_examples(catalogue.dataset(s.eval_dataset), None)
    if len(examples) < s.eval_prompts:
        raise ValueError(f"perf.eval_prompts: got {s.eval_prompts}; allowed: at most {len(examples)} "
                         f"(the examples of {s.eval_dataset})")
    return [eval_prompt(ex) for ex in examples[:s.eval_prompts]]


def measure(s: Settings, model=None, tokenizer=None) -> dict:
    import torch

    from benchmark.device import decoding_batch_size
    from benchmark.evaluation.generate import generate_ids, generate_ids_hf, generate_reference_ids
    from benchmark.registry.spec import EvalConfig

    if model is None:
        model, tokenizer = load_model(s.model)
    prompts = eval_prompts(s)
    prompt_lens = [len(ids) for ids in tokenizer(prompts)["input_ids"]]
    ref_tokens = s.reference_max_new_tokens or s.max_new_tokens
    batch_size = s.eval_batch_size or decoding_batch_size(model, max(prompt_lens), s.max_new_tokens, s.num_beams,
                                                          fallback=EvalConfig().batch_size)

    def timed(decode, max_new_tokens, **batch):
        started = time.perf_counter()
        outputs = decode(model, tokenizer, prompts, max_new_tokens, s.num_beams, **batch)
        return outputs, time.perf_counter() - started

    with torch.inference_mode():
        # Warm every path at its working shape, so none pays first-call costs in the timing (lazy
        # imports; the allocator's first touch of large buffers, which steady-state evaluation of a
        # full test set, batch after batch, does not pay): the reference one prompt, ours and the peer
        # one batch, each decoded in full. No path keeps anything between calls but allocator state.
        generate_reference_ids(model, tokenizer, prompts[:1], ref_tokens, s.num_beams)
        generate_ids(model, tokenizer, prompts[:batch_size], s.max_new_tokens, s.num_beams, batch_size)
        generate_ids_hf(model, tokenizer, prompts[:batch_size], s.max_new_tokens, s.num_beams, batch_size)
        reference, reference_s = timed(generate_reference_ids, ref_tokens)
        ours, ours_s = timed(generate_ids, ref_tokens, batch_size=batch_size)
        if ref_tokens == s.max_new_tokens:
            ours_long, ours_long_s = ours, ours_s
        else:  # the peer at the protocol's length, the reference's would be too short to show its costs
            ours_long, ours_long_s = timed(generate_ids, s.max_new_tokens, batch_size=batch_size)
        peer, peer_s = timed(generate_ids_hf, s.max_new_tokens, batch_size=batch_size)
    new_tokens = [len(ids) - n for ids, n in zip(reference, prompt_lens)]
    long_new_tokens = [len(ids) - n for ids, n in zip(ours_long, prompt_lens)]
    n = len(prompts)
    peer_vs_reference = {"peer_differs_from_reference": sum(a != b for a, b in zip(reference, peer)),
                         "speedup_vs_reference": reference_s / peer_s} if ref_tokens == s.max_new_tokens else {}
    return {
        "n": n, "num_beams": s.num_beams, "max_new_tokens": ref_tokens, "batch_size": batch_size,
        "reference_s": reference_s, "ours_s": ours_s,
        "reference_examples_per_s": n / reference_s, "ours_examples_per_s": n / ours_s,
        "speedup": reference_s / ours_s,
        "outputs_identical": reference == ours,
        "mismatches": sum(a != b for a, b in zip(reference, ours)),
        "mean_prompt_tokens": sum(prompt_lens) / n, "mean_new_tokens": sum(new_tokens) / n,
        "max_new_tokens_seen": max(new_tokens),
        "peer": {"path": "transformers generate, batched (KV cache, left padding, attention mask)",
                 "batch_size": batch_size, "max_new_tokens": s.max_new_tokens, "seconds": peer_s,
                 "examples_per_s": n / peer_s, "ours_s": ours_long_s, "ours_examples_per_s": n / ours_long_s,
                 "speedup_vs_peer": peer_s / ours_long_s,
                 "peer_differs_from_ours": sum(a != b for a, b in zip(ours_long, peer)),
                 "mean_new_tokens": sum(long_new_tokens) / n, **peer_vs_reference},
    }
