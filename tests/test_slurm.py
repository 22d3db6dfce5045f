"""`peft-bench slurm`: the generated sbatch script parses, carries what was asked for, and quotes user input."""

import os
import re
import shlex
import subprocess
import sys

import pytest

from benchmark.cli import build_parser, main
from benchmark.errors import UserError
from benchmark.scheduler.slurm import (
    PORT_BLOCK,
    PORT_LOW,
    PORT_OFFSETS,
    PORT_SLOTS,
    WORKER_OFFSET,
    SlurmOptions,
    build_script,
    port_lines,
    render,
    validated,
)

SUITE = "smoke"  # embedded default suite: 12 trials, planned without any download


def script(**kw) -> str:
    return build_script(SlurmOptions(**{"suite": SUITE, "nodes": 2, "gpus_per_node": 4, **kw}))[0]


def bash_n(text: str, tmp_path) -> None:
    path = tmp_path / "job.sh"
    path.write_text(text)
    done = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def sbatch_lines(text: str) -> list[str]:
    return [line.removeprefix("#SBATCH ") for line in text.splitlines() if line.startswith("#SBATCH ")]


def run_line(text: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith("peft-bench run "))
    return shlex.split(line.removesuffix(" || run_status=$?"))


def test_script_parses_and_requests_exclusive_nodes(tmp_path):
    text = script(nodes=3, gpus_per_node=8, cpus_per_node=64)
    bash_n(text, tmp_path)
    assert text.startswith("#!/bin/bash\n")
    assert "12 trials" in text.splitlines()[1]
    lines = sbatch_lines(text)
    for want in ("--nodes=3", "--exclusive", "--ntasks-per-node=1", "--gpus-per-node=8", "--cpus-per-task=64"):
        assert want in lines
    assert not any(line.startswith(("--partition", "--time", "--account")) for line in lines)
    assert "set -euo pipefail" in text
    assert 'scontrol show hostnames "$SLURM_JOB_NODELIST"' in text
    assert re.search(r'srun --nodes=1 --ntasks=1 -w "\$head" .*\\\n\s+ray start "\$\{head_args\[@\]\}"', text)
    assert 'srun --nodes=$((nodes - 1)) --ntasks=$((nodes - 1))' in text and '--exclude="$head"' in text
    assert "--num-cpus=\"$cpus_per_node\" --num-gpus=\"$gpus_per_node\"" in text and "cpus_per_node=64" in text
    assert "trap cleanup EXIT" in text and "ray stop" in text and 'exit "$run_status"' in text


def test_optional_sbatch_lines_only_when_given(tmp_path):
    text = script(partition="gpu-a100", time="1-12:00:00", account="proj_42", job_name="math")
    bash_n(text, tmp_path)
    lines = sbatch_lines(text)
    for want in ("--partition=gpu-a100", "--time=1-12:00:00", "--account=proj_42", "--job-name=math"):
        assert want in lines
    # No --cpus-per-node: no --cpus-per-task line; Ray gets every CPU Slurm gave the node.
    assert not any(line.startswith("--cpus-per-task") for line in lines)
    assert "cpus_per_node=${SLURM_CPUS_ON_NODE:?}" in text


def derived_ports(job_id: int) -> dict[str, int]:
    code = "\n".join(port_lines()) + "\nset | grep -E '^[a-z_]+_port='"
    done = subprocess.run(["bash", "-c", code], env={**os.environ, "SLURM_JOB_ID": str(job_id)},
                          capture_output=True, text=True, check=True)
    return {name.removesuffix("_port"): int(value) for name, value in
            (line.split("=", 1) for line in done.stdout.split())}


def ports_for(job_id: int) -> dict[str, int]:
    """What the module docstring says a job's ports are (a block of PORT_BLOCK picked by the job id)."""
    base = PORT_LOW + (job_id % PORT_SLOTS) * PORT_BLOCK
    ports = {name: base + offset for name, offset in PORT_OFFSETS.items()}
    return {**ports, "min_worker": base + WORKER_OFFSET, "max_worker": base + PORT_BLOCK - 1}


