"""Run DAPT / TAPT stages once and cache the adapted checkpoint for every trial that shares it.

The cache key is a hash of what decides the weights: the base model's source and family, each
stage's settings, and the content of each stage's text (the corpus documents for DAPT, the task's
training text for TAPT), so a changed corpus or setting gives a new checkpoint and the same ones
are reused across methods, learning rates and seeds. The checkpoint is written to a temporary
folder and renamed into place; a second worker that finds the folder being built waits for it
(a lock file), so concurrent trials never build the same stage twice or read a half-written one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from benchmark import paths
from benchmark.registry.catalogue import DatasetEntry, ModelEntry
from benchmark.registry.stages import AdaptStage

log = logging.getLogger(__name__)

LOCK_WAIT_S = 6 * 3600  # a DAPT stage of a base model can take hours on one GPU


@dataclass(frozen=True)
class PlannedStage:
    """A stage as the planner resolved it: its settings and the catalogue entry of its corpus."""

    settings: AdaptStage
    corpus: DatasetEntry | None  # dapt: the corpus dataset; tapt: None (the trial's own training text)


def task_text(examples: list) -> list[str]:
    """The unlabelled text of a task's training examples (TAPT's corpus)."""
    out = []
    for ex in examples:
        for name in ("text", "text_pair", "context", "question", "instruction", "input"):
            value = getattr(ex, name, None)
            if isinstance(value, str) and value.strip():
                out.append(value)
    return list(dict.fromkeys(out))  # SQuAD repeats a context per question: once is enough


def cache_key(entry: ModelEntry, stages: tuple[AdaptStage, ...], documents: list[list[str]]) -> str:
    digest = hashlib.sha256()
    # "family": the key checkpoints were first cached under (a rename must not orphan them)
    digest.update(json.dumps({"source": entry.source, "family": entry.model_family,
                              "stages": [dataclasses.asdict(s) for s in stages]}, sort_keys=True).encode())
    for docs in documents:
        for doc in docs:
            digest.update(doc.encode())
            digest.update(b"\x1e")
        digest.update(b"\x1d")
    return digest.hexdigest()[:20]


def _documents(stage: PlannedStage, train_examples: list, data_root) -> list[str]:
    if stage.corpus is None:
        docs = task_text(train_examples)
    else:
        from benchmark.data import load_examples

        docs = [str(d) for d in load_examples(stage.corpus, data_root)]
    limit = stage.settings.max_documents
    return docs[:limit] if limit else docs


def _train_stage(model, tokenizer, stage: AdaptStage, docs: list[str], device: str) -> dict:
    from benchmark.train.mlm import MlmSettings, train_mlm

    settings = MlmSettings(epochs=stage.epochs, max_steps=stage.max_steps, batch_size=stage.batch_size,
                           learning_rate=stage.learning_rate, warmup_ratio=stage.warmup_ratio,
                           mlm_probability=stage.mlm_probability, max_length=stage.max_length, seed=stage.seed)
    stats = train_mlm(model, tokenizer, docs, settings, device=device)
    return {"kind": stage.kind, "documents": len(docs), "steps": stats.steps, "final_loss": stats.final_loss,
            "seconds": round(stats.seconds, 2)}


def _build(entry: ModelEntry, stages, documents, target: Path, device: str) -> None:
    from benchmark import models

    model, tokenizer = models.load(entry, dtype="float32")  # masked-LM head: the stage's objective
    model.to(device)
    log_rows = [_train_stage(model, tokenizer, stage, docs, device) for stage, docs in zip(stages, documents)]
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        model.to("cpu").save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "adapt.json").write_text(json.dumps({"base": entry.source, "stages": log_rows}, indent=1))
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _stale(lock: Path) -> bool:
    """True when the lock names a process of this host that no longer runs (killed mid-build)."""
    try:
        pid = int(lock.read_text() or "0")
    except (OSError, ValueError):
        return False
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def prepare(entry: ModelEntry, planned: tuple[PlannedStage, ...], train_examples: list, data_root,
            device: str = "cpu", cache_dir: Path | None = None) -> ModelEntry:
    """The entry to load for the trial: `entry` itself without stages, else one whose source is the cached
    adapted checkpoint (built now if missing)."""
    if not planned:
        return entry
    stages = tuple(p.settings for p in planned)
    documents = [_documents(p, train_examples, data_root) for p in planned]
    for stage, docs in zip(stages, documents):
        if not docs:
            raise ValueError(f"adapt: stage {stage.kind} has no documents")
    root = Path(cache_dir or paths.cache_dir() / "adapted")
    root.mkdir(parents=True, exist_ok=True)
    target = root / cache_key(entry, stages, documents)
    lock = target.with_name(target.name + ".lock")
    deadline = time.monotonic() + LOCK_WAIT_S
    while not (target / "config.json").is_file():
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:  # another worker is building it, or died doing so
            if _stale(lock):
                log.warning("adapt: removing %s left by a process that is gone", lock)
                lock.unlink(missing_ok=True)
                continue
            if time.monotonic() > deadline:
                raise TimeoutError(f"adapt: {lock} held for over {LOCK_WAIT_S} s; remove it if no run is building it") from None
            time.sleep(2)
            continue
        try:
            os.write(fd, str(os.getpid()).encode())
            if not (target / "config.json").is_file():
                log.info("adapt: building %s (%s)", target.name, "+".join(s.kind for s in stages))
                _build(entry, stages, documents, target, device)
        finally:
            os.close(fd)
            lock.unlink(missing_ok=True)
    return dataclasses.replace(entry, name=f"{entry.name}+{'+'.join(s.kind for s in stages)}", source=str(target))
