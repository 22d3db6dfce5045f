"""`peft-bench run-trial SUITE TRIAL_ID`: one trial in this process, stored exactly as `peft-bench run` stores it."""

import subprocess

from benchmark.registry import plan
from benchmark.store import Store
from tests.conftest import ROOT
from tests.test_resume import PEFT_BENCH, write_suite

# What differs between two runs of one trial however it was launched: clocks, speeds, the process's memory.
RUN_DEPENDENT = ["started_at", "finished_at", "train_seconds", "eval_seconds", "train_tokens_per_s",
                 "eval_examples_per_s", "peak_memory_bytes", "train_peak_memory_bytes", "train_p99_memory_bytes",
                 "eval_peak_memory_bytes", "eval_p99_memory_bytes", "base_decode_tokens_per_s", "decode_tokens_per_s",
                 "merged_decode_tokens_per_s"]


def peft_bench(*args, timeout=400) -> subprocess.CompletedProcess:
    return subprocess.run([PEFT_BENCH, *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def stored_rows(results, suite: str):
    frame = Store(results).read([suite])
    return frame.drop(columns=[c for c in RUN_DEPENDENT if c in frame.columns]).sort_values(["eval_data", "metric"])


def test_run_trial_stores_the_same_row_and_trial_id_as_run(tmp_path):
    suite = write_suite(tmp_path, "run-trial-same", ["lora"])
    (spec,) = plan(str(suite), [])[1]
    by_run, by_run_trial = tmp_path / "by-run", tmp_path / "by-run-trial"
    ran = peft_bench("run", suite, "--results", by_run)
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    one = peft_bench("run-trial", suite, spec.trial_id, "--results", by_run_trial)
    assert one.returncode == 0 and f"{spec.trial_id} ok" in one.stdout, one.stdout[-2000:] + one.stderr[-2000:]

    files = [sorted(p.name for p in (root / "run-trial-same" / "trials").glob("*.parquet")) for root in (by_run, by_run_trial)]
    assert files[0] == files[1] == [f"{spec.trial_id}.parquet"]
    a, b = stored_rows(by_run, "run-trial-same"), stored_rows(by_run_trial, "run-trial-same")
    assert list(a.columns) == list(b.columns) and set(a["status"]) == {"ok"}
    assert a.reset_index(drop=True).equals(b.reset_index(drop=True))
    for eval_data in spec.eval_data:
        preds = [Store(root).read_predictions("run-trial-same", spec.trial_id, eval_data) for root in (by_run, by_run_trial)]
        assert preds[0].equals(preds[1])

    # Already stored: nothing runs, nothing is written.
    mtimes = {p: p.stat().st_mtime_ns for p in by_run_trial.rglob("*.parquet")}
    again = peft_bench("run-trial", suite, spec.trial_id, "--results", by_run_trial)
    assert again.returncode == 0 and "already stored as ok" in again.stdout
    assert {p: p.stat().st_mtime_ns for p in by_run_trial.rglob("*.parquet")} == mtimes


def test_a_failing_trial_is_stored_as_failed_and_exits_1(tmp_path):
    # A real (not embedded) training set with an empty data folder: the runner fails loading it and says why.
    suite = write_suite(tmp_path, "run-trial-fails", ["lora"])
    suite.write_text(suite.read_text().replace("train_data: emb-math_10k", "train_data: math_10k"))
    (spec,) = plan(str(suite), [])[1]
    done = peft_bench("run-trial", suite, spec.trial_id, "--results", tmp_path / "res", "--data-dir", tmp_path / "empty")
    assert done.returncode == 1 and done.stdout.startswith(f"FAILED {spec.trial_id}: "), done.stdout + done.stderr[-2000:]
    assert "math_10k" in done.stdout and len(done.stdout.strip().splitlines()) == 1
    assert Store(tmp_path / "res").statuses("run-trial-fails") == {spec.trial_id: "failed"}


def test_an_unknown_trial_id_is_one_line_naming_the_suite_and_its_size(tmp_path):
    suite = write_suite(tmp_path, "run-trial-unknown", ["lora", "series"])
    (first, _) = plan(str(suite), [])[1]
    done = peft_bench("run-trial", suite, first.trial_id[:-1] + "x", "--results", tmp_path / "res", timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    message = done.stderr.strip()
    assert len(message.splitlines()) == 1 and "Traceback" not in message
    assert str(suite) in message and "its 2 trial ids" in message and f"did you mean {first.trial_id!r}" in message
    assert not (tmp_path / "res").exists()
