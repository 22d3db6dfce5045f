"""run_resolved(trial): load, inject, train, evaluate, result. The steps read top to bottom.

The trial comes resolved by the planner (benchmark/planner.py): catalogue entries, task, method
config and adapt stages are used as given, never looked up again. There is no branch on a
method's, model's or dataset's name here. The runner knows nothing of Ray or of the store;
a trial's own failure (bad data, NaN loss, out of memory) comes back as a failed result.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from benchmark.device import MemorySampler, configure_backends, pick_device
from benchmark.planner import ResolvedTrial, resolve
from benchmark.registry.spec import TrialSpec
from benchmark.result import Metric, TrialResult

log = logging.getLogger(__name__)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def run_trial(spec: TrialSpec, data_root: str | Path, save_adapter: bool = False) -> TrialResult:
    """Resolve the spec (a spec the catalogue no longer resolves is a failed result) and run it."""
    try:
        trial = resolve(spec)
    except Exception as exc:
        return _failed(TrialResult(spec=spec, started_at=_now()), exc)
    return run_resolved(trial, data_root, save_adapter)


def run_resolved(trial: ResolvedTrial, data_root: str | Path, save_adapter: bool = False) -> TrialResult:
    """save_adapter: keep what the trial trained in a local staging folder (result.adapter_dir) that the store
    publishes beside the result and the caller removes (scheduler/core.run_and_store does both; off by default so
    a direct call leaves nothing behind); it never changes the trial's id or numbers."""
    result = TrialResult(spec=trial.spec, started_at=_now())
    try:
        _run(trial, Path(data_root), result, save_adapter)
    except Exception as exc:  # the trial failed; the run goes on and the store records why
        return _failed(result, exc)
    result.finished_at = _now()
    return result


def _failed(result: TrialResult, exc: BaseException) -> TrialResult:
    result.status = "failed"
    result.error = f"{type(exc).__name__}: {exc}\n{''.join(traceback.format_exception(exc))}"
    result.finished_at = _now()
    return result


def _features(task, tokenizer, examples: list, spec: TrialSpec, head) -> list[dict]:
    """task.features, cached by the content of everything that decides them (examples, tokenizer, settings,
    code), so the trials of a grid that share a training set tokenise it once (benchmark/data/token_cache.py)."""
    from benchmark.data import prompts, token_cache

    key = ("features", task.kind, token_cache.examples_digest(examples), token_cache.tokenizer_identity(tokenizer),
           token_cache.code_identity(type(task)), token_cache.code_identity(prompts.tokenize_for_training),
           spec.train.cutoff_len, spec.trains_on_inputs, spec.eval.quirk_on("no_eos_when_truncated"),
           spec.train.doc_stride, repr(head))
    return token_cache.cached(key, lambda: task.features(tokenizer, examples, spec, head))


def _device(result: TrialResult) -> str:
    import torch

    device = pick_device()
    configure_backends(device)  # TF32 matmuls on CUDA; nothing on CPU
    result.device = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    return device


def _training_data(trial: ResolvedTrial, data_root: Path) -> tuple:
    """(head, train_examples, dev_examples): the task head, the training sample and the selection split."""
    from benchmark.data import load_examples
    from benchmark.train.loop import split_validation

    spec, task = trial.spec, trial.task
    all_train = load_examples(trial.train_data, data_root)
    # The head: its label space from the whole training file (not a sample of it), regression or not from
    # the metric the (first) evaluation set reports.
    head = task.head(trial.scoring_entry, all_train)
    train_examples = all_train
    if spec.train.max_train_examples is not None and spec.train.max_train_examples < len(train_examples):
        train_examples = random.Random(spec.train.seed).sample(train_examples, spec.train.max_train_examples)
    # The selection split: a dev dataset, else val_set_size examples held out of the training sample.
    if trial.dev_data is not None:
        dev_examples = load_examples(trial.dev_data, data_root)
    else:
        train_examples, dev_examples = split_validation(train_examples, spec.train.val_set_size, spec.train.seed)
    return head, train_examples, dev_examples


def _eval_sets(trial: ResolvedTrial, data_root: Path) -> list:
    from benchmark.data import load_examples

    return [(entry, load_examples(entry, data_root)[: trial.spec.eval.max_eval_examples]) for entry in trial.eval_data]


