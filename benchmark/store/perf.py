"""Store throughput at scale: write and read N synthetic trial results (no test; run it by hand).

    .venv/bin/python -m benchmark.store.perf [N] [--per-trial]

Two write paths are timed: `write_many` (one batch file, what a bulk writer uses) and, with
--per-trial, N separate `write` calls (what Ray workers do, one file per trial; ~1 ms of Parquet
footer and rename per file, irrelevant beside a trial that trains for minutes). Each is followed
by `compact()` where it helps and a full `read()` of the suite. `measure()` returns the figures,
for `peft-bench perf` (key store.rows_per_s).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time

from benchmark.registry.spec import TrainConfig, TrialSpec
from benchmark.result import Metric, TrialResult


def synthetic_results(n: int, suite: str = "store-perf") -> list[TrialResult]:
    base = TrialSpec(suite=suite, suite_version="1", model="tiny-llama", model_source="embedded:tiny-llama",
                     model_family="llama", method="lora", method_args={"r": 8}, train_data="train-set",
                     eval_data=("eval-set-a", "eval-set-b"))  # synthetic rows: no dataset is read
    results = []
    for i in range(n):
        spec = TrialSpec(**{**base.__dict__, "train": TrainConfig(seed=i), "cell": {"seed": i}})
        results.append(TrialResult(spec=spec, metrics=[Metric("eval-set-a", "math", "accuracy", 50.0 + i % 7, 1319),
                                                       Metric("eval-set-b", "math", "accuracy", 25.0, 254)],
                                   trainable_params=4_200_000, total_params=6_700_000_000, train_seconds=3600.0,
                                   eval_seconds=600.0, device="cpu", started_at="2025-01-01T00:00:00+00:00",
                                   finished_at="2025-01-01T01:10:00+00:00"))
    return results


def measure(n: int = 10_000, per_trial: bool = False, root: str | None = None) -> dict:
    """Seconds to write and read `n` results (2 metric rows each) through the store."""
    from benchmark.store import Store

    results = synthetic_results(n)
    out: dict = {"trials": n, "rows": 2 * n}
    folder = root or tempfile.mkdtemp(prefix="peft-bench-store-perf-")
    try:
        store = Store(f"{folder}/batch")
        started = time.perf_counter()
        store.write_many(results)
        out["batch_write_s"] = time.perf_counter() - started
        started = time.perf_counter()
        frame = store.read(["store-perf"])
        out["batch_read_s"] = time.perf_counter() - started
        assert len(frame) == 2 * n and frame["trial_id"].nunique() == n
        out["batch_total_s"] = out["batch_write_s"] + out["batch_read_s"]
        out["rows_per_s"] = 2 * n / out["batch_total_s"]
        if per_trial:
            store = Store(f"{folder}/per-trial")
            started = time.perf_counter()
            for result in results:
                store.write(result)
            out["per_trial_write_s"] = time.perf_counter() - started
            started = time.perf_counter()
            store.ok_trial_ids("store-perf")
            out["per_trial_ok_ids_uncompacted_s"] = time.perf_counter() - started
            started = time.perf_counter()
            store.compact(["store-perf"])
            out["per_trial_compact_s"] = time.perf_counter() - started
            started = time.perf_counter()
            frame = store.read(["store-perf"])
            out["per_trial_read_after_compact_s"] = time.perf_counter() - started
            assert len(frame) == 2 * n
    finally:
        if root is None:
            shutil.rmtree(folder, ignore_errors=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=10_000)
    parser.add_argument("--per-trial", action="store_true", help="also time n separate write() calls")
    args = parser.parse_args()
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in measure(args.n, args.per_trial).items()},
                     indent=1))


if __name__ == "__main__":
    main()
