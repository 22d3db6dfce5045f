"""Co-training through the scheduler: `peft-bench run` groups the trials that share a base (scheduler/groups.py),
each member is stored as its own trial with its group's name, progress counts members; a SIGKILL during a group's
training and a rerun store every trial exactly once."""

import dataclasses
import subprocess
import time

import pandas as pd
import pytest

from benchmark.errors import UserError
from benchmark.planner import plan
from benchmark.registry.spec import Resources
from benchmark.scheduler import groups
from benchmark.store import Store
from tests.conftest import ROOT
from tests.test_resume import PEFT_BENCH, kill_all, ok_sets_per_trial, write_suite


def test_groups_are_formed_by_shared_base_and_capability(tmp_path):
    suite = write_suite(tmp_path, "groups", ["lora", "full", "prefix", "series", "ia3", "dora", "parallel", "adapterp"])
    specs = [t.spec for t in plan(str(suite))[1]]
    units = groups.form(specs, groups.CoTrain(8, cpu=True))
    assert [[s.method for s in unit] for unit in units] == [
        ["lora", "prefix", "series", "ia3", "dora", "parallel", "adapterp"], ["full"]]
    # 7 co-trainable at most 3: as even as can be
    assert [len(u) for u in groups.form(specs, groups.CoTrain(3, cpu=True))] == [3, 2, 2, 1]
    assert all(len(u) == 1 for u in groups.form(specs, groups.OFF))
    # auto: CPU-only trials alone; the same trials asking for a GPU in one group
    assert all(len(u) == 1 for u in groups.form(specs, groups.AUTO))
    on_gpu = [dataclasses.replace(s, resources=Resources(cpus=1, gpus=1)) for s in specs]
    assert [len(u) for u in groups.form(on_gpu, groups.AUTO)] == [7, 1]
    assert groups.parse_co_train("auto") == groups.AUTO and groups.parse_co_train("off") == groups.OFF
    assert groups.parse_co_train("5") == groups.CoTrain(5, cpu=True)
    for bad in ("0", "65", "-1", "2.5", "many", ""):
        with pytest.raises(UserError, match="--co-train: got"):
            groups.parse_co_train(bad)


def test_run_co_trains_and_stores_each_member_as_its_own_trial(tmp_path):
    suite = write_suite(tmp_path, "cotrain-run", ["lora", "prefix", "series", "full"])
    results = tmp_path / "results"
    done = subprocess.run([PEFT_BENCH, "run", str(suite), "--results", str(results), "--co-train", "8"], cwd=ROOT,
                          capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    specs = {t.spec.method: t.spec.trial_id for t in plan(str(suite))[1]}
    for trial_id in specs.values():  # progress names members, never a group
        assert f"{trial_id} ok" in done.stdout
    assert "4 ok, 0 failed" in done.stdout
    rows = Store(results).read(["cotrain-run"]).drop_duplicates("trial_id").set_index("trial_id")
    group = {rows.loc[specs[m], "co_train_group"] for m in ("lora", "prefix", "series")}
    assert len(group) == 1 and next(iter(group)).startswith("g-")
    assert pd.isna(rows.loc[specs["full"], "co_train_group"])  # full fine-tuning changes the base: it trains alone
    assert set(rows["status"]) == {"ok"}


def test_sigkill_during_a_co_trained_group_then_rerun_stores_every_trial_once(tmp_path):
    suite = write_suite(tmp_path, "cotrain-kill", ["lora", "series", "parallel", "adapterp"], steps=200)
    results = tmp_path / "results"
    cmd = [PEFT_BENCH, "run", str(suite), "--co-train", "8", "--results", str(results)]
    leases = results / ".leases"
    with open(tmp_path / "first.log", "w") as log:
        first = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:  # the group holds its members' leases while it trains: kill then
            deadline = time.monotonic() + 240
            while len(list(leases.rglob("*.json"))) < 4 and time.monotonic() < deadline and first.poll() is None:
                time.sleep(0.2)
            assert len(list(leases.rglob("*.json"))) == 4, (tmp_path / "first.log").read_text()[-3000:]
            time.sleep(1.0)
        finally:
            kill_all(first)
            first.wait(timeout=60)
    assert not list((results / "cotrain-kill" / "trials").glob("*.parquet"))  # killed while training: nothing stored

    second = subprocess.run([*cmd[:-2], "--results", str(results)], cwd=ROOT, capture_output=True, text=True,
                            timeout=600)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    counts = ok_sets_per_trial(results, "cotrain-kill")
    assert len(counts) == 4 and set(counts.values()) == {1}
    assert Store(results).read(["cotrain-kill"])["co_train_group"].nunique() == 1
