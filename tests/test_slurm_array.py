"""`peft-bench slurm --array`: one Slurm array task per pending trial, each running `peft-bench run-trial`.

The script parses, carries what was asked for, quotes user input, and, executed the way Slurm would run it
(a stub sbatch below: SLURM_ARRAY_TASK_ID per task, at most the `%` throttle at once), stores every trial
of a 4-trial suite exactly once; a resubmission runs nothing."""

import os
import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.errors import UserError
from benchmark.registry import plan
from benchmark.registry.spec import Resources
from benchmark.scheduler.slurm import SlurmOptions, validated
from benchmark.scheduler.slurm_array import build_array_script, render_array
from benchmark.store import Store
from tests.test_resume import ok_sets_per_trial, write_suite
from tests.test_slurm import bash_n, sbatch_lines

SUITE = "smoke"  # embedded default suite: 12 trials, planned without any download
VENV_BIN = str(Path(sys.executable).parent)


def array_script(tmp_path, **kw) -> str:
    built = build_array_script(SlurmOptions(**{"suite": SUITE, "results": str(tmp_path / "res"), **kw}))
    return built.text


def embedded_ids(text: str) -> list[str]:
    block = text.split("trial_ids=(\n", 1)[1].split("\n)", 1)[0]
    return [shlex.split(line)[0] for line in block.splitlines()]


def run_task(script: Path, task, env_extra: dict | None = None, path: str = VENV_BIN, **kw) -> subprocess.CompletedProcess:
    """One array task as Slurm starts it: the batch script with this task's SLURM_* variables."""
    env = {**os.environ, "PATH": f"{path}{os.pathsep}{os.environ['PATH']}", "SLURM_ARRAY_JOB_ID": "4242",
           "SLURM_JOB_ID": str(4242 + int(task) if str(task).isdigit() else 4242), "SLURM_ARRAY_TASK_ID": str(task),
           **(env_extra or {})}
    return subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, **kw)


def sbatch_locally(script: Path, **kw) -> list[subprocess.CompletedProcess]:
    """A stub sbatch: read the script's --array=0-N[%K] and run its tasks here, at most K at once."""
    spec = next(line for line in sbatch_lines(script.read_text()) if line.startswith("--array="))
    first, last, throttle = re.fullmatch(r"--array=(\d+)-(\d+)(?:%(\d+))?", spec).groups()
    tasks = range(int(first), int(last) + 1)
    with ThreadPoolExecutor(max_workers=int(throttle or len(tasks))) as pool:
        return list(pool.map(lambda task: run_task(script, task, **kw), tasks))


def test_one_array_task_per_trial_with_throttle_and_resources(tmp_path):
    text = array_script(tmp_path, max_concurrent=3, gpus_per_task=1, cpus_per_task=4, partition="gpu", time="2:00:00",
                        co_train="off")
    bash_n(text, tmp_path)
    _, specs = plan(SUITE, [])
    assert text.startswith("#!/bin/bash\n") and "12 of 12 trials pending" in text.splitlines()[1]
    lines = sbatch_lines(text)
    for want in ("--array=0-11%3", "--ntasks=1", "--gpus-per-task=1", "--cpus-per-task=4", "--partition=gpu",
                 "--time=2:00:00", "--job-name=peft-bench"):
        assert want in lines
    assert not any(line.startswith(("--nodes", "--exclusive", "--gpus-per-node")) for line in lines)
    assert embedded_ids(text) == [s.trial_id for s in specs]  # task i runs the plan's i-th pending trial
    assert not re.search(r"\bray\b", text)  # no Ray anywhere


def test_defaults_come_from_what_the_trials_ask_for(tmp_path):
    text = array_script(tmp_path)
    lines = sbatch_lines(text)
    # No throttle; smoke trials ask for 1 CPU and no GPU, so `--co-train auto` leaves each alone: 12 tasks.
    assert "--array=0-11" in lines and "--cpus-per-task=1" in lines
    assert not any(line.startswith(("--gpus-per-task", "--mem")) for line in lines)
    _, specs = plan(SUITE, [])
    hungry = [replace(s, resources=Resources(cpus=3, gpus=0.5, memory_gb=7.5)) for s in specs[:2]]
    lines = sbatch_lines(render_array(validated(SlurmOptions(suite=SUITE)), [[s] for s in hungry], total=12))
    assert {"--array=0-1", "--cpus-per-task=3", "--gpus-per-task=1", "--mem=8G"} <= set(lines)  # rounded up
    with pytest.raises(UserError, match=r"^--cpus-per-task 2: trial \w+ asks for 3 cpus"):
        render_array(validated(SlurmOptions(suite=SUITE, cpus_per_task=2)), [[s] for s in hungry], total=12)


