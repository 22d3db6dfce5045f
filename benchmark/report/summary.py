"""The index page's account of what was run: suites, versions, trial counts, hardware, compute hours."""

from __future__ import annotations

import json
from dataclasses import dataclass

from benchmark.report.trials import Trial, is_null


@dataclass
class FailedTrial:
    trial_id: str
    suite: str
    label: str
    error: str  # first line only; the full traceback is on the trial's page


@dataclass
class SuiteLine:
    suite: str
    versions: str
    ok: int
    failed: int


def _text(value) -> str | None:
    return None if is_null(value) else str(value)


def _flag(value) -> bool:
    return False if is_null(value) else bool(value)


def _seconds(value) -> float:
    return 0.0 if is_null(value) else float(value)


def is_gpu(device: str | None) -> bool:
    """The runner stores the accelerator's name ("NVIDIA H100 80GB HBM3", "cuda:0") or "cpu"."""
    return bool(device) and device.lower() not in ("cpu", "mps") and not device.lower().startswith("cpu")


def suite_lines(suites: list[str], trials: list[Trial]) -> list[SuiteLine]:
    lines = []
    for suite in suites:
        mine = [t for t in trials if t.suite == suite]
        versions = sorted({_text(t.meta.get("suite_version")) or "?" for t in mine})
        lines.append(SuiteLine(suite, ", ".join(versions) or "no trials stored", sum(t.ok for t in mine),
                               sum(not t.ok for t in mine)))
    return lines


def compute_hours(trials: list[Trial]) -> tuple[float, float]:
    """(GPU-hours, CPU-hours): train + eval wall time of each trial, by the device it ran on
    (one device per trial, as the scheduler gives it)."""
    gpu = cpu = 0.0
    for trial in trials:
        hours = (_seconds(trial.meta.get("train_seconds")) + _seconds(trial.meta.get("eval_seconds"))) / 3600
        if is_gpu(_text(trial.meta.get("device"))):
            gpu += hours
        else:
            cpu += hours
    return gpu, cpu


def run_summary(suites: list[str], trials: list[Trial]) -> list[tuple[str, str]]:
    """(label, value) pairs, every value a plain string (the template escapes it)."""
    ok = sum(1 for t in trials if t.ok)
    gpu, cpu = compute_hours(trials)
    shas = sorted({f"{sha}{' (dirty)' if _flag(t.meta.get('git_dirty')) else ''}"
                   for t in trials if (sha := _text(t.meta.get("git_sha")))})
    packages = sorted({", ".join(f"{k} {v}" for k, v in sorted(json.loads(p).items()) if v)
                       for t in trials if (p := _text(t.meta.get("package_versions")))})
    devices = {}
    for t in trials:
        if d := _text(t.meta.get("device")):
            devices[d] = devices.get(d, 0) + 1
    protocols = sorted({p for t in trials if (p := _text(t.meta.get("protocol")))})
    return [
        ("Trials", f"{len(trials)} stored: {ok} ok, {len(trials) - ok} failed"),
        ("Hardware", ", ".join(f"{d} ({n} trial{'s' if n > 1 else ''})" for d, n in sorted(devices.items())) or "unknown"),
        ("Compute (train + eval)", f"{gpu:.2f} GPU-hours, {cpu:.2f} CPU-hours"),
        ("Evaluation protocols", ", ".join(protocols) or "unknown"),
        ("Git commit", "; ".join(shas) or "unknown (not a git checkout)"),
        ("Package versions", " | ".join(packages) or "unknown"),
    ]


def failed_trials(trials: list[Trial]) -> list[FailedTrial]:
    return [FailedTrial(trial_id=t.trial_id, suite=t.suite, label=f"{t.model_label} / {t.method_label}",
                        error=(t.error.strip().splitlines() or ["no error text"])[0])
            for t in trials if not t.ok]
