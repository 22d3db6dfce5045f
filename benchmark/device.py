"""The device a trial runs on and its settings: which device, fast matmul flags, memory figures.

Read by the runner (pick_device, configure_backends, MemorySampler), by generation tasks
(decoding_batch_size) and by `peft-bench perf`, so none of them needs the profiler package. All are
safe to call anywhere: on CPU `configure_backends` changes nothing, and `eval_batch_size` is plain
arithmetic over the model config (no device needed). `decoding_batch_size` is the batch that fits
the free memory of the model's device (CUDA free memory, or the host's available RAM), capped per
kind of device; outputs never depend on it (tested), only speed does.
"""

from __future__ import annotations

import math
import os
import resource
import threading

# Share of the free memory the decoding may plan to use: the rest covers the allocator's
# fragmentation, the transient copy of the KV cache at each beam reorder and activations.
DEFAULT_MEMORY_FRACTION = 0.6
MAX_EVAL_BATCH = 512
# On CPU a decode step costs a fixed ~1 ms of Python and kernel launches plus a part that grows with
# the rows; wide batches amortise the first (tiny-llama, 96 gsm8k prompts, 4 beams: 135 examples/s at
# batch 16, 174 at 32, 210 at 48, 230 at 96), past ~100 examples little is left to gain.
MAX_CPU_EVAL_BATCH = 128


