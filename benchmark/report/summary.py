"""The run summary at the top of a report, and the list of failed trials."""

from __future__ import annotations

import json
from dataclasses import dataclass

from benchmark.report.tables import Trial, is_null, method_label


@dataclass
class FailedTrial:
    trial_id: str
    suite: str
    label: str
    error: str  # first line only; the full traceback stays in the store


def _text(value) -> str | None:
    return None if is_null(value) else str(value)


def _flag(value) -> bool:
    return False if is_null(value) else bool(value)


def _seconds(value) -> float:
    return 0.0 if is_null(value) else float(value)


def run_summary(suites: list[str], trials: list[Trial]) -> list[tuple[str, str]]:
    """(label, value) pairs, every value a plain string (the template escapes it)."""
    versions = {}
    for trial in trials:
        versions.setdefault(trial.suite, set()).add(_text(trial.meta.get("suite_version")) or "?")
    ok = sum(1 for t in trials if t.status == "ok")
    hours = sum(_seconds(t.meta.get("train_seconds")) + _seconds(t.meta.get("eval_seconds")) for t in trials) / 3600
    shas = sorted({f"{sha}{' (dirty)' if _flag(t.meta.get('git_dirty')) else ''}"
                   for t in trials if (sha := _text(t.meta.get("git_sha")))})
    packages = sorted({", ".join(f"{k} {v}" for k, v in sorted(json.loads(p).items()) if v)
                       for t in trials if (p := _text(t.meta.get("package_versions")))})
    devices = sorted({d for t in trials if (d := _text(t.meta.get("device")))})
    protocols = sorted({p for t in trials if (p := _text(t.meta.get("protocol")))})
    suite_text = "; ".join(f"{s} (version {', '.join(sorted(versions.get(s, {'not run'})))})" if s in versions
                           else f"{s} (no trials stored)" for s in suites)
    return [
        ("Suites", suite_text),
        ("Trials", f"{len(trials)} stored: {ok} ok, {len(trials) - ok} failed"),
        ("Devices", ", ".join(devices) or "unknown"),
        ("Train + eval time", f"{hours:.2f} h"),
        ("Evaluation protocols", ", ".join(protocols) or "unknown"),
        ("Git commit", "; ".join(shas) or "unknown (not a git checkout)"),
        ("Package versions", " | ".join(packages) or "unknown"),
    ]


def failed_trials(trials: list[Trial]) -> list[FailedTrial]:
    return [FailedTrial(trial_id=t.trial_id, suite=t.suite, label=f"{t.label_parts['model']} / {method_label(t)}",
                        error=(t.error.strip().splitlines() or ["no error text"])[0])
            for t in trials if t.status != "ok"]
