"""Turn a TrialResult into Parquet tables and write them atomically.

Atomic means: write `<name>.tmp-<pid>-<uuid>` in the destination folder, then os.replace onto
the final name. A reader (or a resumed run) therefore sees either no file or a complete one,
never a half-written trial, even when a worker is killed mid-write.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import subprocess
import uuid
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from benchmark.paths import REPO_ROOT
from benchmark.result import TrialResult
from benchmark.store.schema import PREDICTION_SCHEMA, SCHEMA_VERSION, TRIAL_SCHEMA

log = logging.getLogger(__name__)

# The libraries whose versions can change a number; recorded on every row.
TRACKED_PACKAGES = ("torch", "transformers", "peft", "adapters", "ray", "pyarrow")


def _json(value) -> str | None:
    if value is None:
        return None
    return json.dumps(value, sort_keys=True, default=str)


@functools.cache
def git_state() -> tuple[str | None, bool | None]:
    """(HEAD sha, working tree dirty) of the repository the package runs from; (None, None) outside git.

    Computed once per process: a run writes many trials and the answer does not change meanwhile.
    --no-optional-locks keeps `git status` from rewriting the index (it must not change state).
    """
    def git(*args: str) -> str:
        return subprocess.run(["git", "--no-optional-locks", *args], cwd=REPO_ROOT, capture_output=True,
                              text=True, check=True, timeout=30).stdout
    try:
        sha = git("rev-parse", "HEAD").strip()
        dirty = bool(git("status", "--porcelain").strip())
    except (OSError, subprocess.SubprocessError):
        return None, None
    return sha or None, dirty


@functools.cache
def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _timestamp(text: str | None, field: str) -> datetime | None:
    """ISO 8601 -> aware UTC datetime. A malformed time is logged and dropped: losing a timestamp
    is better than losing the trial it belongs to."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        log.warning("store: %s %r is not ISO 8601; stored as null", field, text)
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def trial_rows(result: TrialResult) -> list[dict]:
    """The long-format rows of one trial: one per metric, or a single metric-less row."""
    spec = result.spec
    sha, dirty = git_state()
    trainable, total = result.trainable_params, result.total_params
    common = {
        "schema_version": SCHEMA_VERSION,
        "suite": spec.suite,
        "suite_version": spec.suite_version,
        "trial_id": spec.trial_id,
        "model": spec.model,
        "model_source": spec.model_source,
        "family": spec.family,
        "method": spec.method,
        "method_args": _json(spec.method_args),
        "train_config": _json(dataclasses.asdict(spec.train)),
        "train_data": spec.train_data,
        "protocol": spec.eval.protocol,
        "trainable_params": trainable,
        "total_params": total,
        "trainable_pct": 100.0 * trainable / total if trainable is not None and total else None,
        "train_seconds": result.train_seconds,
        "eval_seconds": result.eval_seconds,
        "train_tokens_per_s": result.train_tokens_per_s,
        "eval_examples_per_s": result.eval_examples_per_s,
        "train_loss": result.train_loss,
        "peak_memory_bytes": result.peak_memory_bytes,
        "device": result.device,
        "seed": spec.train.seed,
        "status": result.status,
        "error": result.error,
        "git_sha": sha,
        "git_dirty": dirty,
        "package_versions": _json(package_versions()),
        "cell": _json(spec.cell),
        "spec": _json(spec.to_dict()),
        "started_at": _timestamp(result.started_at, "started_at"),
        "finished_at": _timestamp(result.finished_at, "finished_at"),
    }
    if not result.metrics:
        return [{**common, "eval_data": None, "eval_family": None, "decoding": None,
                 "metric": None, "value": None, "n_examples": None}]
    return [{**common, "eval_data": m.eval_data, "eval_family": m.family,
             "decoding": _json(result.decoding.get(m.eval_data)), "metric": m.metric,
             "value": None if m.value is None else float(m.value), "n_examples": m.n_examples}
            for m in result.metrics]


def trial_table(result: TrialResult) -> pa.Table:
    if result.status not in ("ok", "failed"):
        raise ValueError(f"status: got {result.status!r}; allowed: ok, failed")
    return pa.Table.from_pylist(trial_rows(result), schema=TRIAL_SCHEMA)


def predictions_table(rows) -> pa.Table:
    return pa.Table.from_pylist([{"id": p.id, "prompt": p.prompt, "output": p.output, "extracted": p.extracted,
                                  "gold": p.gold, "correct": p.correct} for p in rows], schema=PREDICTION_SCHEMA)


def write_atomic(table: pa.Table, path: Path) -> Path:
    """Write `table` to `path` through a temporary file in the same folder (same filesystem, so
    os.replace is atomic); the temporary file is removed if anything fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex}")
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