def pick_device() -> str:
    """cuda when torch sees a GPU, else cpu (a trial uses one device)."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def configure_backends(device) -> dict:
    """TF32 matmuls and cuDNN convolutions on CUDA (Ampere+: ~8x fp32 matmul throughput; bf16 runs are
    unaffected). Returns what was set; an empty dict on CPU, where nothing changes."""
    import torch

    if not str(device).startswith("cuda"):
        return {}
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.set_float32_matmul_precision("high")
    return {"matmul.allow_tf32": True, "cudnn.allow_tf32": True, "float32_matmul_precision": "high"}


def _config_int(config, *names: str) -> int | None:
    for name in names:
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def bytes_per_example(model, prompt_len: int, max_new_tokens: int, num_beams: int) -> int:
    """Peak bytes one example costs our beam search: its KV cache at full length for every beam (twice:
    the reorder copies it), plus the fp32 log-probabilities of each beam over the vocabulary."""
    config = getattr(model, "config", None)
    if hasattr(model, "get_base_model"):
        config = model.get_base_model().config
    if config is None:
        raise ValueError("model: has no config; allowed: a transformers model or a peft wrapper of one")
    layers = _config_int(config, "num_hidden_layers", "n_layer")
    hidden = _config_int(config, "hidden_size", "n_embd")
    heads = _config_int(config, "num_attention_heads", "n_head")
    vocab = _config_int(config, "vocab_size")
    if None in (layers, hidden, heads, vocab):
        raise ValueError("model.config: needs num_hidden_layers, hidden_size, num_attention_heads and vocab_size")
    kv_heads = _config_int(config, "num_key_value_heads") or heads
    head_dim = _config_int(config, "head_dim") or hidden // heads
    dtype_bytes = next(model.parameters()).element_size()
    kv = 2 * layers * kv_heads * head_dim * dtype_bytes * (prompt_len + max_new_tokens) * num_beams
    logits = 3 * num_beams * vocab * 4  # logits, log-softmax and the candidate scores, fp32
    prefill = 4 * prompt_len * hidden * dtype_bytes * 4  # hidden states and MLP activations of the prompt pass
    return 2 * kv + logits + prefill


def eval_batch_size(model, free_bytes: int, prompt_len: int, max_new_tokens: int, num_beams: int,
                    memory_fraction: float = DEFAULT_MEMORY_FRACTION, max_batch: int = MAX_EVAL_BATCH) -> int:
    """Examples per decoding batch that fit in `free_bytes` (e.g. torch.cuda.mem_get_info()[0]), at least 1."""
    for name, value in (("free_bytes", free_bytes), ("prompt_len", prompt_len), ("max_new_tokens", max_new_tokens),
                        ("num_beams", num_beams), ("max_batch", max_batch)):
        if not isinstance(value, int) or isinstance(value, bool) or value < (0 if name == "free_bytes" else 1):
            raise ValueError(f"{name}: got {value!r}; allowed: an integer >= {0 if name == 'free_bytes' else 1}")
    if not 0.0 < memory_fraction <= 1.0:
        raise ValueError(f"memory_fraction: got {memory_fraction!r}; allowed: a number in (0, 1]")
    per_example = bytes_per_example(model, prompt_len, max_new_tokens, num_beams)
    return max(1, min(max_batch, int(free_bytes * memory_fraction) // per_example))


def free_memory_bytes(device) -> int | None:
    """Free memory for the decoding: free accelerator memory on CUDA, the host's available RAM on CPU
    (Linux MemAvailable); None where it cannot be read (then the configured batch size stands)."""
    import torch

    if str(device).startswith("cuda"):
        if not torch.cuda.is_available():
            return None
        return int(torch.cuda.mem_get_info(torch.device(device))[0])
    if str(device) != "cpu":
        return None  # mps, xla, ...: no portable free-memory query
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def decoding_batch_size(model, prompt_len: int, max_new_tokens: int, num_beams: int, fallback: int) -> int:
    """Examples per decoding batch for `model` on its device: from free memory, at most MAX_EVAL_BATCH
    on CUDA and MAX_CPU_EVAL_BATCH on CPU; `fallback` where free memory cannot be read."""
    device = next(model.parameters()).device
    free = free_memory_bytes(device)
    if free is None:
        return fallback
    cap = MAX_EVAL_BATCH if device.type == "cuda" else MAX_CPU_EVAL_BATCH
    return eval_batch_size(model, free, prompt_len=prompt_len, max_new_tokens=max_new_tokens,
                           num_beams=num_beams, max_batch=cap)


class MemorySampler:
    """A phase's memory, sampled every `interval` seconds in a thread: `peak` and `p99` bytes. CUDA: the allocator's
    allocated bytes (the peak from its own counter, which no sample can miss); CPU: the process's resident set from
    /proc/self/statm, so a trial's figure is its own and not the high-water mark of a worker that ran others before
    it. Where /proc is missing (macOS), the peak is the process's high-water mark and p99 is unknown (None)."""

    def __init__(self, device: str, interval: float = 0.02):
        self.cuda, self.interval = str(device).startswith("cuda"), interval
        self.samples: list[int] = []
        self.peak: int | None = None
        self.p99: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _now(self) -> int | None:
        if self.cuda:
            import torch

            return int(torch.cuda.memory_allocated())
        try:
            with open("/proc/self/statm") as statm:
                return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            return None

    def _sample(self) -> None:
        while True:
            now = self._now()
            if now is not None:
                self.samples.append(now)
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> MemorySampler:
        if self.cuda:
            import torch

            torch.cuda.reset_peak_memory_stats()
        self._thread = threading.Thread(target=self._sample, name="peft-bench-memory", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        last = self._now()  # the phase's end, however short it was
        if last is not None:
            self.samples.append(last)
        if self.samples:
            ordered = sorted(self.samples)
            self.p99 = ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]
            self.peak = ordered[-1]
        if self.cuda:
            import torch

            self.peak = int(torch.cuda.max_memory_allocated())
        elif not self.samples:
            self.peak = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def release_memory() -> None:
    """Give the heap memory freed by a finished trial back to the OS. A reused Ray worker runs each trial in a
    new thread, and glibc keeps a malloc arena per thread whose freed pages it does not return on its own:
    measured on smollm2-135m, a worker's resident memory grew by ~1.5 GB a trial until Ray killed it for
    memory. malloc_trim releases the free pages of every arena; elsewhere than glibc this is only a gc."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing more to do
        pass