def test_ports_come_from_the_job_id_and_differ_between_jobs():
    a, b = derived_ports(4711), derived_ports(4712)
    assert a.pop("base") != b.pop("base")
    assert a == ports_for(4711) and b == ports_for(4712)  # the bash snippet does what the docstring says
    assert not set(a.values()) & set(b.values())  # neighbouring jobs share no port
    for ports in (a, b):
        assert all(PORT_LOW <= p < PORT_LOW + PORT_BLOCK * PORT_SLOTS for p in ports.values())
        assert ports["min_worker"] < ports["max_worker"]
    text = script()
    for name in ("gcs", "node_manager", "object_manager", "min_worker", "max_worker"):
        assert f'="${name}_port"' in text
    assert "--include-dashboard=false" in text and "--temp-dir=\"/tmp/ray-$SLURM_JOB_ID\"" in text


def test_run_line_forwards_the_options(tmp_path):
    data = tmp_path / "data"
    text = script(filters=["method=lora", "task=math"], embedded=True, results=str(tmp_path / "res"), data_dir=str(data))
    bash_n(text, tmp_path)
    words = run_line(text)
    assert words[:3] == ["peft-bench", "run", SUITE]
    assert words[words.index("--address") + 1] == "$ray_address"
    assert words[words.index("--results") + 1] == str(tmp_path / "res")
    assert words[words.index("--data-dir") + 1] == str(data)
    assert [words[i + 1] for i, w in enumerate(words) if w == "--filter"] == ["method=lora", "task=math"]
    assert "--embedded" in words
    plain = run_line(script())
    assert "--embedded" not in plain and "--filter" not in plain and "--data-dir" not in plain
    assert "--retry-failed" not in plain and "--max-concurrent" not in plain
    assert plain[plain.index("--results") + 1] == os.path.abspath("results")  # made absolute for the job
    assert plain[plain.index("--max-failures") + 1] == "2"  # `run`'s default, written out
    on_s3 = run_line(script(results="s3://bucket/peft-bench"))
    assert on_s3[on_s3.index("--results") + 1] == "s3://bucket/peft-bench"  # a URI is left as it is


def test_run_line_carries_every_run_option(tmp_path):
    """The line is rendered by the command module `peft-bench run` options come from: none is dropped."""
    words = run_line(script(max_concurrent=3, max_failures=0, retry_failed=True))
    assert words[words.index("--max-concurrent") + 1] == "3" and words[words.index("--max-failures") + 1] == "0"
    assert "--retry-failed" in words
    parsed = build_parser().parse_args(words[1:])  # what `peft-bench run` itself makes of the line
    assert (parsed.command, parsed.max_concurrent, parsed.max_failures, parsed.retry_failed) == ("run", 3, 0, True)
    assert parsed.address == "$ray_address"


def test_array_only_options_are_refused_without_array():
    with pytest.raises(UserError, match="^--gpus-per-task 1: only with --array"):
        script(gpus_per_task=1)
    with pytest.raises(UserError, match="^--nodes: required"):
        script(nodes=None)


def test_venv_is_activated_and_must_exist(tmp_path):
    venv = tmp_path / "my env"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "activate").write_text("")
    text = script(venv=str(venv))
    bash_n(text, tmp_path)
    assert f"source {shlex.quote(str(venv / 'bin' / 'activate'))}" in text
    with pytest.raises(UserError, match="--venv"):
        script(venv=str(tmp_path / "nowhere"))


