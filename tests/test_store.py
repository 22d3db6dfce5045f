"""The Parquet results store: round trip, resume ids, failed rows, atomicity, schema evolution."""

import json
import logging
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from benchmark.registry.spec import TrainConfig, TrialSpec
from benchmark.result import Metric, Prediction, TrialResult
from benchmark.store import SCHEMA_VERSION, TRIAL_SCHEMA, Store


def make_spec(suite="llm_adapters/math", method="lora", seed=42, args=None):
    return TrialSpec(suite=suite, suite_version="1", model="tiny-llama", model_source="embedded:tiny-llama",
                     model_family="llama", method=method, method_args=args if args is not None else {"r": 8},
                     train_data="math_10k", eval_data=("gsm8k", "AQuA"), train=TrainConfig(seed=seed),
                     cell={"method": method})


def ok_result(spec, gsm=50.0, aqua=25.0):
    preds = [Prediction(id="gsm8k/0", prompt="Q: 2+2?", output="The answer is 4", extracted="4", gold="4.0", correct=True),
             Prediction(id="gsm8k/1", prompt="Q: 3+3?", output="7", extracted="7", gold="6.0", correct=False)]
    return TrialResult(spec=spec, metrics=[Metric("gsm8k", "math", "accuracy", gsm, 2),
                                           Metric("AQuA", "math", "accuracy", aqua, 4)],
                       predictions={"gsm8k": preds}, trainable_params=4_200_000, total_params=7_000_000_000,
                       train_seconds=120.5, eval_seconds=30.0, train_tokens_per_s=1000.0, eval_examples_per_s=2.0,
                       train_loss=0.75, peak_memory_bytes=2**30, device="cpu",
                       decoding={"gsm8k": {"num_beams": 4, "max_new_tokens": 256}},
                       started_at="2024-01-01T00:00:00+00:00", finished_at="2024-01-01T00:02:30+00:00")


def failed_result(spec, error="RuntimeError: boom\nTraceback ..."):
    return TrialResult(spec=spec, status="failed", error=error, started_at="2024-01-01T00:00:00+00:00",
                       finished_at="2024-01-01T00:00:01+00:00")


def test_round_trip_rows_columns_and_types(tmp_path):
    store = Store(tmp_path)
    specs = [make_spec(seed=1), make_spec(seed=2), make_spec(method="series", args={"bottleneck_size": 16})]
    for spec in specs:
        path = store.write(ok_result(spec))
        assert Path(path) == tmp_path / "llm_adapters__math" / "trials" / f"{spec.trial_id}.parquet"
    frame = store.read()
    assert len(frame) == 3 * 2  # one row per (trial, eval dataset, metric)
    assert list(frame.columns) == TRIAL_SCHEMA.names
    assert set(frame["trial_id"]) == {s.trial_id for s in specs}
    assert (frame["schema_version"] == SCHEMA_VERSION).all()
    assert set(frame["suite"]) == {"llm_adapters/math"}
    row = frame[(frame["trial_id"] == specs[0].trial_id) & (frame["eval_data"] == "gsm8k")].iloc[0]
    assert row["value"] == 50.0 and row["n_examples"] == 2 and row["eval_family"] == "math"
    assert row["trainable_params"] == 4_200_000 and row["trainable_pct"] == pytest.approx(0.06)
    assert json.loads(row["method_args"]) == {"r": 8}
    assert json.loads(row["decoding"]) == {"num_beams": 4, "max_new_tokens": 256}
    assert json.loads(row["train_config"])["seed"] == 1 and row["seed"] == 1
    assert TrialSpec.from_dict(json.loads(row["spec"])) == specs[0]  # a trial can be re-created
    assert set(json.loads(row["package_versions"])) >= {"torch", "transformers", "peft", "adapters", "ray", "pyarrow"}
    assert str(frame["trainable_params"].dtype) == "Int64" and str(frame["value"].dtype) == "float64"
    assert str(frame["started_at"].dt.tz) == "UTC"
    assert (frame["finished_at"] - frame["started_at"]).iloc[0].total_seconds() == 150
    assert store.suites() == ["llm_adapters/math"]
    assert len(store.read(["llm_adapters/math"])) == 6 and store.read(["other"]).empty


def test_ok_and_failed_ids_and_the_failed_row(tmp_path):
    store = Store(tmp_path)
    good, bad = make_spec(seed=1), make_spec(seed=2)
    store.write(ok_result(good))
    store.write(failed_result(bad))
    assert store.ok_trial_ids("llm_adapters/math") == {good.trial_id}
    assert store.statuses("llm_adapters/math") == {good.trial_id: "ok", bad.trial_id: "failed"}
    rows = store.read()
    failed = rows[rows["trial_id"] == bad.trial_id]
    assert len(failed) == 1
    row = failed.iloc[0]
    assert row["status"] == "failed" and row["error"].startswith("RuntimeError: boom")
    assert row["metric"] is None or row["metric"] != row["metric"]  # null
    assert row["value"] != row["value"]  # NaN: no number for a failed trial
    assert row["trainable_params"] is None or str(row["trainable_params"]) == "<NA>"
    assert store.ok_trial_ids("unknown-suite") == set()


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    store = Store(tmp_path)
    for seed in range(3):
        store.write(ok_result(make_spec(seed=seed)))
    names = [p.name for p in tmp_path.rglob("*") if p.is_file()]
    assert names and not [n for n in names if ".tmp-" in n]


