"""Cached beam search (and greedy search) that reproduces transformers 4.57's decoding token for token.

Why our own loop: on a small model the cost of transformers' generate is per step, not per token
(Python around the model, a vmap-built attention mask, every row kept running until the whole
batch is done). Here an example leaves the batch as soon as its finished hypotheses can no longer
change, its prompt is run once instead of once per beam, and the mask is passed ready-made.

The search follows transformers' `_beam_search` step by step, per example: top 2K candidates
over K beams x vocabulary by accumulated log-probability; candidates ending in EOS (or reaching
max_new_tokens) go to the finished set with score / generated_length ** length_penalty, the best
K others keep running; an example is done when early stopping says no running beam can beat its
worst finished one (the "False" / True / "never" heuristics), or at max_new_tokens. Its answer is
its best finished hypothesis. Examples never interact, so evicting a done one changes nothing for
the others. num_beams == 1 is transformers' greedy search (argmax of the logits).

`Feeder` feeds one model: transformers causal LMs and wrappers that only change modules (low-rank
updates, rescaling vectors, adapters) are called as they are. A method that changes the inputs a
model decodes from (virtual key/values or virtual embeddings before the prompt) declares
a `DecodeHook`, which the caller passes in; the Feeder calls it without knowing the method. A
peft prompt-learning model that comes without a hook, or a generation config the loop does not
reproduce, gets no Feeder and the caller uses transformers' generate.
"""

from __future__ import annotations

import inspect
import sys
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F

from benchmark.evaluation import kv
from benchmark.models.attention import base_of

NEG = -1.0e9  # transformers' "impossible" score offset

# Generation-config fields that make transformers add logits processors or change the search;
# each must be at its neutral value for our loop to be exact (otherwise we fall back).
_NEUTRAL = {
    "guidance_scale": (None, 1, 1.0), "sequence_bias": (None,), "encoder_repetition_penalty": (None, 1.0),
    "repetition_penalty": (None, 1.0), "no_repeat_ngram_size": (None, 0), "encoder_no_repeat_ngram_size": (None, 0),
    "bad_words_ids": (None,), "min_length": (None, 0), "min_new_tokens": (None, 0), "forced_bos_token_id": (None,),
    "forced_eos_token_id": (None,), "remove_invalid_values": (None, False), "exponential_decay_length_penalty": (None,),
    "suppress_tokens": (None,), "begin_suppress_tokens": (None,), "watermarking_config": (None,),
    "renormalize_logits": (None, False), "max_time": (None,), "stop_strings": (None,), "num_beam_groups": (None, 1),
    "diversity_penalty": (None, 0.0), "constraints": (None,), "force_words_ids": (None,),
    "num_return_sequences": (None, 1), "low_memory": (None, False), "prompt_lookup_num_tokens": (None,),
}


@dataclass(frozen=True)
class Settings:
    max_new_tokens: int
    num_beams: int
    eos_id: int | None
    length_penalty: float = 1.0
    early_stopping: bool | str = False

    @classmethod
    def from_model(cls, model, max_new_tokens: int, num_beams: int, eos_id: int | None) -> Settings:
        config = _core(model).generation_config
        return cls(max_new_tokens, num_beams, eos_id, float(config.length_penalty), config.early_stopping)


_core = base_of  # the transformers model under a peft wrapper (the one whose generate transformers runs)


class DecodeHook(Protocol):
    """What a method that changes a model's decoding inputs tells the Feeder (a method module's `decode_hook`):
    the inputs transformers' generate would build for such a model, e.g. through peft's
    prepare_inputs_for_generation. The Feeder does the rest: every row's keys start with the virtual
    tokens (the mask extended by ones in front), and position ids are offset by them."""

    positions_from_mask: bool  # the model numbers positions from the 2-D mask itself: no position ids, no 4-D mask

    def callee(self, model):
        """The module whose forward runs the prefill and every decode step."""

    def virtual_tokens(self, model) -> int:
        """Key/value slots every row holds before its prompt."""

    def prefill_inputs(self, model, ids: torch.Tensor) -> dict:
        """The prefill's input_ids or inputs_embeds (and any cache to start from) for prompt ids (rows, width)."""


def _prompt_learning(model) -> bool:
    return bool(getattr(getattr(model, "active_peft_config", None), "is_prompt_learning", False))


def _neutral_generation_config(core) -> bool:
    config = core.generation_config
    return all(getattr(config, name, None) in allowed for name, allowed in _NEUTRAL.items())


