"""Control plane: planning a large synthetic grid, and writing / reading trial results through the store."""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

from benchmark.perf.settings import Settings, workload


def grid_yaml(n_trials: int, model: str = "tiny-llama") -> str:
    """A two-axis grid (learning rate x seed) with exactly n_trials cells, an override and an exclude-free plan."""
    seeds = max(1, math.isqrt(n_trials))
    while n_trials % seeds:
        seeds -= 1
    rates = n_trials // seeds
    rate_list = ", ".join(f"{1e-5 * (i + 1):.6e}" for i in range(rates))  # YAML floats need the dot
    seed_list = ", ".join(str(i) for i in range(seeds))
    return (f'name: perf-grid\nversion: "1"\ndescription: synthetic grid for peft-bench perf\n'
            f"defaults:\n  model: {model}\n  method: lora\n  train_data: {workload()['train_data']}\n"
            f"  eval_data: [{workload()['eval_data']}]\n"
            f"grid:\n  train.learning_rate: [{rate_list}]\n  train.seed: [{seed_list}]\n"
            "overrides:\n  - when: {train.seed: 0}\n    set: {train.epochs: 1}\n")


def measure_plan(s: Settings, workdir: Path) -> tuple[dict, list]:
    from benchmark.registry import plan

    small, big = workdir / "warm.yaml", workdir / "grid.yaml"
    small.write_text(grid_yaml(1, s.model))
    big.write_text(grid_yaml(s.plan_trials, s.model))
    plan(str(small))  # imports and catalogues once, as the CLI has them before it plans
    started = time.perf_counter()
    _, specs = plan(str(big))
    seconds = time.perf_counter() - started
    return {"trials": len(specs), "seconds": seconds, "trials_per_s": len(specs) / seconds}, specs


def _result(spec, i: int):
    from benchmark.result import Metric, TrialResult

    return TrialResult(spec=spec, metrics=[Metric(eval_data=workload()["eval_data"], task_family="math", metric="accuracy",
                                                  value=float(i % 100), n_examples=100)],
                       trainable_params=1000, total_params=100_000, train_seconds=1.0, eval_seconds=1.0,
                       train_tokens_per_s=1000.0, eval_examples_per_s=10.0, train_loss=1.0, device="cpu",
                       started_at="2026-01-01T00:00:00+00:00", finished_at="2026-01-01T00:01:00+00:00")


def _write_share(root: str, specs: list, offset: int, ready, go, done) -> None:
    """One writer process: build its results, wait for the start signal, store them one file per trial."""
    from benchmark.store import Store

    results = [_result(spec, offset + i) for i, spec in enumerate(specs)]
    store = Store(root)
    ready.put(len(results))
    go.wait()
    for result in results:
        store.write(result)
    done.put(time.perf_counter())


def _parallel_write(root: str, specs: list, writers: int) -> float:
    """Seconds from the start signal until `writers` processes have stored `specs` between them."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # no fork: the parent may hold torch and pyarrow threads
    ready, done, go = context.Queue(), context.Queue(), context.Event()
    share = -(-len(specs) // writers)
    procs = [context.Process(target=_write_share, args=(root, specs[i:i + share], i, ready, go, done))
             for i in range(0, len(specs), share)]
    for proc in procs:
        proc.start()
    try:
        for _ in procs:
            ready.get(timeout=300)  # imports and result building are not part of the timing
        started = time.perf_counter()
        go.set()
        finished = [done.get(timeout=600) for _ in procs]
    finally:
        for proc in procs:
            proc.join(timeout=60)
    if any(proc.exitcode != 0 for proc in procs):
        raise RuntimeError(f"perf: a store writer process failed (exit codes {[p.exitcode for p in procs]})")
    return max(finished) - started


def measure_store(s: Settings, specs: list, workdir: Path) -> dict:
    """The runner's path: one file per trial, written by as many processes as the runner runs trials at
    once (Ray, one 1-CPU trial per CPU), then every result read back by one reader; plus the cost of
    one writer alone on a sample, and of the bulk path (write_many), for comparison."""
    import os

    from benchmark.store import Store

    specs = specs[:s.store_trials]
    writers = s.store_writers or os.cpu_count() or 1
    root = workdir / "results"
    write_s = _parallel_write(str(root), specs, writers)
    started = time.perf_counter()
    frame = Store(root).read()
    read_s = time.perf_counter() - started
    sample = [_result(spec, i) for i, spec in enumerate(specs[:min(len(specs), 1000)])]
    store = Store(workdir / "one-writer")
    started = time.perf_counter()
    for result in sample:
        store.write(result)
    one_writer_ms = 1000 * (time.perf_counter() - started) / len(sample)
    everything = [_result(spec, i) for i, spec in enumerate(specs)]
    bulk = Store(workdir / "bulk")
    started = time.perf_counter()
    bulk.write_many(everything)
    bulk_rows = len(bulk.read())
    bulk_s = time.perf_counter() - started
    n = len(specs)
    return {"trials": n, "rows_read": len(frame), "writers": writers, "write_s": write_s, "read_s": read_s,
            "seconds": write_s + read_s, "rows_per_s": n / (write_s + read_s),
            "write_ms_per_trial_one_writer": one_writer_ms,
            "bulk_write_read_s": bulk_s, "bulk_rows_read": bulk_rows}


def measure(s: Settings) -> tuple[dict, dict]:
    with tempfile.TemporaryDirectory(prefix="peft-bench-perf-") as tmp:
        plan_figures, specs = measure_plan(s, Path(tmp))
        if len(specs) < s.store_trials:  # the store needs as many distinct trials as it writes
            _, specs = measure_plan(Settings(**{**s.to_dict(), "plan_trials": s.store_trials}), Path(tmp))
        store_figures = measure_store(s, specs, Path(tmp))
    return plan_figures, store_figures