def test_failed_write_removes_its_temporary_file(tmp_path):
    store = Store(tmp_path)
    spec = make_spec()
    # A directory squatting on the final name makes os.replace fail after the temp file is written.
    Path(store.trial_path(spec.suite, spec.trial_id)).mkdir(parents=True)
    with pytest.raises(OSError):
        store.write(TrialResult(spec=spec, trainable_params=1, total_params=2))
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_ok_is_never_replaced_by_failed(tmp_path):
    store = Store(tmp_path)
    spec = make_spec()
    store.write(ok_result(spec, gsm=60.0))
    store.write(failed_result(spec))
    assert store.ok_trial_ids(spec.suite) == {spec.trial_id}
    assert store.read()["value"].max() == 60.0
    store.write(ok_result(spec, gsm=70.0))  # ok replaces ok
    assert store.read()["value"].max() == 70.0
    other = make_spec(seed=7)
    store.write(failed_result(other))
    store.write(ok_result(other))  # ok replaces failed
    assert set(store.statuses(spec.suite).values()) == {"ok"}


def test_a_file_of_an_older_schema_still_reads(tmp_path):
    store = Store(tmp_path)
    store.write(ok_result(make_spec()))
    old_columns = ["schema_version", "suite", "trial_id", "model", "method", "eval_data", "metric", "value", "status"]
    old = pa.table({"schema_version": pa.array([0], pa.int32()), "suite": ["llm_adapters/math"], "trial_id": ["old0000000000000"],
                    "model": ["llama-7b"], "method": ["lora"], "eval_data": ["gsm8k"], "metric": ["accuracy"],
                    "value": [37.5], "status": ["ok"]})
    assert old.column_names == old_columns
    pq.write_table(old, tmp_path / "llm_adapters__math" / "trials" / "old0000000000000.parquet")
    frame = store.read()
    assert len(frame) == 3 and list(frame.columns) == TRIAL_SCHEMA.names
    old_row = frame[frame["trial_id"] == "old0000000000000"].iloc[0]
    assert old_row["value"] == 37.5 and str(old_row["trainable_params"]) == "<NA>"
    assert "old0000000000000" in store.ok_trial_ids("llm_adapters/math")


def test_truncated_and_foreign_files_are_skipped_with_a_warning(tmp_path, caplog):
    store = Store(tmp_path)
    spec = make_spec()
    good = Path(store.write(ok_result(spec)))
    trials = good.parent
    (trials / "truncated.parquet").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    pq.write_table(pa.table({"x": [1, 2]}), trials / "foreign.parquet")
    with caplog.at_level(logging.WARNING, logger="benchmark.store"):
        frame = store.read()
    assert set(frame["trial_id"]) == {spec.trial_id}
    assert "truncated.parquet" in caplog.text and "foreign.parquet" in caplog.text
    assert store.ok_trial_ids(spec.suite) == {spec.trial_id}


def test_predictions_round_trip(tmp_path):
    store = Store(tmp_path)
    spec = make_spec()
    store.write(ok_result(spec))
    preds = store.read_predictions(spec.suite, spec.trial_id, "gsm8k")
    assert list(preds.columns) == ["id", "prompt", "output", "extracted", "gold", "correct"]
    assert preds["id"].tolist() == ["gsm8k/0", "gsm8k/1"] and preds["correct"].tolist() == [True, False]
    assert preds.loc[0, "output"] == "The answer is 4"
    with pytest.raises(FileNotFoundError, match="AQuA"):
        store.read_predictions(spec.suite, spec.trial_id, "AQuA")


@pytest.mark.parametrize("bad", ["../escape", "/abs", "a/../b", ""])
def test_unsafe_suite_names_are_refused(tmp_path, bad):
    with pytest.raises(ValueError, match="suite"):
        Store(tmp_path).trial_path(bad, "abc")


def test_git_state_is_a_sha_or_none():
    from benchmark.store.writer import git_state

    sha, dirty = git_state()
    assert (sha is None and dirty is None) or (len(sha) == 40 and isinstance(dirty, bool))


# -- retries, compaction, filesystems, concurrent writers (issue 5) ---------------------------------------------

def test_a_later_ok_supersedes_a_failure_which_stays_in_history(tmp_path):
    store = Store(tmp_path)
    spec = make_spec()
    store.write(failed_result(spec))
    assert store.statuses(spec.suite) == {spec.trial_id: "failed"}
    store.write(ok_result(spec, gsm=61.0))
    store.write(failed_result(spec))  # a late failure (a lost worker's duplicate) never hides the ok one
    assert store.statuses(spec.suite) == {spec.trial_id: "ok"}
    frame = store.read()
    assert set(frame["status"]) == {"ok"} and len(frame) == 2 and frame["value"].max() == 61.0
    history = store.read(history=True)
    assert sorted(history["status"]) == ["failed", "failed", "ok", "ok"]