@pytest.mark.parametrize("field, value, option", [
    ("partition", "gpu; rm -rf /", "--partition"),
    ("partition", "gpu\n#SBATCH --nodes=99", "--partition"),
    ("account", "$(whoami)", "--account"),
    ("time", "24h", "--time"),
    ("time", "1:00:00; reboot", "--time"),
    ("nodes", 0, "--nodes"),
    ("nodes", "two", "--nodes"),
    ("gpus_per_node", -1, "--gpus-per-node"),
    ("cpus_per_node", "8 ", None),  # accepted: whitespace around a number is harmless
    ("results", "out\nrm -rf /", "--results"),
])
def test_bad_values_are_rejected_naming_the_option(field, value, option):
    if option is None:
        assert "--cpus-per-task=8" in script(**{field: value})
        return
    with pytest.raises(UserError) as info:
        script(**{field: value})
    message = str(info.value)
    assert message.startswith(option) and "allowed" in message and "\n" not in message


HOSTILE = "it's a \"results\" dir; touch PWNED $(touch PWNED) `touch PWNED` ${HOME}"
HOSTILE_FILTER = "method=lora'; touch PWNED; echo '"


def hostile_script(tmp_path) -> str:
    # A filter that matches no trial would fail planning, so render the validated options directly.
    opts = validated(SlurmOptions(suite="my suite's", nodes=2, gpus_per_node=1, results=str(tmp_path / HOSTILE),
                                  data_dir=str(tmp_path / HOSTILE), filters=[HOSTILE_FILTER]))
    return render(opts, 1)


def test_hostile_paths_and_filters_are_quoted(tmp_path):
    text = hostile_script(tmp_path)
    bash_n(text, tmp_path)
    words = run_line(text)
    assert words[2] == "my suite's"
    assert words[words.index("--results") + 1] == str(tmp_path / HOSTILE)
    assert words[words.index("--data-dir") + 1] == str(tmp_path / HOSTILE)
    assert words[words.index("--filter") + 1] == HOSTILE_FILTER


def test_quoted_run_line_executes_literally(tmp_path):
    """Run the generated run line with a stub peft-bench: every value arrives as one literal argument."""
    line = next(x for x in hostile_script(tmp_path).splitlines() if x.startswith("peft-bench run "))
    stub = tmp_path / "bin"
    stub.mkdir()
    (stub / "peft-bench").write_text("#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done\n")
    (stub / "peft-bench").chmod(0o755)
    done = subprocess.run(["bash", "-c", f"ray_address=10.0.0.1:20000; {line}"], cwd=tmp_path, capture_output=True,
                          text=True, env={**os.environ, "PATH": f"{stub}:{os.environ['PATH']}"})
    assert done.stdout.splitlines() == ["run", "my suite's", "--address", "10.0.0.1:20000", "--results", str(tmp_path / HOSTILE),
                                        "--data-dir", str(tmp_path / HOSTILE), "--filter", HOSTILE_FILTER, "--max-failures", "2"]
    assert not (tmp_path / "PWNED").exists()


