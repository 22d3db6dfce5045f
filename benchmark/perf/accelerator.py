"""`peft-bench perf --device cuda`: the GPU figures, on a 1B-class LLaMA shape with random weights.

No weights can be downloaded, and speed does not depend on their values, so the model is built
from a config (TinyLlama-1.1B's shape: 22 layers, hidden 2048, GQA 32/4 heads, vocab 32000) with
random weights, in bf16, on the device. The data are the embedded tasks (the embedded tokenizer's
ids all fit in the vocabulary).

- training: the same LoRA (r 8, LLM-Adapters' targets) trained the same steps by the reference
  loop (padded, plain shuffle), length-grouped padding and packing, at a few (batch, micro-batch)
  sizes: the protocol's 16/4, where ours feeds a step in fewer, fuller forwards, and micro = batch;
  non-pad tokens/s, loss, peak memory, and model FLOP utilisation (MFU) against the chip's dense
  bf16 peak: a frozen base costs 4N FLOPs per token (forward 2N, input gradients 2N; no weight
  gradients), plus attention (causal: 6 x layers x hidden x n^2 per example of n tokens, forward
  and backward);
- evaluation: the reference decoding (batch 1, no cache, 4 beams) on a few prompts vs ours on all
  of them, in bf16, examples/s; then token-for-token identity on a few prompts in fp32 (bf16 rounding
  differs with the batch shape; random weights make near-ties common, so bf16 outputs may differ);
- gradient checkpointing on one configuration: tokens/s and peak memory beside the run without.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field, replace

from benchmark.perf.settings import workload
from benchmark.perf.training import LORA_ARGS, REFERENCE_LOOP

SHAPES = {
    # TinyLlama-1.1B (arXiv 2401.02385): the 1B-class LLaMA shape.
    "llama-1b": {"hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 22, "num_attention_heads": 32,
                 "num_key_value_heads": 4, "vocab_size": 32000, "max_position_embeddings": 2048, "rms_norm_eps": 1e-5},
    # For the test suite on CPU: same code, seconds.
    "tiny": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 2, "vocab_size": 2048, "max_position_embeddings": 512, "rms_norm_eps": 1e-5},
}
# Dense bf16 tensor-core peak by the vendors' datasheets (TFLOP/s), matched on the device name.
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0}
MODES = {"reference": REFERENCE_LOOP,
         "grouped": {"group_by_length": True, "packing": False},
         "packed": {"group_by_length": False, "packing": True}}


@dataclass(frozen=True)
class DeviceSettings:
    shape: str = "llama-1b"
    device: str = "cuda"
    dtype: str = "bfloat16"
    train_dataset: str = field(default_factory=lambda: workload()["train_data"])
    train_examples: int = 2048
    train_steps: int = 60
    # (examples a step, micro-batch size): LLM-Adapters' math commands (16/4), then one forward a step
    batches: tuple[tuple[int, int], ...] = ((16, 4), (16, 16), (64, 64))
    cutoff_len: int = 256
    eval_dataset: str = field(default_factory=lambda: workload()["eval_data"])
    eval_prompts: int = 120
    reference_prompts: int = 4
    max_new_tokens: int = 256
    num_beams: int = 4
    identity_prompts: int = 4
    identity_new_tokens: int = 32

    def __post_init__(self):
        if self.shape not in SHAPES:
            raise ValueError(f"perf.shape: got {self.shape!r}; allowed: {', '.join(SHAPES)}")
        if self.dtype not in ("bfloat16", "float32"):
            raise ValueError(f"perf.dtype: got {self.dtype!r}; allowed: bfloat16, float32")
        if not self.batches or any(len(b) != 2 or b[1] < 1 or b[0] % b[1] for b in self.batches):
            raise ValueError(f"perf.batches: got {self.batches!r}; allowed: (batch, micro_batch) pairs, the batch a "
                             "multiple of the micro-batch")
        if self.reference_prompts > self.eval_prompts or self.identity_prompts > self.eval_prompts:
            raise ValueError("perf.reference_prompts / identity_prompts: allowed: at most eval_prompts")


TINY = DeviceSettings(shape="tiny", device="cpu", dtype="float32", train_examples=32, train_steps=2,
                      batches=((8, 4),), cutoff_len=64, eval_prompts=3, reference_prompts=2, max_new_tokens=6,
                      identity_prompts=2, identity_new_tokens=4)


def _dtype(name: str):
    import torch

    return {"bfloat16": torch.bfloat16, "float32": torch.float32}[name]


def build(s: DeviceSettings, dtype: str | None = None):
    """(model, tokenizer): the shape with random weights (fixed seed), in eval mode on the device."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from benchmark.models import tokenizer as embedded_tokenizer
    from benchmark.models.tokenizer import BOS_ID, CAUSAL_PAD_ID, EOS_ID

    tok = embedded_tokenizer.wrap("causal")
    config = LlamaConfig(**SHAPES[s.shape], bos_token_id=BOS_ID, eos_token_id=EOS_ID, pad_token_id=CAUSAL_PAD_ID,
                         tie_word_embeddings=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        with torch.device(s.device):
            model = LlamaForCausalLM(config)
    model = model.to(_dtype(dtype or s.dtype)).eval()
    for name, value in (("bos_token_id", BOS_ID), ("eos_token_id", EOS_ID), ("pad_token_id", CAUSAL_PAD_ID)):
        setattr(model.generation_config, name, value)
    return model, tok


def peak_tflops(device: str) -> float | None:
    import torch

    if not device.startswith("cuda"):
        return None
    name = torch.cuda.get_device_name()
    return next((peak for key, peak in PEAK_BF16_TFLOPS.items() if key in name), None)


def matmul_params(model) -> int:
    """Parameters that multiply every token: the decoder's linear layers and the LM head (not embeddings)."""
    import torch

    return sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _reset_peak(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peak_gib(device: str) -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None


def train_one(s: DeviceSettings, base, tok, feats, batch: tuple[int, int], mode: str, checkpointing: bool = False,
              steps: int | None = None, math_sdpa: bool = False) -> dict:
    """One loop's figures, or its error; math_sdpa: SDPA's reference (math) kernel only, to tell a
    kernel's non-finite result from the model's."""
    import contextlib

    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel([SDPBackend.MATH]) if math_sdpa else contextlib.nullcontext():
        result = _train_one(s, base, tok, feats, batch, mode, checkpointing, steps)
    result["math_sdpa"] = math_sdpa
    return result


def _train_one(s: DeviceSettings, base, tok, feats, batch: tuple[int, int], mode: str, checkpointing: bool,
               steps: int | None) -> dict:
    import torch

    from benchmark import methods
    from benchmark.registry.spec import TrainConfig
    from benchmark.train import train

    steps = steps or s.train_steps
    batch_size, micro = batch
    which = {"batch_size": batch_size, "micro_batch_size": micro}
    torch.manual_seed(0)
    model = methods.apply(copy.deepcopy(base), "lora", dict(LORA_ARGS))
    cfg = TrainConfig(batch_size=batch_size, micro_batch_size=micro, max_steps=steps, learning_rate=3e-4, warmup_steps=0,
                      cutoff_len=s.cutoff_len, gradient_checkpointing=checkpointing, seed=0, **MODES[mode])
    _reset_peak(s.device)
    _sync(s.device)
    try:
        stats = train(model, tok, feats, cfg, device=s.device, log_every=steps)
    except FloatingPointError as error:  # recorded; the other loops are still measured
        return {"mode": mode, **which, "gradient_checkpointing": checkpointing,
                "error": str(error),
                "nan_in_trainable": any(bool(p.isnan().any()) for p in model.parameters() if p.requires_grad)}
    _sync(s.device)
    n_matmul = matmul_params(base)
    lengths = [len(f["input_ids"]) for f in feats]
    mean_sq = sum(n * n for n in lengths) / len(lengths)  # of the data set: the steps' examples are a sample
    config = base.config
    # attention FLOPs per example (causal): forward 2 x 2 x hidden x n^2 / 2 per layer, backward twice that
    attention_per_example = 6 * config.num_hidden_layers * config.hidden_size * mean_sq
    flops = 4 * n_matmul * stats.tokens + attention_per_example * steps * batch_size
    peak = peak_tflops(s.device)
    achieved = flops / stats.seconds / 1e12 if stats.seconds else None
    del model
    return {"mode": mode, **which, "steps": stats.steps, "packed": stats.packed,
            "forwards_per_step": stats.forwards / stats.steps if stats.steps else None,
            "gradient_checkpointing": checkpointing, "tokens": stats.tokens, "seconds": stats.seconds,
            "tokens_per_s": stats.tokens_per_s, "final_loss": stats.final_loss, "peak_memory_gib": _peak_gib(s.device),
            "achieved_tflops": achieved, "mfu": achieved / peak if achieved and peak else None}


def train_figures(s: DeviceSettings, base, tok, log=print) -> dict:
    from benchmark.perf.settings import Settings
    from benchmark.perf.training import features

    feats = features(Settings(train_dataset=s.train_dataset, train_examples=s.train_examples,
                              cutoff_len=s.cutoff_len), tok)
    for mode in MODES:  # warm-up: kernels, allocator, the packing probe
        train_one(s, base, tok, feats, s.batches[0], mode, steps=3)
    runs, failed = [], []
    plan = [(batch, mode, False) for batch in s.batches for mode in MODES]
    plan.append((s.batches[-1], "packed", True))  # + gradient checkpointing
    for batch, mode, checkpointing in plan:
        run = train_one(s, base, tok, feats, batch, mode, checkpointing)
        name = f"batch {batch[0]} micro {batch[1]} {mode}" + (" + checkpointing" if checkpointing else "")
        if "error" not in run:
            runs.append(run)
            log(f"perf[{s.device}]: train {name}: {run['tokens_per_s']:,.0f} tokens/s")
            continue
        log(f"perf[{s.device}]: train {name}: {run['error']}")
        if s.device.startswith("cuda"):  # the same loop on SDPA's math kernel: a kernel's doing?
            rerun = train_one(s, base, tok, feats, batch, mode, checkpointing, math_sdpa=True)
            run["math_sdpa_rerun"] = rerun.get("error", "finite")
            log(f"perf[{s.device}]: ... on the math kernel: {run['math_sdpa_rerun']}")
        failed.append(run)
    checkpointed = next((r for r in runs if r["gradient_checkpointing"]), None)
    runs = [r for r in runs if not r["gradient_checkpointing"]]
    by = {(r["batch_size"], r["micro_batch_size"], r["mode"]): r for r in runs}
    speedups = {f"{b}/{m}.{mode}": by[(b, m, mode)]["tokens_per_s"] / by[(b, m, "reference")]["tokens_per_s"]
                for b, m in s.batches for mode in MODES
                if mode != "reference" and (b, m, mode) in by and (b, m, "reference") in by}
    return {"runs": runs, "failed": failed, "gradient_checkpointing": checkpointed, "speedup_vs_reference": speedups,
            "matmul_params": matmul_params(base), "peak_bf16_tflops": peak_tflops(s.device),
            "mean_tokens_per_example": sum(len(f["input_ids"]) for f in feats) / len(feats)}


def eval_figures(s: DeviceSettings, model, tok, log=print) -> dict:
    import torch

    from benchmark.device import decoding_batch_size
    from benchmark.evaluation.generate import generate_ids, generate_reference_ids
    from benchmark.perf.evaluation import eval_prompts
    from benchmark.perf.settings import Settings

    prompts = eval_prompts(Settings(eval_dataset=s.eval_dataset, eval_prompts=s.eval_prompts))
    lengths = [len(ids) for ids in tok(prompts)["input_ids"]]
    batch = decoding_batch_size(model, max(lengths), s.max_new_tokens, s.num_beams, fallback=16)
    few = prompts[:s.reference_prompts]
    with torch.inference_mode():
        generate_reference_ids(model, tok, few[:1], 8, s.num_beams)  # warm-up
        generate_ids(model, tok, prompts[:batch], 8, s.num_beams, batch)
        _sync(s.device)
        started = time.perf_counter()
        reference = generate_reference_ids(model, tok, few, s.max_new_tokens, s.num_beams)
        _sync(s.device)
        reference_s = time.perf_counter() - started
        log(f"perf[{s.device}]: eval reference {len(few) / reference_s:.3f} examples/s")
        _reset_peak(s.device)
        started = time.perf_counter()
        ours = generate_ids(model, tok, prompts, s.max_new_tokens, s.num_beams, batch)
        _sync(s.device)
        ours_s = time.perf_counter() - started
    figures = {"n_reference": len(few), "n_ours": len(prompts), "batch_size": batch, "num_beams": s.num_beams,
               "max_new_tokens": s.max_new_tokens, "dtype": s.dtype,
               "reference_examples_per_s": len(few) / reference_s, "ours_examples_per_s": len(prompts) / ours_s,
               "ours_peak_memory_gib": _peak_gib(s.device),
               "mean_new_tokens": sum(len(o) - n for o, n in zip(ours, lengths)) / len(prompts),
               f"{s.dtype}_mismatches_on_reference_prompts": sum(a != b for a, b in zip(reference, ours))}
    figures["speedup"] = figures["ours_examples_per_s"] / figures["reference_examples_per_s"]
    log(f"perf[{s.device}]: eval ours {figures['ours_examples_per_s']:.2f} examples/s, {figures['speedup']:.1f}x")
    return figures


def identity_figures(s: DeviceSettings, model_fp32, tok) -> dict:
    """Token-for-token identity in fp32 (TF32 off), reference vs ours, on a few prompts."""
    import torch

    from benchmark.evaluation.generate import generate_ids, generate_reference_ids
    from benchmark.perf.evaluation import eval_prompts
    from benchmark.perf.settings import Settings

    prompts = eval_prompts(Settings(eval_dataset=s.eval_dataset, eval_prompts=s.eval_prompts))[:s.identity_prompts]
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        with torch.inference_mode():
            reference = generate_reference_ids(model_fp32, tok, prompts, s.identity_new_tokens, s.num_beams)
            ours = generate_ids(model_fp32, tok, prompts, s.identity_new_tokens, s.num_beams, len(prompts))
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
    return {"n": len(prompts), "max_new_tokens": s.identity_new_tokens, "outputs_identical": reference == ours,
            "mismatches": sum(a != b for a, b in zip(reference, ours))}


def run(s: DeviceSettings, log=print, save=None, only: tuple[str, ...] = ("train", "eval", "identity_fp32")) -> dict:
    """Every measurement; `save(figures)` is called after each part, so a run cut short keeps what it measured."""
    import torch

    from benchmark.device import configure_backends
    from benchmark.perf.suite import machine

    if s.device.startswith("cuda") and not torch.cuda.is_available():
        from benchmark.errors import UserError

        raise UserError(f"perf --device {s.device}: torch sees no CUDA device (allowed: cuda on a machine with a "
                        "GPU, or cpu)")
    started = time.perf_counter()
    figures = {"settings": asdict(s), "machine": machine(), "backends": configure_backends(s.device)}
    if s.device.startswith("cuda"):
        figures["machine"]["gpu"] = torch.cuda.get_device_name()
    save = save or (lambda fig: None)
    parts = (("train", lambda: train_figures(s, base, tok, log)), ("eval", lambda: eval_figures(s, base, tok, log)),
             ("identity_fp32", lambda: identity_figures(s, build(s, "float32")[0], tok)))
    base, tok = build(s)
    figures["model"] = {"shape": s.shape, **SHAPES[s.shape], "parameters": sum(p.numel() for p in base.parameters())}
    for name, part in parts:
        if name not in only:
            continue
        log(f"perf[{s.device}]: {name}")
        try:
            figures[name] = part()
        except Exception as error:  # noqa: BLE001  record it and measure the rest
            import traceback

            figures[name] = {"error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()}
            log(f"perf[{s.device}]: {name} failed: {figures[name]['error']}")
        if name == "eval":
            del base
            if s.device.startswith("cuda"):
                torch.cuda.empty_cache()
        figures["seconds"] = time.perf_counter() - started
        save(figures)
    return figures


def pick(device: str, quick: bool) -> DeviceSettings:
    chosen = DeviceSettings(device=device)
    return replace(chosen, batches=((16, 4), (16, 16)), eval_prompts=64, reference_prompts=2) if quick else chosen
