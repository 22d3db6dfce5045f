"""One trial, one runner: lease files in the store (benchmark/store/leases.py) on a local folder and on a real
S3-compatible server (moto), claimed by racing processes; a worker that finds its trial held runs nothing; and
two whole `peft-bench run` processes on one suite: started together they train each trial once between them,
and when one stops (frozen with SIGSTOP: a driver on another host that died or hangs, whose process this host
cannot see) the other takes its trial over once the lease expires. A driver killed on this host is taken over at
once (its pid is gone): test_a_dead_driver_on_this_host_is_taken_over_at_once."""

import multiprocessing
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmark.errors import UserError
from benchmark.result import TrialResult
from benchmark.scheduler import core
from benchmark.store import Store
from benchmark.store.fs import locate
from benchmark.store.leases import FOLDER, LEASE_ENV, Holder, Leases, lease_seconds
from tests.test_resume import PEFT_BENCH, kill_all, ok_sets_per_trial, process_tree, write_suite
from tests.test_s3_store import BUCKET, s3  # noqa: F401  (the moto server fixture)
from tests.test_scheduler_core import make_specs, stored

TRIALS = [f"t{i:02d}" for i in range(12)]


def _claimant(root: str, seed: int, barrier, out) -> None:
    leases = Leases(locate(root))
    holder = Holder.new(60)
    order = random.Random(seed).sample(TRIALS, len(TRIALS))  # each in its own order: claimants meet mid-list
    barrier.wait()
    out.put((holder.owner, [lease.trial_id for lease in leases.claim_many("race", order, holder)]))


@pytest.mark.parametrize("where", ["local", "s3"])
def test_racing_claimants_win_each_trial_exactly_once(where, tmp_path, request):
    root = str(tmp_path) if where == "local" else (request.getfixturevalue("s3"), f"s3://{BUCKET}/leases-race")[1]
    ctx = multiprocessing.get_context("spawn")  # pyarrow's S3 client must not be inherited through fork
    barrier, out = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_claimant, args=(root, seed, barrier, out)) for seed in range(4)]
    for proc in procs:
        proc.start()
    won = dict(out.get(timeout=120) for _ in procs)
    for proc in procs:
        proc.join(timeout=60)
    claimed = [tid for tids in won.values() for tid in tids]
    assert sorted(claimed) == TRIALS, won  # none lost, none twice
    leases = Leases(locate(root))  # the losers deleted their files: one left per trial, the winner's
    assert {tid: [c.owner for c in leases.claims("race", tid)] for tid in TRIALS} == \
        {tid: [owner] for owner, tids in won.items() for tid in tids}


def test_a_lease_not_renewed_expires_and_is_taken_over(tmp_path):
    leases = Leases(locate(tmp_path))
    first, second = Holder("elsewhere-1-a", 2.0), Holder("elsewhere-2-b", 2.0)
    lease = leases.claim("s", "t", first)
    assert lease is not None and leases.claim("s", "t", second) is None
    time.sleep(2.1)
    assert leases.claim("s", "t", second) is not None  # the first driver stopped renewing: it is dead
    assert not lease.renew()  # and finds out it lost the lease if it was only late


def test_a_renewed_lease_outlives_its_length_and_release_frees_it(tmp_path):
    leases = Leases(locate(tmp_path))
    runner, other = Holder("elsewhere-1-a", 2.0), Holder("elsewhere-2-b", 2.0)
    with leases.claim("s", "t", runner):
        time.sleep(3.0)  # 1.5 lease lengths: renewed meanwhile
        assert leases.claim("s", "t", other) is None
    assert not list((tmp_path / FOLDER / "s").iterdir())  # released: no file left behind
    assert leases.claim("s", "t", other) is not None


def test_a_dead_driver_on_this_host_is_taken_over_at_once(tmp_path):
    code = ("import sys; from benchmark.store.fs import locate; from benchmark.store.leases import Leases, Holder; "
            "assert Leases(locate(sys.argv[1])).claim('s', 't', Holder.new(600)) is not None")
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, timeout=60)  # exits holding it
    assert Leases(locate(tmp_path)).claim("s", "t", Holder.new(600)) is not None