def _base_model(trial: ResolvedTrial, train_examples: list, head, data_root: Path, device: str):
    """Adaptive pretraining stages first (cached per corpus and settings), then the weights (cached per worker,
    a fresh copy per trial) with the task's head drawn from the trial's seed."""
    import torch

    from benchmark import models
    from benchmark.adapt.stage import prepare as adapt_base

    model_entry = adapt_base(trial.model, trial.adapt_stages, train_examples, data_root, device=device)
    torch.manual_seed(trial.spec.train.seed)
    model, tokenizer = models.load_cached(model_entry, dtype=trial.spec.dtype, head=head)
    models.fresh_head(model, trial.spec.train.seed)
    return model, tokenizer, models.load_notes(model)


def _run(trial: ResolvedTrial, data_root: Path, result: TrialResult, save_adapter: bool) -> None:
    from benchmark import methods, models
    from benchmark.methods import saving

    device = _device(result)
    spec = trial.spec
    # 1. Data first: a missing or malformed dataset fails before any model is loaded.
    head, train_examples, dev_examples = _training_data(trial, data_root)
    eval_sets = _eval_sets(trial, data_root)
    probe = _probe(trial, eval_sets, data_root)

    # 2. The base model, with the task's head drawn from the trial's seed; what it costs at inference (and its loss
    #    on the forgetting corpus), measured before the method changes it.
    model, tokenizer, load_notes = _base_model(trial, train_examples, head, data_root, device)
    head_params = models.head_parameters(model)
    if probe is not None:
        _record(result, _measure_base(probe, model, tokenizer, device))

    # 3. The method: injected with the config the planner validated. A task head is always trained and never
    #    counted as the method's (the papers' convention).
    model = methods.get(spec.method).inject(model, trial.method_config)
    for p in head_params:
        p.requires_grad_(True)
    trainable, total = methods.count_parameters(model)
    head_size = sum(p.numel() for p in head_params)
    result.trainable_params, result.total_params = trainable - head_size, total - head_size
    model.to(device)

    # 4. Train, unless nothing trains (zero-shot: a method that trains nothing and no task head): then the base
    #    model is evaluated as it is, with no optimizer, no dev selection and 0 training seconds.
    if trainable:
        with MemorySampler(device) as memory:
            _train(trial, model, tokenizer, head, train_examples, dev_examples, device, result)
        _record_memory(result, "train", memory)
    else:
        result.train_seconds = 0.0

    # 5. Evaluate every eval set with the task's protocol; keep every prediction for audit.
    _evaluate(trial, model, tokenizer, head, eval_sets, device, result, load_notes)
    if probe is not None:  # the adapted model's inference cost and forgetting, beside the base's
        _record(result, probe.adapted(model, tokenizer))

    # 6. Keep what trained (the method's parameters, the task head), staged locally: the store publishes it.
    if save_adapter:
        result.adapter_dir, result.adapter_bytes = saving.save(model, spec.method, trial.method_config, head_params)


def group_name(trials: list[ResolvedTrial]) -> str:
    """A co-trained group's name: its members' trial ids, hashed (the same members, the same name)."""
    ids = "\n".join(sorted(t.spec.trial_id for t in trials))
    return "g-" + hashlib.sha1(ids.encode()).hexdigest()[:12]


def run_group(trials: list[ResolvedTrial], data_root: str | Path, save_adapter: bool = False) -> list[TrialResult]:
    """Co-train trials that share a frozen base (scheduler/groups.py forms such groups) on one copy of it
    (train/cotrain.py), then evaluate and keep each member on its own. Each result is the one run_resolved would
    give, plus the group's name; a member's failure is its own. A group that cannot share its base (a task head,
    dropout in the base: train/routing.CannotCoTrain) runs its trials one after another instead."""
    from benchmark.train.routing import CannotCoTrain

    if len(trials) < 2:
        return [run_resolved(t, data_root, save_adapter) for t in trials]
    name = group_name(trials)
    results = [TrialResult(spec=t.spec, started_at=_now(), co_train_group=name) for t in trials]
    try:
        _run_group(trials, Path(data_root), results, save_adapter)
    except CannotCoTrain as why:
        log.info("co-training off for group %s (%s): its trials run one after another", name, why)
        return [run_resolved(t, data_root, save_adapter) for t in trials]
    except Exception as exc:  # the group failed before any member could (loading the shared base)
        for result in results:
            if result.finished_at is None:
                _failed(result, exc)
    return results


