"""The inference overhead of an adapter: greedy decode speed of the base, the adapted and the merged model.

Each speed is generated tokens / seconds for the same prompts (the first PROMPTS of the trial's first generation
eval set) decoded together in one batch by the fast decoder (generate.generate_ids), greedy, MAX_NEW_TOKENS for
every prompt: EOS does not stop a row here, so every model measured does the same work in the same batch shapes
(with EOS, a model that answers sooner would decode fewer and smaller steps, and its speed would say more about
its answers than about its adapter; transformers' generate, the fallback path, still stops at EOS); a short
untimed warm-up first, so the figure is decoding, not first-call costs (kernel selection, caches),
then the fastest of REPEATS timed runs (greedy decoding repeats itself exactly; the fastest run is the one least
slowed by whatever else the machine was doing).
The base is measured before the method is injected, the adapted model after evaluation with the method's decode
hook (prefix and prompt tuning feed the model virtual tokens). A method that folds its adapter into the base
weights (Method.merges: peft's merge_adapter) is also measured merged; merging and unmerging round the weights,
so `merged` puts back the exact bits it found (a co-trained group's members share them).

Forgetting (the loss on a general-text corpus) is evaluation/forgetting.py; `Probe` carries what both read.
Measuring draws no random numbers of the trial (fork_rng): the training that follows is the one without it.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from dataclasses import dataclass

import torch

from benchmark.evaluation import forgetting
from benchmark.evaluation.generate import generate_ids

PROMPTS = 8  # the first prompts of the first eval set: enough to average out one prompt's length
MAX_NEW_TOKENS = 32
WARMUP_TOKENS = 2
REPEATS = 3


@dataclass(frozen=True)
class Probe:
    """What a trial's cost measurements read: the prompts decoded, the forgetting corpus' texts (None: not
    measured), the trial's cutoff_len (a text is cut there), the method's decode hook and whether it merges."""

    prompts: tuple[str, ...]
    documents: tuple[str, ...] | None
    cutoff_len: int
    decode_hook: object | None = None
    merges: bool = False

    @classmethod
    def build(cls, eval_examples: list, documents: list[str] | None, cutoff_len: int, decode_hook=None,
              merges: bool = False) -> Probe:
        from benchmark.data.prompts import eval_prompt

        if not eval_examples:
            raise ValueError("overhead: no eval examples to take prompts from")
        texts = None if documents is None else tuple(documents[:forgetting.TEXTS])
        return cls(prompts=tuple(eval_prompt(ex) for ex in eval_examples[:PROMPTS]), documents=texts,
                   cutoff_len=cutoff_len, decode_hook=decode_hook, merges=merges)

    @property
    def base_key(self) -> tuple:
        """What the base measurements depend on: trials of one shared base with equal keys measure it once."""
        return self.prompts, self.documents, self.cutoff_len

    def base(self, model, tokenizer) -> dict:
        """The base model's figures, by TrialResult field."""
        out = {"base_decode_tokens_per_s": decode_tokens_per_s(model, tokenizer, self.prompts)}
        if self.documents is not None:
            out["forgetting_base_loss"] = forgetting.mean_token_loss(model, tokenizer, self.documents, self.cutoff_len)
        return out

    def adapted(self, model, tokenizer) -> dict:
        """The adapted model's figures, by TrialResult field (merged: only for a method that merges)."""
        out = {"decode_tokens_per_s": decode_tokens_per_s(model, tokenizer, self.prompts, self.decode_hook)}
        if self.documents is not None:
            out["forgetting_loss"] = forgetting.mean_token_loss(model, tokenizer, self.documents, self.cutoff_len)
        if self.merges:
            with merged(model):
                out["merged_decode_tokens_per_s"] = decode_tokens_per_s(model, tokenizer, self.prompts,
                                                                        self.decode_hook)
        return out


def _cuda_devices(model) -> list:
    device = next(model.parameters()).device
    return [device] if device.type == "cuda" else []


def _synchronize(devices: list) -> None:
    for device in devices:
        torch.cuda.synchronize(device)


class _WithoutEos:
    """The tokenizer with no EOS token (eos_token_id None): the decoder then runs every row to max_new_tokens."""

    eos_token_id = None

    def __init__(self, tokenizer):
        self._tokenizer = tokenizer

    def __call__(self, *args, **kwargs):
        return self._tokenizer(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._tokenizer, name)


def decode_tokens_per_s(model, tokenizer, prompts, decode_hook=None) -> float | None:
    """Generated tokens (each prompt's continuation) / seconds decoding `prompts` in one greedy batch without EOS
    (the fastest of REPEATS runs); None when the clock read 0."""
    prompts = list(prompts)
    decoder_tokenizer = _WithoutEos(tokenizer)
    devices = _cuda_devices(model)
    was_training = model.training
    model.eval()
    try:
        with torch.random.fork_rng(devices=devices), torch.inference_mode():
            generate_ids(model, decoder_tokenizer, prompts, WARMUP_TOKENS, num_beams=1, batch_size=len(prompts),
                         decode_hook=decode_hook)
            timings = []
            for _ in range(REPEATS):
                _synchronize(devices)
                started = time.perf_counter()
                sequences = generate_ids(model, decoder_tokenizer, prompts, MAX_NEW_TOKENS, num_beams=1,
                                         batch_size=len(prompts), decode_hook=decode_hook)
                _synchronize(devices)
                timings.append(time.perf_counter() - started)
    finally:
        model.train(was_training)
    prompt_lengths = [len(ids) for ids in tokenizer(prompts)["input_ids"]]
    generated = sum(len(seq) - n for seq, n in zip(sequences, prompt_lengths))
    seconds = min(timings)
    return generated / seconds if seconds > 0 else None


def _tuned_base_layers(model) -> list:
    """The base layers peft's tuner layers wrap: the only modules whose weights merging changes."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [m.get_base_layer() for m in model.modules() if isinstance(m, BaseTunerLayer)]


@contextlib.contextmanager
def merged(model):
    """The adapter merged into the base weights inside the block; afterwards unmerged, with the base weights
    restored to the exact values they had (unmerging alone leaves rounding: W + BA - BA is not W)."""
    if not (hasattr(model, "merge_adapter") and hasattr(model, "unmerge_adapter")):
        raise TypeError(f"merged: {type(model).__name__} has no merge_adapter/unmerge_adapter; allowed: a peft model "
                        "of a method that declares merges=True")
    saved = [(p, p.detach().to("cpu", copy=True)) for layer in _tuned_base_layers(model)
             for p in layer.parameters(recurse=False)]
    with torch.no_grad():
        model.merge_adapter()
    try:
        yield model
    finally:
        with torch.no_grad(), warnings.catch_warnings():
            # peft warns that (IA)^3's unmerge is inexact: the exact values are put back just below
            warnings.filterwarnings("ignore", message="Unmerge result can be inaccurate")
            model.unmerge_adapter()
            for param, value in saved:
                param.copy_(value)