@pytest.mark.parametrize("kw, option", [
    ({"nodes": 2}, "--nodes"),
    ({"gpus_per_node": 1}, "--gpus-per-node"),
    ({"gpus_per_task": -1}, "--gpus-per-task"),
    ({"cpus_per_task": 0}, "--cpus-per-task"),
    ({"max_concurrent": "3; reboot"}, "--max-concurrent"),
    ({"max_failures": "many"}, "--max-failures"),
    ({"partition": "gpu\n#SBATCH --array=0-999"}, "--partition"),
    ({"account": "$(whoami)"}, "--account"),
    ({"time": "1:00:00; reboot"}, "--time"),
    ({"job_name": "x\n#SBATCH --array=0-9"}, "--job-name"),
    ({"gpus_per_task": "1 --wrap=x"}, "--gpus-per-task"),
    ({"results": "out\nrm -rf /"}, "--results"),
    ({"data_dir": "data\0"}, "--data-dir"),
    ({"suite": "smoke\nrm -rf /"}, "suite"),
    ({"filters": ["method=lora\ntouch PWNED"]}, "--filter"),
])
def test_bad_values_are_rejected_naming_the_option(tmp_path, kw, option):
    with pytest.raises(UserError) as info:
        array_script(tmp_path, **kw)
    message = str(info.value)
    assert message.startswith(option) and "allowed" in message and "\n" not in message


HOSTILE = "it's a \"dir\"; touch PWNED $(touch PWNED) `touch PWNED` ${HOME}"
HOSTILE_FILTER = "method=lora'; touch PWNED; echo '"
ECHO_ARGS = "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done\n"


def test_hostile_values_reach_run_trial_as_literal_arguments(tmp_path):
    """The whole script run as array task 1, with a stub peft-bench that prints its arguments one per line."""
    suite = tmp_path / f"suite {HOSTILE}.yaml"
    suite.write_text((Path(__file__).parent.parent / "suites" / "smoke.yaml").read_text())
    opts = validated(SlurmOptions(suite=str(suite), results=str(tmp_path / HOSTILE), data_dir=str(tmp_path / HOSTILE),
                                  filters=[HOSTILE_FILTER], embedded=True, job_name="x"))
    _, specs = plan(SUITE, [])
    text = render_array(opts, [[s] for s in specs[:3]], total=12)
    bash_n(text, tmp_path)
    stub = tmp_path / "bin"
    stub.mkdir()
    (stub / "peft-bench").write_text(ECHO_ARGS)
    (stub / "peft-bench").chmod(0o755)
    (tmp_path / "job.sh").write_text(text)
    done = run_task(tmp_path / "job.sh", 1, path=str(stub), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1:] == ["run-trial", str(suite), specs[1].trial_id, "--results", str(tmp_path / HOSTILE),
                                            "--data-dir", str(tmp_path / HOSTILE), "--filter", HOSTILE_FILTER, "--embedded"]
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("task", ["3", "-1", "1+1", "a[$(touch PWNED)]", ""])
def test_a_task_id_outside_the_array_runs_nothing(tmp_path, task):
    _, specs = plan(SUITE, [])
    (tmp_path / "job.sh").write_text(render_array(validated(SlurmOptions(suite=SUITE)), [[s] for s in specs[:3]], total=12))
    stub = tmp_path / "bin"
    stub.mkdir()
    (stub / "peft-bench").write_text("#!/bin/sh\ntouch \"$CALLED\"\n")
    (stub / "peft-bench").chmod(0o755)
    done = run_task(tmp_path / "job.sh", task, {"CALLED": str(tmp_path / "called")}, path=str(stub), cwd=tmp_path)
    assert done.returncode != 0 and not (tmp_path / "called").exists() and not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("exits, max_failures, calls, status", [
    ([137, 137, 0], 2, 3, 0),  # killed twice (out of memory), then ok: retried in place
    ([137, 137, 137], 1, 2, 137),  # retries used up: the task fails, the trial is left for the next submission
    ([1], 2, 1, 1),  # the trial's own failure is stored by run-trial: never retried
])
def test_a_task_killed_by_a_signal_is_retried(tmp_path, exits, max_failures, calls, status):
    _, specs = plan(SUITE, [])
    (tmp_path / "job.sh").write_text(render_array(validated(SlurmOptions(suite=SUITE, max_failures=max_failures)),
                                                  [specs[:1]], total=12))
    stub = tmp_path / "bin"
    stub.mkdir()
    # Exit with the next status of EXITS (one per call, counted in a file).
    (stub / "peft-bench").write_text('#!/bin/bash\nn=$(wc -l < "$COUNT"); echo x >> "$COUNT"\n'
                                     'exits=($EXITS); exit "${exits[n]}"\n')
    (stub / "peft-bench").chmod(0o755)
    (tmp_path / "count").touch()
    done = run_task(tmp_path / "job.sh", 0, {"COUNT": str(tmp_path / "count"), "EXITS": " ".join(map(str, exits))},
                    path=str(stub), cwd=tmp_path)
    assert done.returncode == status
    assert len((tmp_path / "count").read_text().splitlines()) == calls