class Feeder:
    """Prefill and one-token decode steps for one model, with the inputs transformers' generate would build."""

    def __init__(self, model, hook: DecodeHook | None = None):
        self.model, self.hook, self.core = model, hook, _core(model)
        self.callee = hook.callee(model) if hook is not None else model
        self.n_virtual = hook.virtual_tokens(model) if hook is not None else 0
        from_mask = hook is not None and hook.positions_from_mask
        params = inspect.signature(self.core.forward).parameters
        self.takes_positions = "position_ids" in params and not from_mask
        self.keep_logits = "logits_to_keep" in params
        # Models built on transformers.masking_utils rebuild the mask every step (vmap; slow on CPU);
        # for SDPA they take a ready boolean 4-D mask as is. Others (bloom: ALiBi from the 2-D mask) get 2-D.
        module = sys.modules.get(type(self.core).__module__)
        self.mask_4d = (not from_mask and hasattr(module, "create_causal_mask")
                        and getattr(self.core.config, "_attn_implementation", None) == "sdpa")

    @classmethod
    def for_model(cls, model, max_new_tokens: int, num_beams: int, pad_id: int, eos_id: int | None,
                  hook: DecodeHook | None = None) -> Feeder | None:
        core = _core(model)
        config = getattr(core, "config", None)
        if config is None or getattr(config, "is_encoder_decoder", False) or not hasattr(core, "generation_config"):
            return None
        if not _neutral_generation_config(core) or max_new_tokens < 1:
            return None
        if hook is None and _prompt_learning(model):
            return None  # its inputs are not the plain ones and no method said how to build them
        return cls(model, hook)

    def prefill(self, ids: torch.Tensor, mask: torch.Tensor):
        """Logits of the last prompt position (n, V), the cache, the full 2-D mask, the next position per row."""
        n = ids.shape[0]
        positions = mask.long().cumsum(-1) - 1
        positions.masked_fill_(mask == 0, 1)  # as transformers' prepare_inputs_for_generation
        next_pos = mask.long().sum(-1)
        kwargs = {"use_cache": True, "return_dict": True}
        if self.keep_logits:
            kwargs["logits_to_keep"] = 1
        if self.n_virtual:  # the method's virtual tokens come first in every row's keys and positions
            mask = torch.cat([torch.ones(n, self.n_virtual, dtype=mask.dtype, device=mask.device), mask], dim=1)
            positions, next_pos = positions + self.n_virtual, next_pos + self.n_virtual
        if self.takes_positions:
            kwargs["position_ids"] = positions
        inputs = self.hook.prefill_inputs(self.model, ids) if self.hook is not None else {"input_ids": ids}
        width = (inputs["input_ids"] if "input_ids" in inputs else inputs["inputs_embeds"]).shape[1]  # the queries
        out = self.callee(**inputs, attention_mask=self._prefill_mask(mask, width), **kwargs)
        return out.logits[:, -1, :].float(), out.past_key_values, mask, next_pos

    def _prefill_mask(self, mask: torch.Tensor, width: int) -> torch.Tensor:
        """The 2-D mask, or for models that take it ready, the 4-D boolean mask transformers' SDPA mask
        builder would make from it (causal and padding; the builder's vmap costs more than the prefill
        of a small model). Unpadded batches keep the 2-D mask: transformers then runs causal SDPA."""
        if not self.mask_4d or bool(mask.all()):
            return mask
        keys = mask.shape[1]  # a method's virtual tokens come first, then the prompt
        queries = torch.arange(keys - width, keys, device=mask.device)
        causal = torch.arange(keys, device=mask.device)[None, :] <= queries[:, None]
        return causal[None, None] & mask.bool()[:, None, None, :]

    def step(self, tokens: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache) -> torch.Tensor:
        """Logits (rows, V) for one new token per row; `mask` already includes the new token."""
        kwargs = {"use_cache": True, "return_dict": True, "past_key_values": cache}
        if self.takes_positions:
            kwargs["position_ids"] = positions[:, None]
        if self.mask_4d:
            # transformers skips the mask when nothing is padded; so do we (same attention kernel call).
            kwargs["attention_mask"] = None if bool(mask.all()) else mask.bool()[:, None, None, :]  # no copy if bool
        else:
            kwargs["attention_mask"] = mask
        out = self.callee(input_ids=tokens[:, None], **kwargs)
        return out.logits[:, -1, :].float()


