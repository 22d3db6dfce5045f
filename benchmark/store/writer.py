"""Turn a TrialResult into Parquet tables and write them atomically.

Publishing the tables atomically (temporary name, then rename or copy onto the final key) is
benchmark.store.fs.write_atomic: a reader or a resumed run sees no file or a whole one.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import subprocess
from datetime import UTC, datetime
from importlib import metadata

import pyarrow as pa

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
    if not (REPO_ROOT / ".git").exists():  # an installed wheel: a repository around site-packages is not ours
        return None, None
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


def _plain(value):
    """dataclasses.asdict without its deep copies (a third of the cost of storing a trial): the
    values are only serialised to JSON, never mutated."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def trial_rows(result: TrialResult) -> list[dict]:
    """The long-format rows of one trial: one per metric, or a single metric-less row."""
    spec = result.spec
    trial_id = spec.trial_id  # a hash of the whole spec: computed once per trial
    spec_dict = {**_plain(spec), "trial_id": trial_id}  # == spec.to_dict() once serialised
    sha, dirty = git_state()
    trainable, total = result.trainable_params, result.total_params
    common = {
        "schema_version": SCHEMA_VERSION,
        "suite": spec.suite,
        "suite_version": spec.suite_version,
        "trial_id": trial_id,
        "model": spec.model,
        "model_source": spec.model_source,
        "family": spec.model_family,  # the stored column keeps its first name
        "method": spec.method,
        "method_args": _json(spec.method_args),
        "train_config": _json(spec_dict["train"]),
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
        "spec": _json(spec_dict),
        "started_at": _timestamp(result.started_at, "started_at"),
        "finished_at": _timestamp(result.finished_at, "finished_at"),
        "adapter_bytes": result.adapter_bytes,
        "co_train_group": result.co_train_group,
        **{name: getattr(result, name) for name in ("train_tokens", "train_peak_memory_bytes", "train_p99_memory_bytes",
                                                    "eval_peak_memory_bytes", "eval_p99_memory_bytes",
                                                    "base_decode_tokens_per_s", "decode_tokens_per_s",
                                                    "merged_decode_tokens_per_s", "forgetting_base_loss",
                                                    "forgetting_loss")},
        "source": None,
    }
    if not result.metrics:
        return [{**common, "eval_data": None, "eval_family": None, "decoding": None,
                 "metric": None, "split": None, "value": None, "n_examples": None}]
    return [{**common, "eval_data": m.eval_data, "eval_family": m.task_family,
             "decoding": _json(result.decoding.get(m.eval_data)), "metric": m.metric, "split": m.split,
             "value": None if m.value is None else float(m.value), "n_examples": m.n_examples}
            for m in result.metrics]


def trial_table(result: TrialResult) -> pa.Table:
    return trials_table([result])


def trials_table(results: list[TrialResult]) -> pa.Table:
    """The rows of many trials in one table (one Arrow conversion for all of them: much faster)."""
    rows = []
    for result in results:
        if result.status not in ("ok", "failed"):
            raise ValueError(f"status: got {result.status!r}; allowed: ok, failed")
        rows.extend(trial_rows(result))
    return pa.Table.from_pylist(rows, schema=TRIAL_SCHEMA)


def predictions_table(rows) -> pa.Table:
    return pa.Table.from_pylist([{"id": p.id, "prompt": p.prompt, "output": p.output, "extracted": p.extracted,
                                  "gold": p.gold, "correct": p.correct} for p in rows], schema=PREDICTION_SCHEMA)