def test_bad_suite_or_filter_fails_before_printing(capsys):
    assert main(["slurm", "no-such-suite", "--nodes", "2", "--gpus-per-node", "8"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "no-such-suite" in err and len(err.strip().splitlines()) == 1
    assert main(["slurm", SUITE, "--nodes", "2", "--gpus-per-node", "8", "--filter", "method=nope"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "no trials" in err
    assert main(["slurm", SUITE, "--nodes", "0", "--gpus-per-node", "8"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("peft-bench: error: --nodes")


def test_cli_prints_or_writes_the_script(capsys, tmp_path):
    assert main(["slurm", SUITE, "--nodes", "2", "--gpus-per-node", "1", "--partition", "gpu", "--time", "30"]) == 0
    out, _ = capsys.readouterr()
    assert "#SBATCH --partition=gpu" in out and "#SBATCH --time=30" in out
    out_file = tmp_path / "job.sbatch"
    assert main(["slurm", SUITE, "--nodes", "1", "--gpus-per-node", "1", "--out", str(out_file)]) == 0
    out, err = capsys.readouterr()
    assert out == "" and "sbatch" in err and out_file.read_text().startswith("#!/bin/bash")


def test_slurm_and_core_modules_do_not_import_ray():
    code = ("import sys, benchmark.scheduler, benchmark.scheduler.slurm, benchmark.scheduler.slurm_array, "
            "benchmark.scheduler.core, benchmark.scheduler.command; assert 'ray' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


STUBS = {
    # srun: drop its options, log what it runs, run it here.
    "srun": 'while [[ $# -gt 0 && $1 == -* ]]; do [[ $1 == -w ]] && shift; shift; done\necho "srun $*" >> "$LOG"\nexec "$@"',
    "scontrol": "echo node1; echo node2",
    "hostname": "echo 127.0.0.1",
    # ray start --head listens on its --port (what the wait loop probes); other nodes just block.
    "ray": ('[[ $1 == stop ]] && exit 0\nfor a; do [[ $a == --port=* ]] && port=${a#--port=}; done\n'
            'if [[ -n ${port:-} ]]; then exec "$REAL_PY" -c "import socket, time; s = socket.socket(); '
            's.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((\'127.0.0.1\', $port)); s.listen(); time.sleep(300)"; fi\n'
            "exec sleep 300"),
    "python": '[[ $1 == -c ]] && exit 1  # no ray[client]\ncat > /dev/null; echo "stub: nodes up: $NODES_UP"; [[ $NODES_UP == yes ]]',
    "peft-bench": 'echo "peft-bench $*" >> "$LOG"\nexit "$RUN_STATUS"',
}


def run_with_stubs(tmp_path, **env_extra) -> tuple[subprocess.CompletedProcess, list[str], int]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in STUBS.items():
        (bin_dir / name).write_text(f"#!/bin/bash\n{body}\n")
        (bin_dir / name).chmod(0o755)
    path = tmp_path / "job.sh"
    path.write_text(script(results=str(tmp_path / "res"), filters=["method=lora"]))
    log = tmp_path / "log"
    log.touch()
    job_id = 1000 + os.getpid() % 1000
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "LOG": str(log), "REAL_PY": sys.executable,
           "SLURM_JOB_ID": str(job_id), "SLURM_JOB_NUM_NODES": "2",
           "SLURM_JOB_NODELIST": "node[1-2]", "SLURM_CPUS_ON_NODE": "16", "RAY_AUTH_MODE": "disabled", **env_extra}
    done = subprocess.run(["bash", str(path)], env=env, capture_output=True, text=True, timeout=120)
    return done, log.read_text().splitlines(), job_id


@pytest.mark.parametrize("run_status", [0, 3])
def test_script_runs_against_stub_slurm_and_ray(tmp_path, run_status):
    """The whole script with stub srun/scontrol/ray/python/peft-bench: Ray up, run, teardown, the run's exit status."""
    done, lines, job_id = run_with_stubs(tmp_path, RUN_STATUS=str(run_status), NODES_UP="yes")
    assert done.returncode == run_status, done.stderr
    gcs = ports_for(job_id)["gcs"]
    assert any(line.startswith("srun ray start --head") and f"--port={gcs}" in line and "--num-cpus=16" in line for line in lines)
    assert any(line.startswith(f"srun ray start --address=127.0.0.1:{gcs}") for line in lines)
    assert f"peft-bench run {SUITE} --address 127.0.0.1:{gcs} --results {tmp_path / 'res'} --filter method=lora --max-failures 2" in lines
    assert lines[-1] == "srun ray stop"  # teardown after the run
    assert "stopping Ray on 2 node(s)" in done.stderr


def test_script_gives_up_when_the_cluster_never_forms(tmp_path):
    done, lines, _ = run_with_stubs(tmp_path, RUN_STATUS="0", NODES_UP="no", PEFT_BENCH_RAY_START_TIMEOUT="3")
    assert done.returncode == 1
    assert "no Ray cluster of 2 node(s) within 3s; giving up" in done.stderr
    assert not any(line.startswith("peft-bench run") for line in lines) and lines[-1] == "srun ray stop"