def _run_group(trials: list[ResolvedTrial], data_root: Path, results: list[TrialResult], save_adapter: bool) -> None:
    import torch

    from benchmark import methods, models
    from benchmark.methods import saving
    from benchmark.train.cotrain import Member, train_group
    from benchmark.train.routing import CannotCoTrain, sharing_copy

    device = _device(results[0])
    # 1. Every member's data first; a member whose data fails is failed, the others go on.
    members, probes = [], {}
    for trial, result in zip(trials, results):
        result.device = results[0].device
        try:
            head, train_examples, dev_examples = _training_data(trial, data_root)
            eval_sets = _eval_sets(trial, data_root)
            probes[trial.trial_id] = _probe(trial, eval_sets, data_root)
            members.append((trial, result, head, train_examples, dev_examples, eval_sets))
        except Exception as exc:
            _failed(result, exc)
    if not members:
        return
    # 2. One base: each member's tree shares its weights; its method is injected as for a solo trial (same seed).
    base, tokenizer, load_notes = _base_model(members[0][0], members[0][3], members[0][2], data_root, device)
    if models.head_parameters(base):
        raise CannotCoTrain("the task trains a head per trial")
    base.to(device)
    _record_shared_base(base, tokenizer, members, probes)  # before any member's method is injected
    trained = []
    for trial, result, head, train_examples, dev_examples, eval_sets in members:
        try:
            torch.manual_seed(trial.spec.train.seed)
            tree = methods.get(trial.spec.method).inject(sharing_copy(base), trial.method_config)
            result.trainable_params, result.total_params = methods.count_parameters(tree)
            tree.to(device)
            inputs = _train_inputs(trial, tokenizer, head, train_examples, dev_examples)
        except Exception as exc:
            _failed(result, exc)
            continue
        member = Member(tree, tokenizer, inputs["features"], trial.spec.train, inputs["val_features"],
                        inputs["dev_score"], inputs["dev_metric"], hook=methods.get(trial.spec.method).decode_hook)
        trained.append((trial, result, head, dev_examples, eval_sets, member))
    # 3. Train together; then each member on its own: evaluate, keep what it trained.
    with MemorySampler(device) as memory:  # the group's: its members train in one process, at once
        outcomes = train_group(base, [m for *_, m in trained], device) if trained else []
    for (trial, result, head, dev_examples, eval_sets, member), outcome in zip(trained, outcomes):
        try:
            if isinstance(outcome, BaseException):
                raise outcome
            _record_training(trial, outcome, dev_examples, result)
            _record_memory(result, "train", memory)
            _evaluate(trial, member.model, tokenizer, head, eval_sets, device, result, load_notes)
            if probes[trial.trial_id] is not None:
                _record(result, probes[trial.trial_id].adapted(member.model, tokenizer))
            if save_adapter:
                result.adapter_dir, result.adapter_bytes = saving.save(member.model, trial.spec.method,
                                                                       trial.method_config, [])
            result.finished_at = _now()
        except Exception as exc:
            _failed(result, exc)
        member.model = None  # its tree's own modules go with it; the base stays for the rest


def evaluate_saved(trial: ResolvedTrial, eval_trial: ResolvedTrial, adapter_dir: Path | None,
                   data_root: str | Path) -> TrialResult:
    """`peft-bench eval`: `trial`'s base model with what it kept (read from adapter_dir), evaluated on eval_trial's
    eval sets under its protocol; nothing trains. Raises on any failure: the caller stores nothing then."""
    from benchmark.methods import saving

    result = TrialResult(spec=trial.spec, started_at=_now())
    device = _device(result)
    head, train_examples, _ = _training_data(trial, Path(data_root))  # the head's label space, the adapt corpus
    eval_sets = _eval_sets(eval_trial, Path(data_root))
    model, tokenizer, load_notes = _base_model(trial, train_examples, head, Path(data_root), device)
    model = saving.load(model, trial.spec.method, trial.method_config, adapter_dir)
    model.to(device)
    _evaluate(eval_trial, model, tokenizer, head, eval_sets, device, result, load_notes)
    result.finished_at = _now()
    return result


def _evaluate(trial: ResolvedTrial, model, tokenizer, head, eval_sets: list, device: str, result: TrialResult,
              load_notes: dict) -> None:
    """Each eval set with the task's protocol. What loading changed to make the checkpoint consistent (the EOS
    rule of models.load) is recorded with every eval set's decoding, since it decides where outputs stop."""
    started = time.perf_counter()
    n_evaluated = 0
    with MemorySampler(device) as memory:
        for entry, examples in eval_sets:
            metrics, predictions, decoding = trial.task.evaluate(model, tokenizer, entry, examples, trial.spec, head)
            result.metrics.extend(metrics)
            result.predictions[entry.name] = predictions
            result.decoding[entry.name] = {**decoding, "model": load_notes} if load_notes else decoding
            n_evaluated += len(examples)
    result.eval_seconds = time.perf_counter() - started
    result.eval_examples_per_s = n_evaluated / result.eval_seconds if result.eval_seconds > 0 else None
    _record_memory(result, "eval", memory)


