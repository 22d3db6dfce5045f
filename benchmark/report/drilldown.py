"""One page per trial: everything behind a number, so any cell of a report can be audited.

The page shows the resolved configuration (the stored TrialSpec), protocol and decoding per eval
dataset, parameter counts, timings and throughput, every metric (dev rows marked as selection-only),
a sample of the per-example predictions and, for a failed trial, the full error. Everything is
plain strings here; the template escapes them.
"""

from __future__ import annotations

import json

import pandas as pd

from benchmark.report.tables import format_params
from benchmark.report.trials import Trial, is_null, loads
from benchmark.store import Store

SAMPLE = 20  # predictions shown per eval dataset; the Parquet file holds all of them
PREDICTION_COLUMNS = ("id", "prompt", "output", "extracted", "gold", "correct")


def _num(value, fmt: str, unit: str = "") -> str:
    return "unknown" if is_null(value) else f"{float(value):{fmt}}{unit}"


def _bytes(value) -> str:
    return "unknown" if is_null(value) else f"{int(value) / 2**30:.2f} GiB"


def _cell_text(value) -> str:
    if is_null(value):
        return ""
    return "yes" if value is True else "no" if value is False else str(value)


def _sample(store: Store, trial: Trial, dataset: str) -> dict:
    try:
        frame = store.read_predictions(trial.suite, trial.trial_id, dataset)
    except (FileNotFoundError, ValueError) as exc:
        return {"dataset": dataset, "rows": [], "total": 0, "note": str(exc)}
    head = frame.head(SAMPLE)
    rows = [[_cell_text(r.get(c)) for c in PREDICTION_COLUMNS] for r in head.to_dict("records")]
    correct = frame["correct"].fillna(False).astype(bool)
    note = f"{len(frame)} predictions, {int(correct.sum())} correct; the first {len(head)} shown"
    return {"dataset": dataset, "rows": rows, "total": len(frame), "note": note,
            "correct": [bool(r.get("correct")) if not is_null(r.get("correct")) else None for r in head.to_dict("records")]}


def _metrics(rows: pd.DataFrame) -> list[dict]:
    scored = rows[rows["metric"].notna()]
    out = []
    for r in scored.itertuples():
        split = "test" if is_null(getattr(r, "split", None)) else str(r.split)
        out.append({"dataset": r.eval_data, "metric": r.metric, "split": split,
                    "value": _num(r.value, ".2f"), "n": _cell_text(r.n_examples),
                    "role": "reported" if split == "test" else "selection only (early stopping, lr search)"})
    return out


def _decoding(rows: pd.DataFrame) -> list[tuple[str, str]]:
    seen = {}
    for r in rows[rows["eval_data"].notna()].itertuples():
        if r.eval_data not in seen:
            seen[r.eval_data] = json.dumps(loads(r.decoding), sort_keys=True) if not is_null(r.decoding) else "not recorded"
    return list(seen.items())


def _decode_speeds(m: dict) -> str:
    """The three speeds and the overhead they make (base / adapted, base / merged); "-" where not measured."""
    speeds = [m.get(k) for k in ("base_decode_tokens_per_s", "decode_tokens_per_s", "merged_decode_tokens_per_s")]
    if all(is_null(v) for v in speeds):
        return "not measured"
    text = " / ".join("-" if is_null(v) else f"{float(v):.1f}" for v in speeds)
    base, *others = speeds
    ratios = [f"{float(base) / float(v):.2f}x" for v in others if not is_null(base) and not is_null(v) and float(v) > 0]
    return f"{text} (overhead {' / '.join(ratios)})" if ratios else text


def _forgetting_corpus(trial: Trial) -> str:
    corpus = (trial.spec.get("eval") or {}).get("forgetting") if isinstance(trial.spec, dict) else None
    return corpus or "a general-text corpus"


def _forgetting(m: dict) -> str:
    base, adapted = m.get("forgetting_base_loss"), m.get("forgetting_loss")
    if is_null(base) and is_null(adapted):
        return "not measured"
    text = f"{_num(base, '.4f')} / {_num(adapted, '.4f')}"
    return text if is_null(base) or is_null(adapted) else f"{text} (change {float(adapted) - float(base):+.4f})"


def trial_page(trial: Trial, rows: pd.DataFrame, store: Store) -> dict:
    """The template context of one trial's page."""
    m = trial.meta
    facts = [
        ("Trial id", trial.trial_id), ("Suite", f"{trial.suite} (version {_cell_text(m.get('suite_version')) or '?'})"),
        ("Status", trial.status), ("Model", f"{trial.model_label} ({_cell_text(m.get('model_source'))})"),
        ("Method", trial.method_label), ("Adaptation stages", trial.adapt_label or "none"),
        ("Train data", _cell_text(m.get("train_data"))),
        ("Learning rate / seed", f"{trial.learning_rate:g} / {trial.seed}" if trial.learning_rate is not None
         else f"? / {trial.seed}"),
        ("Protocol", _cell_text(m.get("protocol"))),
        ("Trainable / total parameters", f"{format_params(trial.trainable_params, trial.total_params)}; "
         f"{trial.trainable_params if trial.trainable_params is not None else '?'} of "
         f"{trial.total_params if trial.total_params is not None else '?'}"),
        ("Device", _cell_text(m.get("device")) or "unknown"),
        ("Train time", _num(m.get("train_seconds"), ".1f", " s")), ("Eval time", _num(m.get("eval_seconds"), ".1f", " s")),
        ("Train throughput", _num(m.get("train_tokens_per_s"), ".0f", " tokens/s")),
        ("Eval throughput", _num(m.get("eval_examples_per_s"), ".2f", " examples/s")),
        ("Final train loss", _num(m.get("train_loss"), ".4f")), ("Peak memory", _bytes(m.get("peak_memory_bytes"))),
        # Sampled while the phase ran (schema 5; older results have none): peak and 99th percentile.
        ("Memory in training (peak / p99)",
         f"{_bytes(m.get('train_peak_memory_bytes'))} / {_bytes(m.get('train_p99_memory_bytes'))}"),
        ("Memory in evaluation (peak / p99)",
         f"{_bytes(m.get('eval_peak_memory_bytes'))} / {_bytes(m.get('eval_p99_memory_bytes'))}"),
        ("Tokens seen in training", _num(m.get("train_tokens"), ",.0f")),
        # Schema 6 (older results, and trials not evaluated by generation, have none): inference overhead, forgetting.
        ("Decode tokens/s (base / adapted / merged)", _decode_speeds(m)),
        (f"Forgetting: loss on {_forgetting_corpus(trial)} (base / adapted)", _forgetting(m)),
        ("Started / finished", f"{_cell_text(m.get('started_at')) or '?'} / {_cell_text(m.get('finished_at')) or '?'}"),
        ("Git commit", f"{_cell_text(m.get('git_sha')) or 'unknown'}{' (dirty)' if m.get('git_dirty') is True else ''}"),
    ]
    ok = trial.ok
    return {
        "trial": trial, "facts": facts, "metrics": _metrics(rows), "decoding": _decoding(rows),
        "config": json.dumps(trial.spec, indent=2, sort_keys=True, default=str) if trial.spec else "not recorded",
        "samples": [_sample(store, trial, d) for d in trial.eval_data] if ok else [],
        "error": trial.error if not ok else "",
    }
