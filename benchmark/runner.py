"""run_trial(spec): load, inject, train, evaluate, result. The steps read top to bottom.

There is no branch on a method's, model's or dataset's name here: every difference comes
from the spec and the catalogue entries. The runner knows nothing of Ray or of the store;
a trial's own failure (bad data, NaN loss, out of memory) comes back as a failed result.
"""

from __future__ import annotations

import dataclasses
import random
import resource
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from benchmark.registry import catalogue
from benchmark.registry.spec import TrialSpec
from benchmark.result import Metric, TrialResult


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


def _features(task, tokenizer, examples: list, spec: TrialSpec, head) -> list[dict]:
    """task.features, cached by the content of everything that decides them (examples, tokenizer, settings,
    code), so the trials of a grid that share a training set tokenise it once (benchmark/data/token_cache.py)."""
    from benchmark.data import prompts, token_cache

    key = ("features", task.kind, token_cache.examples_digest(examples), token_cache.tokenizer_identity(tokenizer),
           token_cache.code_identity(type(task)), token_cache.code_identity(prompts.tokenize_for_training),
           spec.train.cutoff_len, spec.train.train_on_inputs, spec.train.doc_stride, repr(head))
    return token_cache.cached(key, lambda: task.features(tokenizer, examples, spec, head))


def _run(spec: TrialSpec, data_root: Path, result: TrialResult) -> None:
    import torch

    from benchmark import methods, models, tasks
    from benchmark.adapt.stage import prepare as adapt_base
    from benchmark.data import load_examples
    from benchmark.perf.gpu import configure_backends
    from benchmark.train import train
    from benchmark.train.loop import split_validation

    device = pick_device()
    configure_backends(device)  # TF32 matmuls on CUDA; nothing on CPU
    result.device = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()

    # 1. Data first: a missing or malformed dataset fails before any model is loaded.
    train_entry = catalogue.dataset(spec.train_data)
    task = tasks.for_dataset(train_entry)
    all_train = load_examples(train_entry, data_root)
    # The head: its label space from the whole training file (not a sample of it), regression or not from
    # the metric the (first) evaluation set reports.
    head = task.head(catalogue.dataset(spec.eval_data[0]), all_train)
    train_examples = all_train
    if spec.train.max_train_examples is not None and spec.train.max_train_examples < len(train_examples):
        train_examples = random.Random(spec.train.seed).sample(train_examples, spec.train.max_train_examples)
    # The selection split: a dev dataset, else val_set_size examples held out of the training sample.
    if spec.dev_data:
        dev_entry = catalogue.dataset(spec.dev_data)
        dev_examples = load_examples(dev_entry, data_root)
    else:
        train_examples, dev_examples = split_validation(train_examples, spec.train.val_set_size, spec.train.seed)
        dev_entry = train_entry
    eval_sets = []
    for name in spec.eval_data:
        entry = catalogue.dataset(name)
        if tasks.kind_of(entry) != task.kind:
            raise ValueError(f"eval_data {name}: a {tasks.kind_of(entry)} dataset; allowed: {task.kind} datasets "
                             f"like train_data {train_entry.name}")
        eval_sets.append((entry, load_examples(entry, data_root)[: spec.eval.max_eval_examples]))
    # The dev split is scored with the metric reported for the (first) evaluation set.
    dev_entry = dataclasses.replace(eval_sets[0][0], name=dev_entry.name) if eval_sets else dev_entry

    # 2. The base model: adaptive pretraining stages first (cached per corpus and settings), then the
    #    weights (cached per worker, a fresh copy per trial) with the task's head drawn from the trial's seed.
    model_entry = catalogue.ModelEntry(name=spec.model, source=spec.model_source, family=spec.family,
                                       dtype=spec.dtype, trust_remote_code=spec.trust_remote_code)
    model_entry = adapt_base(model_entry, spec.adapt, train_examples, data_root, device=device)
    torch.manual_seed(spec.train.seed)
    model, tokenizer = models.load_cached(model_entry, dtype=spec.dtype, head=head)
    models.fresh_head(model, spec.train.seed)
    head_params = models.head_parameters(model)

    # 3. The method: the registry builds its validated config and injects it. A task head is always trained
    #    and never counted as the method's (the papers' convention).
    model = methods.apply(model, spec.method, spec.method_args)
    for p in head_params:
        p.requires_grad_(True)
    trainable, total = methods.count_parameters(model)
    head_size = sum(p.numel() for p in head_params)
    result.trainable_params, result.total_params = trainable - head_size, total - head_size
    model.to(device)

    # 4. Train; tasks scored on a dev split keep the best epoch's weights (and stop early with a patience).
    features = _features(task, tokenizer, train_examples, spec, head)
    dev_features = _features(task, tokenizer, dev_examples, spec, head) if dev_examples else []

    def dev_score(m) -> float:
        return task.dev_metric(task.evaluate(m, tokenizer, dev_entry, dev_examples, spec, head)[0])

    selects = task.selects_on_dev and bool(dev_examples)
    stats = train(model, tokenizer, features, spec.train, device=device, val_features=dev_features,
                  dev_score=dev_score if selects else None)
    result.train_seconds = stats.seconds
    result.train_tokens_per_s = stats.tokens_per_s
    result.train_loss = stats.final_loss
    if stats.best_dev is not None:
        result.metrics.append(Metric(eval_data=dev_entry.name, family=dev_entry.family,
                                     metric=task.selection_metric(dev_entry),
                                     value=stats.best_dev, n_examples=len(dev_examples), split="dev"))
        result.decoding[f"{dev_entry.name}@dev"] = {"dev_history": stats.dev_history, "best_epoch": stats.best_epoch,
                                                    "stopped_early": stats.stopped_early}

    # 5. Evaluate every eval set with the task's protocol; keep every prediction for audit.
    started = time.perf_counter()
    n_evaluated = 0
    for entry, examples in eval_sets:
        metrics, predictions, decoding = task.evaluate(model, tokenizer, entry, examples, spec, head)
        result.metrics.extend(metrics)
        result.predictions[entry.name] = predictions
        result.decoding[entry.name] = decoding
        n_evaluated += len(examples)
    result.eval_seconds = time.perf_counter() - started
    result.eval_examples_per_s = n_evaluated / result.eval_seconds if result.eval_seconds > 0 else None
    result.peak_memory_bytes = peak_memory_bytes(device)