def test_compaction_folds_files_into_one_and_loses_nothing(tmp_path):
    store = Store(tmp_path)
    specs = [make_spec(seed=i) for i in range(6)]
    for spec in specs[:4]:
        store.write(ok_result(spec))
    store.write(failed_result(specs[4]))
    before = store.read().sort_values(["trial_id", "eval_data"]).reset_index(drop=True)
    assert store.compact() == 5
    assert store.compact() == 0  # nothing new
    trials = tmp_path / "llm_adapters__math" / "trials"
    assert len(list(trials.glob("*.parquet"))) == 5  # nothing deleted
    assert (tmp_path / "llm_adapters__math" / "consolidated.parquet").is_file()
    after = store.read().sort_values(["trial_id", "eval_data"]).reset_index(drop=True)
    assert after.equals(before)
    # Written after the compaction: a new trial and an ok retry of the failed one are read on top of it.
    store.write(ok_result(specs[5]))
    store.write(ok_result(specs[4], gsm=99.0))
    assert store.ok_trial_ids(specs[0].suite) == {s.trial_id for s in specs}
    assert store.read()["value"].max() == 99.0
    assert store.suites() == ["llm_adapters/math"]


def test_write_many_reads_like_single_writes(tmp_path):
    one, many = Store(tmp_path / "one"), Store(tmp_path / "many")
    results = [ok_result(make_spec(seed=i)) for i in range(3)] + [failed_result(make_spec(seed=9))]
    for result in results:
        one.write(result)
    many.write_many(results)
    columns = [c for c in TRIAL_SCHEMA.names if c not in ("git_dirty",)]
    left = one.read().sort_values(["trial_id", "eval_data"]).reset_index(drop=True)[columns]
    right = many.read().sort_values(["trial_id", "eval_data"]).reset_index(drop=True)[columns]
    assert left.equals(right)
    assert many.read_predictions("llm_adapters/math", results[0].trial_id, "gsm8k")["id"].tolist() == ["gsm8k/0", "gsm8k/1"]


def test_an_object_store_gets_temporary_keys_first_and_never_leaves_them():
    # pyarrow's in-memory filesystem stands in for S3: not local, so no rename; copy then delete.
    from pyarrow.fs import FileSelector, _MockFileSystem

    fs = _MockFileSystem()
    store = Store("bucket/results", filesystem=fs)
    assert not store.loc.local
    specs = [make_spec(seed=i) for i in range(3)]
    for spec in specs:
        store.write(ok_result(spec))
    store.write(failed_result(make_spec(seed=7)))
    store.compact()
    keys = [i.path for i in fs.get_file_info(FileSelector("bucket", recursive=True))]
    assert not [k for k in keys if ".tmp-" in k]
    assert "bucket/results/llm_adapters__math/consolidated.parquet" in keys
    assert store.ok_trial_ids("llm_adapters/math") == {s.trial_id for s in specs}
    assert len(store.read()) == 3 * 2 + 1


def test_results_uris_are_opened_with_pyarrow_and_bad_ones_are_one_line_errors(tmp_path):
    from benchmark.errors import UserError

    store = Store(f"file://{tmp_path}/shared")
    store.write(ok_result(make_spec()))
    assert (tmp_path / "shared" / "llm_adapters__math" / "trials").is_dir()
    assert Store(tmp_path / "shared").ok_trial_ids("llm_adapters/math") == {make_spec().trial_id}
    with pytest.raises(UserError, match="bogus://x.*allowed: a local path or a pyarrow filesystem URI"):
        Store("bogus://x")


WRITER = """
import sys
from tests.test_store import make_spec, ok_result, failed_result
from benchmark.store import Store
store, who = Store(sys.argv[1]), sys.argv[2]
for i in range(40):
    # Seeds 0-19 are written by both processes: one stores them ok, the other as failed.
    seed = i if i < 20 else (100 if who == "a" else 200) + i
    result = failed_result(make_spec(seed=seed)) if (who == "b" and i < 20) else ok_result(make_spec(seed=seed))
    store.write(result)
    if i % 10 == 9:
        store.compact()
"""


def test_two_processes_writing_one_suite_at_once_lose_nothing(tmp_path):
    import subprocess
    import sys

    from tests.conftest import ROOT

    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), who], cwd=ROOT) for who in ("a", "b")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    store = Store(tmp_path)
    expected = {make_spec(seed=s).trial_id for s in [*range(20), *range(120, 140), *range(220, 240)]}
    assert store.ok_trial_ids("llm_adapters/math") == expected
    frame = store.read()
    assert frame.groupby("trial_id").size().eq(2).all() and set(frame["status"]) == {"ok"}
    assert not [p for p in tmp_path.rglob("*") if ".tmp-" in p.name]
    store.compact()
    assert store.read().sort_values(["trial_id", "eval_data"]).reset_index(drop=True).equals(
        frame.sort_values(["trial_id", "eval_data"]).reset_index(drop=True))