def _probe(trial: ResolvedTrial, eval_sets: list, data_root: Path):
    """What the inference-overhead and forgetting measurements read (evaluation/overhead.Probe) for a trial evaluated
    by generation (a causal LM decodes); None for the others (a classifier or a span extractor decodes nothing)."""
    from benchmark import methods
    from benchmark.data import load_examples
    from benchmark.evaluation.overhead import Probe

    if trial.task.head_kind != "causal-lm":
        return None
    method = methods.get(trial.spec.method)
    documents = load_examples(trial.forgetting, data_root) if trial.forgetting is not None else None
    return Probe.build(eval_sets[0][1], documents, trial.spec.train.cutoff_len, method.decode_hook, method.merges)


def _measure_base(probe, model, tokenizer, device: str) -> dict:
    """The base model's figures on the trial's device. It goes back to the CPU after: the method is injected there,
    as it would be without the measurement, so the method's initial weights do not depend on it."""
    model.to(device)
    try:
        return probe.base(model, tokenizer)
    finally:
        model.to("cpu")


def _record_shared_base(base, tokenizer, members: list, probes: dict) -> None:
    """A co-trained group's base figures, measured on the shared base once per distinct probe (members of one grid
    cell decode the same prompts) and given to every member's result."""
    measured: dict = {}
    for trial, result, *_ in members:
        probe = probes[trial.trial_id]
        if probe is not None:
            if probe.base_key not in measured:
                measured[probe.base_key] = probe.base(base, tokenizer)
            _record(result, measured[probe.base_key])


def _record(result: TrialResult, figures: dict) -> None:
    for name, value in figures.items():
        setattr(result, name, value)


def _record_memory(result: TrialResult, phase: str, memory: MemorySampler) -> None:
    """A phase's sampled peak and p99 (train_* / eval_*); peak_memory_bytes is the larger phase peak, this trial's."""
    setattr(result, f"{phase}_peak_memory_bytes", memory.peak)
    setattr(result, f"{phase}_p99_memory_bytes", memory.p99)
    peaks = [p for p in (result.train_peak_memory_bytes, result.eval_peak_memory_bytes) if p is not None]
    result.peak_memory_bytes = max(peaks) if peaks else None


def _train_inputs(trial: ResolvedTrial, tokenizer, head, train_examples: list, dev_examples: list) -> dict:
    """What training a trial takes besides its model: features, the dev split's features and, for tasks scored on a
    dev split, the dev score (the dev split scored as the first eval set is: its answer rule and metric)."""
    spec, task = trial.spec, trial.task
    selected = task.selection_metric(trial.scoring_entry)  # the metric table's entry: stored name, direction
    selects = task.selects_on_dev and bool(dev_examples)

    def dev_score(m) -> float:
        scored = task.evaluate(m, tokenizer, trial.scoring_entry, dev_examples, spec, head)[0]
        return next(x.value for x in scored if x.metric == selected.stored_name)

    return {"features": _features(task, tokenizer, train_examples, spec, head),
            "val_features": _features(task, tokenizer, dev_examples, spec, head) if dev_examples else [],
            "dev_score": dev_score if selects else None, "dev_metric": selected if selects else None}


def _record_training(trial: ResolvedTrial, stats, dev_examples: list, result: TrialResult) -> None:
    """The training figures in the result; the best dev score (when the task selects on dev) as a dev row."""
    result.train_seconds = stats.seconds
    result.train_tokens_per_s = stats.tokens_per_s
    result.train_tokens = stats.tokens
    result.train_loss = stats.final_loss
    if stats.best_dev is not None:
        scoring = trial.scoring_entry
        selected = trial.task.selection_metric(scoring)
        result.metrics.append(Metric(eval_data=trial.dev_name, task_family=scoring.task_family,
                                     metric=selected.stored_name,
                                     value=stats.best_dev, n_examples=len(dev_examples), split="dev"))
        result.decoding[f"{trial.dev_name}@dev"] = {"dev_history": stats.dev_history, "best_epoch": stats.best_epoch,
                                                    "stopped_early": stats.stopped_early}


def _train(trial: ResolvedTrial, model, tokenizer, head, train_examples: list, dev_examples: list, device: str,
           result: TrialResult) -> None:
    """Train what requires grad; tasks scored on a dev split keep the best epoch's weights (and stop early with a
    patience), and the best dev score is stored as a dev row."""
    from benchmark.train import train

    inputs = _train_inputs(trial, tokenizer, head, train_examples, dev_examples)
    stats = train(model, tokenizer, inputs["features"], trial.spec.train, device=device, **{
        k: inputs[k] for k in ("val_features", "dev_score", "dev_metric")})
    _record_training(trial, stats, dev_examples, result)
