"""A Ray cluster of several nodes on this machine (`ray start`, each node with its own ports and resources):
a worker node SIGKILLed mid-trial, the head killed mid-run and the run resumed on a new head; and `run`'s quiet,
early failures (a missing dataset refused before Ray starts; Ray's output in the log file, also asserted for a
local Ray in tests/test_resume.py)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.test_cluster import free_port, stop_cluster
from tests.test_resume import PEFT_BENCH, ok_sets_per_trial, process_tree, write_suite

RAY = str(Path(sys.executable).parent / "ray")
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
STEPS = 30  # a trial takes seconds: longer than finding its node and killing it takes


class Cluster:
    """Ray nodes started with `ray start` under one --temp-dir (so stop_cluster stops exactly these)."""

    def __init__(self, temp: Path):
        self.temp, self.address = temp, None

    def _start(self, *args: str) -> str:
        """Start a node; return its node manager port (which names its raylet on the command line)."""
        port = free_port()
        cmd = [RAY, "start", "--node-ip-address=127.0.0.1", f"--node-manager-port={port}",
               f"--object-manager-port={free_port()}", f"--dashboard-agent-listen-port={free_port()}",
               f"--dashboard-agent-grpc-port={free_port()}", f"--metrics-export-port={free_port()}",
               f"--runtime-env-agent-port={free_port()}", "--num-gpus=0", "--disable-usage-stats",
               f"--temp-dir={self.temp}", *args]
        done = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr[-3000:]
        return str(port)

    def head(self, cpus: int) -> str:
        gcs = free_port()
        self.head_port = self._start("--head", f"--port={gcs}", f"--num-cpus={cpus}", "--include-dashboard=false",
                                     f"--ray-client-server-port={free_port()}")
        self.address = f"127.0.0.1:{gcs}"
        return self.address

    def worker(self) -> str:
        return self._start(f"--address={self.address}", "--num-cpus=1")

    def raylet(self, port: str) -> tuple[int, str]:
        """(pid, node id) of the raylet listening on node manager `port`."""
        for entry in Path("/proc").iterdir():
            try:
                cmdline = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            except OSError:
                continue
            if f"--node_manager_port={port}" in cmdline and str(self.temp) in " ".join(cmdline):
                node_id = next(arg.split("=", 1)[1] for arg in cmdline if arg.startswith("--node_id="))
                return int(entry.name), node_id
        raise AssertionError(f"no raylet on port {port}")

    def running_trial(self, port: str) -> bool:
        """A Tune trial's actor runs below this node's raylet."""
        pid, _ = self.raylet(port)
        for child in process_tree(pid)[1:]:
            try:
                if b"ImplicitFunc" in Path(f"/proc/{child}/cmdline").read_bytes():
                    return True
            except OSError:
                continue
        return False

    def kill_node(self, port: str) -> str:
        """SIGKILL the node's raylet and every process below it (its workers and agents); return its node id."""
        pid, node_id = self.raylet(port)
        for victim in process_tree(pid):
            try:
                os.kill(victim, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return node_id


@pytest.fixture
def cluster(tmp_path_factory):
    temp = tmp_path_factory.mktemp("rn")  # short: Ray's socket paths below it must fit in 107 bytes
    yield Cluster(temp)
    stop_cluster(temp)


def kill_cluster(temp: Path) -> None:
    """SIGKILL every process of the cluster (GCS, raylets, workers, agents): a head machine that died."""
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and str(temp) in (entry / "cmdline").read_bytes().decode(errors="replace"):
                os.kill(int(entry.name), signal.SIGKILL)
        except (OSError, ProcessLookupError):
            continue


def wait_for(what, timeout: float, proc: subprocess.Popen, log: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = what()
        if found:
            return found
        assert proc.poll() is None, log.read_text()[-3000:]
        time.sleep(0.2)
    raise AssertionError(f"timed out; the run said:\n{log.read_text()[-3000:]}")


def test_a_worker_node_killed_mid_trial_its_trial_reruns_on_the_other(cluster, tmp_path):
    address = cluster.head(cpus=0)  # no CPU on the head: every trial runs on one of the two 1-CPU workers
    ports = [cluster.worker(), cluster.worker()]
    suite = write_suite(tmp_path, "nodes-kill", ["lora", "series"], steps=STEPS)
    results = tmp_path / "results"
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    cmd = [PEFT_BENCH, "run", str(suite), "--address", address, "--results", str(results), "--max-concurrent", "1",
           "--co-train", "off"]
    with open(out, "w") as stdout, open(err, "w") as stderr:
        run = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=stdout, stderr=stderr, start_new_session=True)
    try:
        wait_for(lambda: "started" in out.read_text(), 240, run, out)
        victim = wait_for(lambda: next((p for p in ports if cluster.running_trial(p)), None), 60, run, out)
        running = re.findall(r"\] (\w+) started", out.read_text())[-1]  # one trial at a time: the last one started
        node_id = cluster.kill_node(victim)
        assert run.wait(timeout=400) == 0, out.read_text()[-3000:] + err.read_text()[-3000:]
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    lines = out.read_text().splitlines()
    lost = [line for line in lines if "lost" in line]
    assert len(lost) == 1 and f"({node_id[:8]}) lost: retrying {running}" in lost[0], "\n".join(lines)
    assert "2 ok, 0 failed, 0 already stored" in lines[-1]
    ran = set(re.findall(r"\] (\w+) ok", "\n".join(lines)))
    assert len(ran) == 2 and running in ran and ok_sets_per_trial(results, "nodes-kill") == dict.fromkeys(ran, 1)  # each stored once
    # The terminal shows the run's own lines only; Ray's (the failed actor's traceback, banners) are in the log
    assert all(line.startswith("[peft-bench]") for line in lines[:-1]) and err.read_text() == "", err.read_text()[-2000:]
    log = Path(lines[0].split("Ray's own output: ", 1)[1])
    assert "Trial task failed" in log.read_text() and "Connected to Ray cluster" in log.read_text()


def test_the_head_killed_mid_run_the_rerun_on_a_new_head_resumes(tmp_path_factory, tmp_path):
    old, new = Cluster(tmp_path_factory.mktemp("rh")), Cluster(tmp_path_factory.mktemp("rh"))
    suite = write_suite(tmp_path, "head-kill", ["lora", "series"], steps=STEPS)
    results = tmp_path / "results"
    trials = results / "head-kill" / "trials"
    out = tmp_path / "first.txt"
    cmd = [PEFT_BENCH, "run", str(suite), "--results", str(results), "--max-concurrent", "1", "--co-train", "off",
           "--address"]
    first = None
    try:
        address = old.head(cpus=1)
        # Ray's driver gives a lost head 60 s to come back before it exits; 10 s will do here
        with open(out, "w") as stdout:
            first = subprocess.Popen([*cmd, address], cwd=ROOT, env={**ENV, "RAY_gcs_rpc_server_reconnect_timeout_s": "10"},
                                     stdout=stdout, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: list(trials.glob("*.parquet")), 240, first, out)
        kill_cluster(old.temp)
        assert first.wait(timeout=120) != 0
        said = out.read_text().splitlines()
        assert [line for line in said if "stopped answering" in line and f":{address.rsplit(':', 1)[1]})" in line], "\n".join(said)
        assert all(line.startswith("[peft-bench]") for line in said), "\n".join(said)  # Ray's own words: in the log
        stored = {p: p.stat().st_mtime_ns for p in trials.glob("*.parquet")}
        assert len(stored) == 1, "the kill came after the whole sweep: nothing to resume"

        again = subprocess.run([*cmd, new.head(cpus=1)], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=400)
        assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
        assert "1 ok, 0 failed, 1 already stored" in again.stdout
        counts = ok_sets_per_trial(results, "head-kill")
        assert len(counts) == 2 and set(counts.values()) == {1}  # each trial stored exactly once
        assert {p: p.stat().st_mtime_ns for p in stored} == stored  # what the first run stored was not rerun
    finally:
        if first is not None and first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
        kill_cluster(old.temp)
        stop_cluster(new.temp)


def test_run_refuses_missing_data_before_ray_starts(tmp_path):
    started = time.monotonic()
    done = subprocess.run([PEFT_BENCH, "run", "llm_adapters/math", "--data-dir", str(tmp_path / "empty"),
                           "--results", str(tmp_path / "results")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == "", done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "file not found" in done.stderr and str(tmp_path / "empty") in done.stderr and "data check" in done.stderr
    assert not (tmp_path / "results").exists() and time.monotonic() - started < 60  # no Ray, no log file, no store


def test_a_retried_trial_and_a_lost_head_are_one_line_each():
    import io

    from benchmark.scheduler.progress import Progress

    out = io.StringIO()
    progress = Progress(2, out, tty=False, clock=lambda: 0.0)
    progress.start("t1")
    progress.retry("t1", "node 10.0.0.7 (3f2a1b9c) lost", 1)
    progress.note("the Ray head (10.0.0.1:6379) stopped answering")
    progress.finish("t1", True)
    progress.retry("t1", "late news", 2)  # a trial already finished is not retried
    lines = out.getvalue().splitlines()
    assert lines == ["[peft-bench] t1 started | 0 done, 1 running, 0 failed, 1 remaining of 2 | 0m00s elapsed",
                     "[peft-bench] node 10.0.0.7 (3f2a1b9c) lost: retrying t1 (failure 1) | 0 done, 0 running, 0 failed, "
                     "2 remaining of 2 | 0m00s elapsed",
                     "[peft-bench] the Ray head (10.0.0.1:6379) stopped answering | 0 done, 0 running, 0 failed, 2 remaining "
                     "of 2 | 0m00s elapsed",
                     "[peft-bench] t1 ok | 1 done, 0 running, 0 failed, 1 remaining of 2 | 0m00s elapsed, ETA 0m00s"]
