"""run_specs on a real local Ray: trials stored, reruns skipped, a crashing trial stored as failed."""

import sys

import pytest

ray = pytest.importorskip("ray")

from benchmark.registry.spec import Resources, TrainConfig, TrialSpec  # noqa: E402
from benchmark.result import Metric, TrialResult  # noqa: E402
from benchmark.scheduler import RunSummary, run_specs  # noqa: E402
from benchmark.scheduler.tune_driver import ensure_ray, placement_for  # noqa: E402
from benchmark.store import Store  # noqa: E402

QUIET = {"num_cpus": 2, "include_dashboard": False, "log_to_driver": False, "logging_level": "ERROR"}
CRASH_LR = 2e-4


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    # Workers cannot import this test module by name (tests/ is not on their path): ship it by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    started = ensure_ray(None, QUIET)
    yield
    if started:
        ray.shutdown()


def make_specs(suite: str) -> list[TrialSpec]:
    return [TrialSpec(suite=suite, suite_version="1", model="tiny-llama", model_source="embedded:tiny-llama",
                      model_family="llama", method="lora", method_args={"r": 4}, train_data="embedded:math",
                      eval_data=("embedded:math",), train=TrainConfig(learning_rate=lr, batch_size=4, micro_batch_size=4),
                      resources=Resources(cpus=1), cell={"learning_rate": lr})
            for lr in (1e-4, CRASH_LR, 3e-4)]


def fake_trial(spec: TrialSpec, data_root: str) -> TrialResult:
    value = spec.train.learning_rate * 100 * 1000
    return TrialResult(spec=spec, metrics=[Metric(eval_data=spec.eval_data[0], task_family="math", metric="accuracy",
                                                  value=value, n_examples=10)],
                       started_at="2025-01-01T00:00:00+00:00", finished_at="2025-01-01T00:00:01+00:00")


def crashing_trial(spec: TrialSpec, data_root: str) -> TrialResult:
    if spec.train.learning_rate == CRASH_LR:
        raise RuntimeError("boom: the trial function crashed")
    return fake_trial(spec, data_root)


def trial_files(root):
    return sorted(root.glob("*/trials/*.parquet"))  # not Ray's .ray folder, predictions or consolidated.parquet


def test_runs_every_spec_then_skips_them_on_rerun(tmp_path):
    specs = make_specs("sched-ok")
    summary = run_specs(specs, data_root=str(tmp_path / "data"), results_root=str(tmp_path), trial_fn=fake_trial)
    assert isinstance(summary, RunSummary)
    assert (summary.total, summary.skipped, summary.ok, summary.failed) == (3, 0, 3, [])

    files = trial_files(tmp_path)
    assert len(files) == 3
    rows = Store(tmp_path).read(["sched-ok"])
    assert set(rows["trial_id"]) == {s.trial_id for s in specs}
    assert set(rows["status"]) == {"ok"}
    by_id = dict(zip(rows["trial_id"], rows["value"]))
    for spec in specs:
        assert by_id[spec.trial_id] == pytest.approx(spec.train.learning_rate * 1e5)

    mtimes = {p: p.stat().st_mtime_ns for p in files}
    again = run_specs(specs, data_root=str(tmp_path / "data"), results_root=str(tmp_path), trial_fn=fake_trial)
    assert (again.total, again.skipped, again.ok, again.failed) == (3, 3, 0, [])
    assert {p: p.stat().st_mtime_ns for p in trial_files(tmp_path)} == mtimes


def test_a_crashing_trial_is_stored_as_failed_and_listed(tmp_path, capsys):
    specs = make_specs("sched-crash")
    summary = run_specs(specs, data_root=str(tmp_path / "data"), results_root=str(tmp_path), trial_fn=crashing_trial)
    crashed = next(s for s in specs if s.train.learning_rate == CRASH_LR)
    assert summary.ok == 2
    assert [tid for tid, _ in summary.failed] == [crashed.trial_id]
    assert "boom" in summary.failed[0][1]
    assert "FAILED" in capsys.readouterr().out  # the progress line

    store = Store(tmp_path)
    assert store.ok_trial_ids("sched-crash") == {s.trial_id for s in specs} - {crashed.trial_id}
    assert {tid for tid, status in store.statuses("sched-crash").items() if status == "failed"} == {crashed.trial_id}
    rows = Store(tmp_path).read(["sched-crash"])
    failed_rows = rows[rows["trial_id"] == crashed.trial_id]
    assert set(failed_rows["status"]) == {"failed"}
    assert "boom: the trial function crashed" in failed_rows["error"].iloc[0]

    # A rerun retries only the failed trial (here it fails again) and skips the two ok ones.
    again = run_specs(specs, data_root=str(tmp_path / "data"), results_root=str(tmp_path), trial_fn=crashing_trial,
                      progress=False)
    assert (again.skipped, again.ok, len(again.failed)) == (2, 0, 1)


def test_resources_come_from_each_spec():
    spec = make_specs("sched-res")[0]
    big = TrialSpec.from_dict({**spec.to_dict(), "resources": {"cpus": 4, "gpus": 1, "memory_gb": 2}})
    bundle = placement_for({"unit": {"spec": big.to_dict()}}).bundles[0]
    assert bundle == {"CPU": 4.0, "GPU": 1.0, "memory": 2 * 1024**3}
    assert placement_for({"unit": {"spec": spec.to_dict()}}).bundles[0] == {"CPU": 1.0}


def test_a_trial_larger_than_the_cluster_fails_fast(tmp_path):
    from benchmark.errors import UserError

    spec = make_specs("sched-big")[0]
    too_big = TrialSpec.from_dict({**spec.to_dict(), "resources": {"cpus": 64, "gpus": 0}})
    with pytest.raises(UserError, match="resources.cpus"):
        run_specs([too_big], data_root=str(tmp_path), results_root=str(tmp_path), trial_fn=fake_trial)


def test_default_trial_fn_is_the_runner_and_its_failures_are_stored(tmp_path):
    # No trial_fn: the worker imports benchmark.runner.run_trial; an unknown dataset fails inside
    # the runner, which returns (not raises) a failed result that the worker stores itself.
    spec = TrialSpec.from_dict({**make_specs("sched-runner")[0].to_dict(), "train_data": "no-such-dataset"})
    summary = run_specs([spec], data_root=str(tmp_path / "data"), results_root=str(tmp_path), progress=False)
    assert summary.ok == 0 and [tid for tid, _ in summary.failed] == [spec.trial_id]
    assert summary.failed[0][1] != "unknown error"
    assert Store(tmp_path).statuses("sched-runner") == {spec.trial_id: "failed"}
