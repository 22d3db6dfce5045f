"""The scheduler core without any backend: which trials are pending, what a launched trial's outcome
records, and the `run` / `run-trial` command lines every launcher renders the same way."""

import shlex

import pytest

from benchmark.cli import build_parser
from benchmark.errors import UserError
from benchmark.registry.spec import Resources, TrainConfig, TrialSpec
from benchmark.result import TrialResult
from benchmark.scheduler import core, jobs
from benchmark.scheduler.command import RunOptions, ShellWord, run_argv, run_trial_argv, shell_line
from benchmark.store import Store


def make_specs(suite: str, n: int = 4) -> list[TrialSpec]:
    return [TrialSpec(suite=suite, suite_version="1", model="tiny-llama", model_source="embedded:tiny-llama",
                      model_family="llama", method="lora", method_args={"r": 4}, train_data="emb-math_10k",
                      eval_data=("emb-gsm8k",), train=TrainConfig(learning_rate=lr), resources=Resources(cpus=1))
            for lr in (1e-4, 2e-4, 3e-4, 4e-4)[:n]]


def stored(spec: TrialSpec, status: str) -> TrialResult:
    return TrialResult(spec=spec, status=status, error=None if status == "ok" else "RuntimeError: boom",
                       started_at="2025-01-01T00:00:00+00:00", finished_at="2025-01-01T00:00:01+00:00")


def test_pending_skips_stored_ok_and_retry_failed_keeps_only_failures(tmp_path):
    a, b, c, d = make_specs("core-pending")
    store = Store(tmp_path)
    store.write(stored(a, "ok"))
    store.write(stored(b, "failed"))
    unique = core.unique_specs([a, b, c, a, d, c])
    assert unique == [a, b, c, d]  # plan order, one spec per trial id
    assert core.pending_specs(store, unique) == [b, c, d]
    assert core.pending_specs(store, unique, retry_failed=True) == [b]


def test_outcomes_are_counted_and_dead_workers_get_a_failed_row(tmp_path):
    reported_ok, reported_failed, died_after_storing, died = make_specs("core-outcomes")
    store = Store(tmp_path)
    store.write(stored(reported_ok, "ok"))
    store.write(stored(reported_failed, "failed"))
    store.write(stored(died_after_storing, "ok"))
    summary = core.RunSummary(total=4, skipped=0)
    core.record_outcomes(store, [reported_ok, reported_failed, died_after_storing, died], {
        reported_ok.trial_id: core.Outcome("ok", ""),
        reported_failed.trial_id: core.Outcome("failed", "RuntimeError: boom"),
        died_after_storing.trial_id: core.Outcome(None, "the worker died\ntraceback ..."),
        # `died` is missing altogether: the backend never heard of it
    }, summary)
    assert summary.ok == 2
    assert summary.failed == [(reported_failed.trial_id, "RuntimeError: boom"),
                              (died.trial_id, "the backend returned no result for this trial")]
    statuses = store.statuses("core-outcomes")
    assert statuses[died.trial_id] == "failed" and statuses[died_after_storing.trial_id] == "ok"
    assert store.read(["core-outcomes"]).set_index("trial_id").loc[died.trial_id, "error"] == \
        "the backend returned no result for this trial"


def test_find_trial_names_the_suite_and_its_size():
    specs = make_specs("core-find")
    assert core.find_trial(specs, specs[2].trial_id, "s.yaml") is specs[2]
    with pytest.raises(UserError) as info:
        core.find_trial(specs, "0123456789abcdef", "s.yaml")
    assert "'s.yaml'" in str(info.value) and "its 4 trial ids" in str(info.value)


def test_run_and_store_runs_in_this_process_and_stores(tmp_path):
    (spec,) = make_specs("core-run", 1)
    result = core.run_and_store(spec, str(tmp_path / "data"), str(tmp_path), trial_fn=lambda s, root: stored(s, "ok"))
    assert result.status == "ok" and Store(tmp_path).statuses("core-run") == {spec.trial_id: "ok"}


EVERYTHING = RunOptions(suite="my suite's.yaml", results="/r/$(x)", filters=["method=lora", "a=b c"], embedded=True,
                        data_dir="/d", address="auto", max_concurrent=3, max_failures=0, retry_failed=True)


def test_the_run_line_parses_back_to_the_same_options():
    parsed = build_parser().parse_args(shlex.split(shell_line(run_argv(EVERYTHING, ["peft-bench"])))[1:])
    assert (parsed.command, parsed.suite, parsed.results, parsed.filter, parsed.embedded, parsed.data_dir) == \
        ("run", EVERYTHING.suite, EVERYTHING.results, EVERYTHING.filters, True, "/d")
    assert (parsed.address, parsed.max_concurrent, parsed.max_failures, parsed.retry_failed) == ("auto", 3, 0, True)


def test_the_run_trial_line_parses_back_and_drops_run_only_options():
    argv = run_trial_argv(EVERYTHING, ShellWord('"$trial_id"'), ["peft-bench"])
    line = shell_line(argv)
    assert ' "$trial_id" ' in line  # the script's variable, not a quoted literal
    parsed = build_parser().parse_args(shlex.split(line.replace('"$trial_id"', "abc"))[1:])
    assert (parsed.command, parsed.suite, parsed.trial_ids, parsed.results, parsed.filter, parsed.embedded) == \
        ("run-trial", EVERYTHING.suite, ["abc"], EVERYTHING.results, EVERYTHING.filters, True)
    assert not {"--address", "--max-concurrent", "--max-failures", "--retry-failed"} & set(argv)


def test_the_ray_job_entrypoint_is_the_same_run_line():
    entry = jobs.entrypoint(EVERYTHING)
    assert shlex.split(entry)[:3] == ["python", "-m", "benchmark"]
    assert shlex.split(entry)[3:] == shlex.split(shell_line(run_argv(EVERYTHING, [])))


def test_a_run_that_tune_cuts_short_keeps_what_was_stored_and_records_the_rest(tmp_path, monkeypatch):
    """Ray can kill a worker while it starts (memory) and Tune then raises out of fit(): the trials the workers
    stored stand, every other pending trial gets a failed row saying why, and a rerun picks those up."""
    from benchmark.scheduler import tune_driver

    specs = make_specs("cut-short", 3)
    store = Store(tmp_path)

    def fit_then_die(units, *args, **kwargs):
        store.write(stored(units[0][0], "ok"))  # the first trial's worker stored its result
        raise RuntimeError("Caught unexpected exception: 1 worker(s) were killed due to the node running low on memory")

    monkeypatch.setattr(tune_driver, "ensure_ray", lambda address, kwargs: False)
    monkeypatch.setattr(tune_driver, "check_fits", lambda pending: None)
    monkeypatch.setattr(tune_driver, "_fit", fit_then_die)
    summary = tune_driver.run_specs(specs, str(tmp_path / "data"), str(tmp_path), progress=False)
    assert summary.ok == 1 and len(summary.failed) == 2
    assert all("cut short" in why and "running low on memory" in why for _, why in summary.failed)
    assert store.statuses("cut-short") == {specs[0].trial_id: "ok", specs[1].trial_id: "failed",
                                           specs[2].trial_id: "failed"}
    assert core.pending_specs(store, specs) == specs[1:]