@pytest.mark.parametrize("text", ["abc", "0", "1e30", "nan"])
def test_a_bad_lease_length_is_named(text):
    with pytest.raises(UserError, match=rf"\${LEASE_ENV}='{text}': allowed: a number of seconds from 2 to 86400"):
        lease_seconds({LEASE_ENV: text})
    assert lease_seconds({}) == 120.0


@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_worker_runs_nothing_for_a_held_or_stored_trial(where, tmp_path, request):
    root = str(tmp_path) if where == "local" else (request.getfixturevalue("s3"), f"s3://{BUCKET}/leases-worker")[1]
    held, done, free = make_specs("lease-worker", 3)
    store, ran = Store(root), []

    def trial_fn(spec, data_root) -> TrialResult:
        ran.append(spec.trial_id)
        return stored(spec, "ok")

    other = Holder("elsewhere-1-a", 60)
    assert Leases(store.loc).claim(held.suite, held.trial_id, other) is not None
    store.write(stored(done, "ok"))
    results = {spec.trial_id: core.run_and_store(spec, "data", root, trial_fn, holder=Holder.new(60)).status
               for spec in (held, done, free)}
    assert results == {held.trial_id: core.LEASED, done.trial_id: core.LEASED, free.trial_id: "ok"}
    assert ran == [free.trial_id]
    assert set(Leases(store.loc).holders("lease-worker")) == {held.trial_id}  # ours released, the other's kept


def test_run_rounds_waits_for_another_drivers_trials_and_takes_over_the_dead_ones(tmp_path):
    finished_elsewhere, abandoned, mine = make_specs("lease-rounds", 3)
    store, leases = Store(tmp_path), Leases(locate(tmp_path))
    alive, dead = Holder("elsewhere-1-a", 60), Holder("elsewhere-2-b", 2.0)
    finishing = leases.claim(finished_elsewhere.suite, finished_elsewhere.trial_id, alive)
    assert leases.claim(abandoned.suite, abandoned.trial_id, dead) is not None  # never renewed: expires in 2 s
    launched, lines = [], []

    def launch(batch):
        launched.append([spec.trial_id for spec in batch])
        if len(launched) == 1:  # meanwhile the live driver stores its trial and releases it
            store.write(stored(finished_elsewhere, "ok"))
            finishing.release()
        return {spec.trial_id: core.Outcome(core.run_and_store(spec, "data", str(tmp_path), lambda s, _: stored(s, "ok"),
                                                               holder=me).status, "") for spec in batch}

    me = Holder.new(60)
    summary = core.RunSummary(total=3, skipped=0)
    core.run_rounds(store, [finished_elsewhere, abandoned, mine], me, launch, summary, lines.append)
    assert launched == [[mine.trial_id], [abandoned.trial_id]]
    assert (summary.ok, summary.elsewhere, summary.failed) == (2, 1, [])
    assert any(f"taking over {abandoned.trial_id}" in line for line in lines), lines