def _spare(s: Settings) -> int:
    return min(s.max_new_tokens, 32)  # KV slots reserved past the prompt; the cache doubles them when full


def _mask_buffer(prompt_mask: torch.Tensor, s: Settings, feeder: Feeder) -> torch.Tensor:
    """The prompt's 2-D mask followed by ones for every token that can be generated (sliced per step);
    boolean where the model takes a ready 4-D mask, the tokenizer's integers otherwise (bloom's ALiBi)."""
    dtype = torch.bool if feeder.mask_4d else prompt_mask.dtype
    masks = prompt_mask.new_ones(prompt_mask.shape[0], prompt_mask.shape[1] + s.max_new_tokens, dtype=dtype)
    masks[:, :prompt_mask.shape[1]] = prompt_mask
    return masks


def search(feeder: Feeder, ids: torch.Tensor, mask: torch.Tensor, s: Settings) -> list[list[int]]:
    """The generated tokens of each row (EOS included when reached), in row order."""
    logits, cache, full_mask, next_pos = feeder.prefill(ids, mask)
    decode = kv.DecodeCache(cache, feeder.core, s.num_beams, _spare(s), feeder.mask_4d)
    with decode.active():
        if s.num_beams == 1:
            return _greedy(feeder, logits, decode, full_mask, next_pos, s)
        return _beam(feeder, logits, decode, full_mask, next_pos, s)


def _greedy(feeder, logits, decode: kv.DecodeCache, full_mask, next_pos, s: Settings) -> list[list[int]]:
    n = logits.shape[0]
    results: list[list[int]] = [[] for _ in range(n)]
    rows = torch.arange(n)
    tokens = torch.empty(n, 0, dtype=torch.long, device=logits.device)
    masks, length = _mask_buffer(full_mask, s, feeder), full_mask.shape[1]
    while True:
        tok = logits.argmax(-1)
        tokens = torch.cat([tokens, tok[:, None]], dim=1)
        done = tok == s.eos_id if s.eos_id is not None else torch.zeros_like(tok, dtype=torch.bool)
        if tokens.shape[1] >= s.max_new_tokens:
            done[:] = True
        for local in done.nonzero().flatten().tolist():
            results[int(rows[local])] = tokens[local].tolist()
        keep = (~done).nonzero().flatten()
        if keep.numel() == 0:
            return results
        if keep.numel() < done.numel():
            rows, tokens, tok, masks, next_pos = rows[keep.cpu()], tokens[keep], tok[keep], masks[keep], next_pos[keep]
            decode.select(keep, keep, 0)
        length += 1
        logits = feeder.step(tok, masks[:, :length], next_pos, decode.cache)
        next_pos = next_pos + 1


