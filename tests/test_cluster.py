"""Acceptance: a real Ray head on 127.0.0.1 (`ray start --head`), a 2-trial embedded suite sent with
`peft-bench submit`, followed with `peft-bench jobs`, rows asserted in the store; the cluster stopped after."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.store import Store
from tests.test_resume import PEFT_BENCH, write_suite

RAY = str(Path(sys.executable).parent / "ray")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    gcs, dashboard = free_port(), free_port()
    temp = tmp_path_factory.mktemp("ray")
    cmd = [RAY, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={gcs}", "--num-cpus=2", "--num-gpus=0",
           "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
           f"--ray-client-server-port={free_port()}", "--disable-usage-stats", f"--temp-dir={temp}",
           # the agents' default ports collide with any other Ray on the machine (the job agent then never
           # comes up and every submit is refused): free ones, like the others
           f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
           f"--metrics-export-port={free_port()}", f"--runtime-env-agent-port={free_port()}"]
    try:
        subprocess.run(cmd, env=env, check=True, capture_output=True, text=True, timeout=180)
        yield f"http://127.0.0.1:{dashboard}", env
    finally:
        stop_cluster(temp)


def stop_cluster(temp: Path) -> None:
    """Stop only this cluster: `ray stop --force` would also kill the Ray instances of other sessions on this
    machine. Its GCS, raylet, dashboard and client server all name our --temp-dir on their command line;
    its workers exit when their raylet goes."""
    import signal
    import time

    def ours() -> list[int]:
        pids = []
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and str(temp) in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    pids.append(int(entry.name))
            except OSError:
                continue
        return pids

    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in ours():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        time.sleep(2)


def test_submit_runs_a_suite_as_a_ray_job(ray_head, tmp_path):
    address, env = ray_head
    work = tmp_path / "work"
    work.mkdir()
    suite = write_suite(work, "cluster-submit", ["lora", "series"])
    results = tmp_path / "results"
    submitted = subprocess.run([PEFT_BENCH, "submit", suite.name, "--address", address, "--results", str(results),
                                "--working-dir", str(work), "--wait"], cwd=work, env=env, capture_output=True,
                               text=True, timeout=500)
    job_id = submitted.stdout.splitlines()[0] if submitted.stdout else ""
    assert submitted.returncode == 0, submitted.stdout[-3000:] + submitted.stderr[-3000:]
    assert job_id.startswith("raysubmit_") and f"{job_id}: SUCCEEDED" in submitted.stdout

    frame = Store(results).read(["cluster-submit"])
    assert frame["trial_id"].nunique() == 2 and set(frame["status"]) == {"ok"}
    assert set(frame["method"]) == {"lora", "series"} and set(frame["eval_data"]) == {"emb-gsm8k"}

    status = subprocess.run([PEFT_BENCH, "jobs", "status", job_id, "--address", address], env=env,
                            capture_output=True, text=True, timeout=60)
    assert status.returncode == 0 and "SUCCEEDED" in status.stdout
    logs = subprocess.run([PEFT_BENCH, "jobs", "logs", job_id, "--address", address], env=env,
                          capture_output=True, text=True, timeout=60)
    assert "2 ok, 0 failed" in logs.stdout
    unknown = subprocess.run([PEFT_BENCH, "jobs", "stop", "raysubmit_nosuchjob", "--address", address], env=env,
                             capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 2 and "raysubmit_nosuchjob" in unknown.stderr and "Traceback" not in unknown.stderr