def test_cli_writes_the_script_or_says_nothing_is_pending(tmp_path, capsys):
    out_file = tmp_path / "job.sbatch"
    assert main(["slurm", SUITE, "--array", "--results", str(tmp_path / "res"), "--max-concurrent", "2",
                 "--co-train", "off", "--out", str(out_file)]) == 0
    _, err = capsys.readouterr()
    assert "12 array tasks" in err and "sbatch" in err and "--array=0-11%2" in out_file.read_text()
    assert main(["slurm", SUITE, "--array", "--results", str(tmp_path / "res"), "--retry-failed"]) == 0
    out, err = capsys.readouterr()
    assert out == "" and "nothing to run" in err and "stored as failed" in err
    assert main(["slurm", SUITE, "--array", "--gpus-per-node", "1"]) == 2
    assert capsys.readouterr().err.startswith("peft-bench: error: --gpus-per-node")


def test_array_runs_a_four_trial_suite_into_one_store_and_a_resubmission_runs_nothing(tmp_path, capsys):
    suite = write_suite(tmp_path, "array-four", ["lora", "series", "parallel", "adapterp"])
    results = tmp_path / "results"
    job = tmp_path / "job.sh"
    args = ["slurm", str(suite), "--array", "--results", str(results), "--max-concurrent", "2"]
    assert main([*args, "--co-train", "2", "--out", str(job)]) == 0
    capsys.readouterr()
    # Four co-trainable trials on one base, at most 2 a group: two array tasks, each co-training two trials.
    assert "--array=0-1%2" in sbatch_lines(job.read_text())

    done = sbatch_locally(job, cwd=tmp_path, timeout=600)
    assert [d.returncode for d in done] == [0, 0], "\n".join(d.stdout[-1500:] + d.stderr[-1500:] for d in done)
    assert all(d.stdout.count(" ok (co-trained in g-") == 2 for d in done)
    counts = ok_sets_per_trial(results, "array-four")
    _, specs = plan(str(suite), [])
    assert set(counts) == {s.trial_id for s in specs} and set(counts.values()) == {1}  # every trial stored once
    groups = Store(results).read(["array-four"]).groupby("co_train_group")["trial_id"].nunique()
    assert sorted(groups.tolist()) == [2, 2]

    # Resubmitting: a fresh render has nothing to run; the old script's tasks find their trials stored.
    again = tmp_path / "again.sh"
    assert main([*args, "--out", str(again)]) == 0
    assert "nothing to run" in capsys.readouterr().err and not again.exists()
    files = {p: p.stat().st_mtime_ns for p in (results / "array-four" / "trials").glob("*.parquet")}
    rerun = run_task(job, 1, cwd=tmp_path, timeout=300)
    assert rerun.returncode == 0 and "already stored as ok" in rerun.stdout, rerun.stderr[-2000:]
    assert {p: p.stat().st_mtime_ns for p in (results / "array-four" / "trials").glob("*.parquet")} == files