def _beam(feeder, logits, decode: kv.DecodeCache, full_mask, next_pos, s: Settings) -> list[list[int]]:
    n, vocab = logits.shape
    k, device = s.num_beams, logits.device
    results: list[list[int]] = [[] for _ in range(n)]
    items = torch.arange(n)  # original row of each active example
    run_scores = torch.zeros(n, k, device=device)
    run_scores[:, 1:] = NEG  # only the first beam's tokens count at step one, as in transformers
    run_tokens = torch.empty(n, k, 0, dtype=torch.long, device=device)
    fin_tokens = torch.empty(n, k, 0, dtype=torch.long, device=device)
    fin_len = torch.zeros(n, k, dtype=torch.long, device=device)
    fin_scores = torch.full((n, k), NEG, device=device)
    fin_flag = torch.zeros(n, k, dtype=torch.bool, device=device)
    unsatisfied = torch.ones(n, 1, dtype=torch.bool, device=device)
    top_k_mask = torch.arange(2 * k, device=device) < k
    cache_rows_per_item = 1  # the prefill ran each prompt once; every beam starts from that row
    masks, shared = _mask_buffer(full_mask, s, feeder), full_mask.shape[1]  # the first `shared` slots: prompt (+ virtual)
    length = shared
    # Step one: every beam holds the same log-probabilities (one prompt row repeated).
    log_probs = F.log_softmax(logits, dim=-1)[:, None, :] + run_scores[:, :, None]
    generated = 0
    while True:
        a = run_scores.shape[0]
        top_scores, top_index = torch.topk(log_probs.reshape(a, k * vocab), 2 * k)
        parent, token = top_index // vocab, top_index % vocab
        candidates = torch.cat([torch.take_along_dim(run_tokens, parent[:, :, None], dim=1), token[:, :, None]], dim=2)
        if generated + 1 >= s.max_new_tokens:
            hits = torch.ones_like(token, dtype=torch.bool)
        elif s.eos_id is not None:
            hits = token == s.eos_id
        else:
            hits = torch.zeros_like(token, dtype=torch.bool)
        # Running beams for the next step: the best K candidates that did not stop.
        running = top_scores + hits.to(torch.float32) * NEG
        keep_index = torch.topk(running, k)[1]
        run_tokens = torch.take_along_dim(candidates, keep_index[:, :, None], dim=1)
        run_scores = torch.take_along_dim(running, keep_index, dim=1)
        run_parent = torch.take_along_dim(parent, keep_index, dim=1)
        # Finished set: merge the stopped top-K candidates (length-penalised) with the old finished ones.
        # Most steps stop nothing; then the merge would keep the old set, so it is skipped (fin_tokens
        # stays narrower than `generated` until the next merge pads it).
        just_finished = hits & top_k_mask[None, :]
        if bool(just_finished.any()):
            scores = top_scores / ((generated + 1) ** s.length_penalty)
            scores += (fin_flag.all(dim=-1, keepdim=True) & (s.early_stopping is True)).to(torch.float32) * NEG
            scores += (~unsatisfied).to(torch.float32) * NEG
            scores += (~just_finished) * NEG
            old = F.pad(fin_tokens, (0, generated + 1 - fin_tokens.shape[2]))
            merged_scores = torch.cat([fin_scores, scores], dim=1)
            pick = torch.topk(merged_scores, k)[1]
            fin_tokens = torch.take_along_dim(torch.cat([old, candidates], dim=1), pick[:, :, None], dim=1)
            fin_len = torch.take_along_dim(torch.cat([fin_len, torch.full_like(token, generated + 1)], dim=1), pick, dim=1)
            fin_scores = torch.take_along_dim(merged_scores, pick, dim=1)
            fin_flag = torch.take_along_dim(torch.cat([fin_flag, just_finished], dim=1), pick, dim=1)
        generated += 1
        # Can a running beam still beat the worst finished one? (transformers' early-stop heuristic)
        best_len = s.max_new_tokens if (s.early_stopping == "never" and s.length_penalty > 0.0) else generated
        best_possible = run_scores[:, :1] / (best_len ** s.length_penalty)
        worst = torch.where(fin_flag, torch.min(fin_scores, dim=1, keepdim=True)[0], NEG)
        unsatisfied = unsatisfied & torch.any(best_possible > worst, dim=-1, keepdim=True)
        done = ~unsatisfied[:, 0] | (fin_flag.all(dim=1) & (s.early_stopping is True))
        if generated >= s.max_new_tokens:
            done[:] = True
        for local in done.nonzero().flatten().tolist():
            results[int(items[local])] = fin_tokens[local, 0, :int(fin_len[local, 0])].tolist()
        keep = (~done).nonzero().flatten()
        if keep.numel() == 0:
            return results
        if keep.numel() < a:  # evict the finished examples: they can no longer change
            items, run_tokens, run_scores, run_parent = items[keep.cpu()], run_tokens[keep], run_scores[keep], run_parent[keep]
            fin_tokens, fin_len, fin_scores, fin_flag = fin_tokens[keep], fin_len[keep], fin_scores[keep], fin_flag[keep]
            unsatisfied, next_pos = unsatisfied[keep], next_pos[keep]
        # One gather of the cache: evicts finished examples and puts each beam's parent under it. Beams
        # of one example share its prompt slots, so unless rows change examples only generated slots move.
        parents = run_parent if cache_rows_per_item > 1 else torch.zeros_like(run_parent)
        source = (keep[:, None] * cache_rows_per_item + parents).reshape(-1)
        regroup = cache_rows_per_item == 1 or keep.numel() < a
        decode.select(source, keep if regroup else None, shared)
        if regroup:
            masks = masks[source]  # generated slots are all ones: only a change of examples moves the mask
        cache_rows_per_item = k
        length += 1
        positions = next_pos.repeat_interleave(k)
        logits = feeder.step(run_tokens[:, :, -1].reshape(-1), masks[:, :length], positions, decode.cache)
        next_pos = next_pos + 1
        log_probs = F.log_softmax(logits, dim=-1).view(-1, k, vocab) + run_scores[:, :, None]
