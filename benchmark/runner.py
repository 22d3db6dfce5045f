"""run_trial(spec): load, inject, train, evaluate, result. The steps read top to bottom.

There is no branch on a method's, model's or dataset's name here: every difference comes
from the spec and the catalogue entries. The runner knows nothing of Ray or of the store;
a trial's own failure (bad data, NaN loss, out of memory) comes back as a failed result.
"""

from __future__ import annotations

import random
import resource
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from benchmark.registry import catalogue
from benchmark.registry.spec import TrialSpec
from benchmark.result import TrialResult


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def pick_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def peak_memory_bytes(device: str) -> int:
    """Peak accelerator memory on GPU; on CPU the process's peak resident set (shared by reused workers)."""
    import torch

    if device.startswith("cuda"):
        return int(torch.cuda.max_memory_allocated())
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def run_trial(spec: TrialSpec, data_root: str | Path) -> TrialResult:
    result = TrialResult(spec=spec, started_at=_now())
    try:
        _run(spec, Path(data_root), result)
    except Exception as exc:  # the trial failed; the run goes on and the store records why
        result.status = "failed"
        result.error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
    result.finished_at = _now()
    return result


def _run(spec: TrialSpec, data_root: Path, result: TrialResult) -> None:
    import torch

    from benchmark import methods, models
    from benchmark.data import load_examples
    from benchmark.data.prompts import tokenize_for_training
    from benchmark.evaluation import evaluate
    from benchmark.train import train

    device = pick_device()
    result.device = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()

    # 1. Data first: a missing or malformed dataset fails before any model is loaded.
    train_examples = load_examples(catalogue.dataset(spec.train_data), data_root)
    if spec.train.max_train_examples is not None and spec.train.max_train_examples < len(train_examples):
        train_examples = random.Random(spec.train.seed).sample(train_examples, spec.train.max_train_examples)
    eval_sets = []
    for name in spec.eval_data:
        entry = catalogue.dataset(name)
        examples = load_examples(entry, data_root)[: spec.eval.max_eval_examples]
        eval_sets.append((entry, examples))

    # 2. The base model: weights cached per worker, a fresh copy per trial (nothing leaks between trials).
    model_entry = catalogue.ModelEntry(name=spec.model, source=spec.model_source, family=spec.family,
                                       dtype=spec.dtype, trust_remote_code=spec.trust_remote_code)
    torch.manual_seed(spec.train.seed)
    model, tokenizer = models.load_cached(model_entry, dtype=spec.dtype)

    # 3. The method: the registry builds its validated config and injects it.
    model = methods.apply(model, spec.method, spec.method_args)
    result.trainable_params, result.total_params = methods.count_parameters(model)
    model.to(device)

    # 4. Train.
    features = [tokenize_for_training(tokenizer, ex, spec.train.cutoff_len, spec.train.train_on_inputs)
                for ex in train_examples]
    stats = train(model, tokenizer, features, spec.train, device=device)
    result.train_seconds = stats.seconds
    result.train_tokens_per_s = stats.tokens_per_s
    result.train_loss = stats.final_loss

    # 5. Evaluate every eval set with the spec's protocol; keep every prediction for audit.
    started = time.perf_counter()
    n_evaluated = 0
    for entry, examples in eval_sets:
        metric, predictions, decoding = evaluate(model, tokenizer, entry, examples, spec.eval)
        result.metrics.append(metric)
        result.predictions[entry.name] = predictions
        result.decoding[entry.name] = decoding
        n_evaluated += len(examples)
    result.eval_seconds = time.perf_counter() - started
    result.eval_examples_per_s = n_evaluated / result.eval_seconds if result.eval_seconds > 0 else None
    result.peak_memory_bytes = peak_memory_bytes(device)