# -- two whole drivers ----------------------------------------------------------------------------------------
def start_driver(suite: Path, results: Path, log: Path, lease_s: str) -> subprocess.Popen:
    env = {**os.environ, LEASE_ENV: lease_s, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    return subprocess.Popen([PEFT_BENCH, "run", str(suite), "--results", str(results), "--max-concurrent", "1"],
                            stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env, start_new_session=True)


def counts(log: Path) -> tuple[int, int]:
    """(trials this driver trained to ok, trials it left to the other), from its final summary line."""
    text = log.read_text()
    found = re.search(r"^(\d+) ok, (\d+) failed, \d+ already stored(?:, (\d+) run by another driver)? \(", text, re.M)
    assert found and found[2] == "0", text[-3000:]
    return int(found[1]), int(found[3] or 0)


def test_two_drivers_started_together_train_each_trial_once(tmp_path):
    suite = write_suite(tmp_path, "leases-two", ["lora", "series", "parallel", "adapterp"], steps=10)
    results = tmp_path / "results"
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    # a lease far longer than the test: a renewal late on a loaded machine must not hand a running trial over
    drivers = [start_driver(suite, results, log, "120") for log in logs]
    try:
        for driver in drivers:
            driver.wait(timeout=420)
    finally:
        for driver in drivers:
            if driver.poll() is None:
                kill_all(driver)
    assert [d.returncode for d in drivers] == [0, 0], [log.read_text()[-2000:] for log in logs]
    (a_ok, a_left), (b_ok, b_left) = counts(logs[0]), counts(logs[1])
    assert a_ok + b_ok == 4 and a_left == b_ok and b_left == a_ok  # each trial trained once between them
    assert ok_sets_per_trial(results, "leases-two") == {tid: 1 for tid in ok_sets_per_trial(results, "leases-two")}
    assert len(ok_sets_per_trial(results, "leases-two")) == 4
    assert not list((results / FOLDER).rglob("*.json"))  # every lease released


def test_a_stopped_drivers_trial_is_taken_over_after_its_lease_expires(tmp_path):
    suite = write_suite(tmp_path, "leases-stop", ["lora", "series"], steps=20)
    results = tmp_path / "results"
    # a short lease (renewed every 2 s): the survivor takes the stopped driver's trial over 6 s after its last renewal
    victim = start_driver(suite, results, tmp_path / "victim.log", "6")
    time.sleep(2)  # the victim's head start: it claims a trial first (both Rays start meanwhile, in parallel)
    survivor = start_driver(suite, results, tmp_path / "survivor.log", "6")
    try:
        deadline = time.monotonic() + 300
        while not (held := list((results / FOLDER).rglob(f"*-{victim.pid}-*.json"))):  # its worker is training
            assert victim.poll() is None and time.monotonic() < deadline, (tmp_path / "victim.log").read_text()[-3000:]
            time.sleep(0.2)
        for pid in process_tree(victim.pid):  # the driver, its Ray and the worker renewing the lease stop at once
            os.kill(pid, signal.SIGSTOP)
        stored_before = set(Store(results).ok_trial_ids("leases-stop"))
        survivor.wait(timeout=420)
    finally:
        for proc in (victim, survivor):
            if proc.poll() is None:
                kill_all(proc)
    text = (tmp_path / "survivor.log").read_text()
    assert survivor.returncode == 0, text[-3000:]
    ok_files = ok_sets_per_trial(results, "leases-stop")
    assert len(ok_files) == 2 and set(ok_files.values()) == {1}, ok_files  # none lost, none stored twice
    assert counts(tmp_path / "survivor.log") == (2 - len(stored_before), 0), text[-3000:]
    assert f"taking over {held[0].parent.name}" in text, text[-3000:]  # one line says which trial it took over


def test_run_trial_leaves_a_held_trial_to_its_holder(tmp_path, capsys):
    from benchmark.cli import main
    from benchmark.planner import plan

    suite = write_suite(tmp_path, "leases-run-trial", ["lora"])
    spec = plan(str(suite), [])[1][0].spec
    assert Leases(locate(tmp_path / "results")).claim(spec.suite, spec.trial_id, Holder("elsewhere-1-a", 60))
    assert main(["run-trial", str(suite), spec.trial_id, "--results", str(tmp_path / "results")]) == 0
    assert f"{spec.trial_id}: not run, another driver holds this trial's lease; nothing to do" in capsys.readouterr().out
    assert not Store(tmp_path / "results").ok_trial_ids("leases-run-trial")


def test_the_progress_display_counts_a_leased_trial_out_in_one_line():
    import io

    from benchmark.scheduler.progress import Progress

    out = io.StringIO()
    progress = Progress(3, out, tty=False)
    progress.start("t1")
    progress.leased("t1", "another driver holds this trial's lease")
    assert progress.total == 2 and not progress.running and progress.failed == 0
    assert out.getvalue().splitlines()[-1].startswith(
        "[peft-bench] t1 left to another driver (another driver holds this trial's lease) | 0 done, 0 running, 0 failed")
