"""Resume and faults: a run SIGKILLed mid-sweep and started again stores every trial exactly once;
a worker that dies is retried; B trained after A on one worker equals B alone."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmark.store import Store
from tests.conftest import ROOT

PEFT_BENCH = str(Path(sys.executable).parent / "peft-bench")

TINY_SUITE = """
name: {name}
version: "1"
description: "issue 5 tests: tiny trials (2 steps, 2 eval examples)"
defaults:
  model: tiny-llama
  train_data: emb-math_10k
  eval_data: [emb-gsm8k]
  train: {{batch_size: 2, micro_batch_size: 2, max_steps: {steps}, max_train_examples: 8, warmup_steps: 0, cutoff_len: 64}}
  eval: {{num_beams: 1, max_new_tokens: 4, max_eval_examples: 2, batch_size: 2}}
grid:
  method: {methods}
"""


def write_suite(folder: Path, name: str, methods: list[str], steps: int = 2) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(TINY_SUITE.format(name=name, methods="[" + ", ".join(methods) + "]", steps=steps))
    return path


def ok_sets_per_trial(results: Path, suite: str) -> dict[str, int]:
    history = Store(results).read([suite], history=True)
    ok = history[history["status"] == "ok"]
    # One ok row set per trial = exactly one ok file per trial_id (each file holds one row set).
    return {tid: len(list((results / suite / "trials").glob(f"{tid}*.parquet"))) for tid in set(ok["trial_id"])}


def process_tree(root: int) -> list[int]:
    """`root` and every process descended from it (Ray's raylet, GCS and workers start their own sessions)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def kill_all(first: subprocess.Popen) -> None:
    tree = process_tree(first.pid)
    os.killpg(first.pid, signal.SIGKILL)
    for pid in tree:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_sigkill_mid_run_then_rerun_stores_every_trial_exactly_once(tmp_path):
    # four sequential trials: the kill lands within 0.2 s of the first stored one, so others are left to resume
    # (40 steps: a trial takes seconds, longer than the kill takes to land)
    suite = write_suite(tmp_path, "resume-kill", ["lora", "series", "parallel", "adapterp"], steps=40)
    results = tmp_path / "results"
    cmd = [PEFT_BENCH, "run", str(suite), "--results", str(results), "--max-concurrent", "1", "--co-train", "off"]
    log = open(tmp_path / "first.log", "w")
    # Its own process group: the SIGKILL reaches the driver and every Ray process it started.
    first = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    trials = results / "resume-kill" / "trials"
    try:
        deadline = time.monotonic() + 240
        while not list(trials.glob("*.parquet")) and time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.2)
        assert list(trials.glob("*.parquet")), (tmp_path / "first.log").read_text()[-3000:]
    finally:
        kill_all(first)  # SIGKILL to the driver's group and every Ray process below it
        first.wait(timeout=60)
        log.close()
    stored_first = {p: p.stat().st_mtime_ns for p in trials.glob("*.parquet")}
    assert len(stored_first) == 1, "the kill came after the whole sweep: nothing to resume"

    second = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=400)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert f"{len(stored_first)} already stored" in second.stdout
    # quiet: the terminal gets the run's own lines; what the local Ray said is in the log file named first
    said = second.stdout.splitlines()
    assert all(line.startswith("[peft-bench]") for line in said[:-1]) and second.stderr == "", second.stderr[-3000:]
    assert "Started a local Ray instance" in Path(said[0].split("Ray's own output: ", 1)[1]).read_text()
    counts = ok_sets_per_trial(results, "resume-kill")
    assert len(counts) == 4 and set(counts.values()) == {1}
    assert {p: p.stat().st_mtime_ns for p in stored_first} == stored_first  # finished trials were not rerun
    assert not [p for p in results.rglob("*") if ".tmp-" in p.name]


@pytest.mark.slow  # three runs, each starting Ray (about a minute here)
def test_status_lists_failures_and_retry_failed_runs_only_them(tmp_path):
    # A trial whose training time budget runs out at its first step passes every check before the run (its data is
    # there: `run` loads every dataset first) and fails inside the runner, which stores it as failed.
    suite = write_suite(tmp_path, "resume-retry", ["lora"])
    suite.write_text(suite.read_text().replace("  method: [lora]", "  method: [lora]\n  budget:\n"
                                               "    - {label: open, train.max_seconds: 3600}\n"
                                               "    - {label: none, train.max_seconds: 1.0e-9}"))
    results = tmp_path / "results"
    base = [PEFT_BENCH, "run", str(suite), "--results", str(results)]
    first = subprocess.run(base, cwd=ROOT, capture_output=True, text=True, timeout=400)
    assert first.returncode == 1, first.stdout[-2000:] + first.stderr[-2000:]
    assert "FAILED" in first.stdout and "--retry-failed" in first.stdout
    status = subprocess.run([PEFT_BENCH, "status", str(suite), "--results", str(results)], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert "1 done, 1 failed, 0 remaining" in status.stdout and "FAILED" in status.stdout
    again = subprocess.run([*base, "--retry-failed"], cwd=ROOT, capture_output=True, text=True, timeout=400)
    assert again.returncode == 1 and "0 ok, 1 failed, 1 not failed" in again.stdout, again.stdout[-2000:]
    history = Store(results).read(["resume-retry"], history=True)
    assert (history["status"] == "failed").sum() == 2  # both attempts kept


def test_b_after_a_on_one_worker_equals_b_alone(tmp_path):
    from benchmark import models
    from benchmark.registry import plan
    from benchmark.runner import run_trial

    suite = write_suite(tmp_path, "worker-cache", ["full", "lora"])
    _, specs = plan(str(suite), [])
    a = next(s for s in specs if s.method == "full")  # updates every base weight: the worst case for leaks
    b = next(s for s in specs if s.method == "lora")
    models.clear_cache()
    alone = run_trial(b, ROOT / "data")
    models.clear_cache()
    after_a = [run_trial(a, ROOT / "data"), run_trial(b, ROOT / "data")]
    assert alone.status == "ok" and all(r.status == "ok" for r in after_a), alone.error or after_a[0].error
    second = after_a[1]
    assert [(m.eval_data, m.metric, m.value) for m in second.metrics] == [(m.eval_data, m.metric, m.value) for m in alone.metrics]
    assert second.predictions == alone.predictions
    assert second.train_loss == pytest.approx(alone.train_loss, rel=0, abs=0)
    assert (second.trainable_params, second.total_params) == (alone.trainable_params, alone.total_params)
