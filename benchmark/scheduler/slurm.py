"""`peft-bench slurm`: an sbatch script that starts a Ray cluster on the allocation and runs a suite on it
(the `--array` script, one Slurm array task per trial and no Ray, is slurm_array.py; both share the options
and checks of this module).

Pure string building (no ray import): validate a SlurmOptions, plan the suite so a bad name or filter
fails at submission time, then render. Every user value that lands in the script is checked here and
shell-quoted; #SBATCH lines (parsed by sbatch, not by the shell) only ever carry validated values.
The `peft-bench run` line is rendered by command.py, like every other launcher's.

Layout of the script: exclusive nodes, one task per node; the head node is the first of the job's
node list; `ray start --head --block` runs there and `ray start --address ... --block` on the others,
both as background srun steps with explicit --num-cpus/--num-gpus; a bounded wait until every node
has joined; then `peft-bench run SUITE --address HEAD_IP:GCS_PORT`; an EXIT trap stops Ray on every
node and ends the background steps; the script exits with the run's status.

Ports come from SLURM_JOB_ID (see PORT_LOW, PORT_BLOCK, PORT_SLOTS): each job gets its own block of
PORT_BLOCK ports in [PORT_LOW, PORT_LOW + PORT_BLOCK * PORT_SLOTS), above Ray's default worker ports
(10002-19999) and below Linux's default ephemeral range (32768+). Jobs whose ids differ by less than
PORT_SLOTS never share a block, so several Ray clusters can share nodes should --exclusive be relaxed.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field, replace
from pathlib import Path

from benchmark.errors import UserError
from benchmark.registry import bounds
from benchmark.registry.spec import TrialSpec
from benchmark.scheduler.command import RunOptions, ShellWord, run_argv, shell_line
from benchmark.store.fs import is_uri

PORT_LOW, PORT_BLOCK, PORT_SLOTS = 20000, 300, 40
# Offsets inside a job's block; workers take [WORKER_OFFSET, PORT_BLOCK).
PORT_OFFSETS = {"gcs": 0, "client": 1, "node_manager": 2, "object_manager": 3, "agent_listen": 4,
                "agent_grpc": 5, "metrics": 6, "runtime_env_agent": 7}
WORKER_OFFSET = 20
RAY_START_TIMEOUT_S = 600

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.,-]*")  # partitions (comma lists), accounts, job names
TIME = re.compile(r"(\d+-)?\d+(:\d{1,2}){0,2}|unlimited|infinite", re.IGNORECASE)
TIME_HELP = "minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS or UNLIMITED"


@dataclass
class SlurmOptions:
    suite: str
    # Ray on the allocation (this module): required there, refused with --array.
    nodes: int | None = None
    gpus_per_node: int | None = None
    cpus_per_node: int | None = None  # None: all of the node's CPUs ($SLURM_CPUS_ON_NODE)
    # One array task per trial (slurm_array.py); None: the most any pending trial asks for.
    gpus_per_task: int | None = None
    cpus_per_task: int | None = None
    partition: str | None = None
    time: str | None = None
    account: str | None = None
    job_name: str = "peft-bench"
    results: str = "results"
    data_dir: str | None = None
    embedded: bool = False
    filters: list[str] = field(default_factory=list)
    venv: str | None = None
    max_concurrent: int | None = None  # Ray: trials at once; array: the `%` throttle
    max_failures: int = 2  # Ray: retries of a trial whose worker dies; array: of a task killed by a signal
    retry_failed: bool = False
    catalogues: list[str] = field(default_factory=list)  # the user's catalogue files (absolute), as --catalogue
    co_train: str | None = None  # --co-train: Ray's `run`, and the array's tasks (a group per task); None: auto


def count(option: str, value, least: int = 1, most: int = bounds.CONCURRENT) -> int:
    """`value` (an int or its text) as an int in least..most, else a UserError naming `option`."""
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or not least <= int(text) <= most:
        raise UserError(f"{option} {value!r}: allowed: {bounds.up_to(most, least)}")
    return int(text)


def check_name(option: str, value: str) -> str:
    if not NAME.fullmatch(value):
        raise UserError(f"{option} {value!r}: allowed: letters, digits and _ . , - (no spaces or shell characters)")
    return value


def check_time(value: str) -> str:
    if not TIME.fullmatch(value):
        raise UserError(f"--time {value!r}: allowed: a Slurm time limit: {TIME_HELP}")
    return value


def validated(opts: SlurmOptions) -> SlurmOptions:
    """A copy with numbers checked and paths made absolute (the job may start in another folder)."""
    numbers = {name: None if getattr(opts, name) is None else count(option, getattr(opts, name), least)
               for name, option, least in (("nodes", "--nodes", 1), ("gpus_per_node", "--gpus-per-node", 1),
                                           ("cpus_per_node", "--cpus-per-node", 1), ("gpus_per_task", "--gpus-per-task", 0),
                                           ("cpus_per_task", "--cpus-per-task", 1),
                                           ("max_concurrent", "--max-concurrent", 1))}
    numbers["max_failures"] = count("--max-failures", opts.max_failures, 0, bounds.RETRIES)
    for option, value in (("--partition", opts.partition), ("--account", opts.account), ("--job-name", opts.job_name)):
        if value is not None:
            check_name(option, value)
    if opts.time is not None:
        check_time(opts.time)
    for option, value in (("suite", opts.suite), ("--results", opts.results), ("--data-dir", opts.data_dir),
                          ("--venv", opts.venv)):
        if value is not None and ("\n" in value or "\0" in value or not value.strip()):
            raise UserError(f"{option} {value!r}: allowed: a non-empty path on one line")
    for text in opts.filters:
        if "\n" in text or "\0" in text:
            raise UserError(f"--filter {text!r}: allowed: key=value on one line")
    for file in opts.catalogues:
        if "\n" in file or "\0" in file:
            raise UserError(f"--catalogue {file!r}: allowed: a path on one line")
    venv = None
    if opts.venv is not None:
        venv = str(Path(opts.venv).expanduser().resolve())
        if not (Path(venv) / "bin" / "activate").is_file():
            raise UserError(f"--venv {opts.venv!r}: allowed: a virtual environment folder (no bin/activate in {venv})")
    # A suite file is found from the job's working directory too: absolute, like the other paths.
    suite = str(Path(opts.suite).resolve()) if Path(opts.suite).is_file() else opts.suite
    absolute = {"results": opts.results if is_uri(opts.results) else str(Path(opts.results).expanduser().resolve()),
                "data_dir": None if opts.data_dir is None else str(Path(opts.data_dir).expanduser().resolve())}
    return replace(opts, suite=suite, venv=venv, filters=list(opts.filters), **numbers, **absolute)


def refuse(opts: SlurmOptions, options: dict[str, str], why: str) -> None:
    """A UserError for the first of `options` (field -> option) that is set: it means nothing in this script."""
    for name, option in options.items():
        if getattr(opts, name) is not None:
            raise UserError(f"{option} {getattr(opts, name)}: {why}")


def run_options(opts: SlurmOptions) -> RunOptions:
    """What the script's `peft-bench run` / `run-trial` lines carry over from the options."""
    return RunOptions(suite=opts.suite, results=opts.results, filters=opts.filters, embedded=opts.embedded,
                      data_dir=opts.data_dir, max_concurrent=opts.max_concurrent, max_failures=opts.max_failures,
                      retry_failed=opts.retry_failed, catalogues=list(opts.catalogues), co_train=opts.co_train)


def common_sbatch(opts: SlurmOptions) -> list[str]:
    return [f"--job-name={opts.job_name}"] + [f"--{key}={value}" for key, value in (
        ("partition", opts.partition), ("time", opts.time), ("account", opts.account)) if value is not None]


def venv_lines(opts: SlurmOptions) -> list[str]:
    return ["", "# The environment every node runs peft-bench from (shared storage).",
            f"source {shlex.quote(opts.venv + '/bin/activate')}"] if opts.venv else []


def plan_specs(opts: SlurmOptions) -> list[TrialSpec]:
    """The suite's trials, every plan-time check done (a bad suite, filter or trial fails here, at submission,
    not on the cluster)."""
    from benchmark.planner import plan

    _, trials = plan(opts.suite, opts.filters, embedded=opts.embedded)
    specs = [trial.spec for trial in trials]
    if not specs:
        raise UserError(f"--filter {' '.join(opts.filters)}: no trials of {opts.suite} match; see `peft-bench plan`")
    return specs


def check_room(specs: list[TrialSpec], asks: dict[str, tuple[int | None, str]]) -> None:
    """Each trial must fit what one node (Ray) or one task (array) gets: option -> (have, resources field)."""
    for spec in specs:
        for option, (have, key) in asks.items():
            want = getattr(spec.resources, key)
            if have is not None and want > have:
                raise UserError(f"{option} {have}: trial {spec.trial_id} asks for {want:g} {key}; allowed: at least {want:g}")


def port_lines() -> list[str]:
    """Bash that sets base_port and the named ports from SLURM_JOB_ID (see the module docstring)."""
    lines = [f"base_port=$(( {PORT_LOW} + (SLURM_JOB_ID % {PORT_SLOTS}) * {PORT_BLOCK} ))"]
    lines += [f"{name}_port=$(( base_port + {offset} ))" for name, offset in PORT_OFFSETS.items()]
    lines += [f"min_worker_port=$(( base_port + {WORKER_OFFSET} ))", f"max_worker_port=$(( base_port + {PORT_BLOCK - 1} ))"]
    return lines


def render(opts: SlurmOptions, n_trials: int) -> str:
    """The sbatch script for already validated options (see validated())."""
    sbatch = [*common_sbatch(opts), f"--nodes={opts.nodes}", "--ntasks-per-node=1", "--exclusive",
              f"--gpus-per-node={opts.gpus_per_node}"]
    if opts.cpus_per_node is not None:
        sbatch.append(f"--cpus-per-task={opts.cpus_per_node}")
    cpus = str(opts.cpus_per_node) if opts.cpus_per_node is not None else "${SLURM_CPUS_ON_NODE:?}"
    run_line = shell_line(run_argv(replace(run_options(opts), address=ShellWord('"$ray_address"')), ["peft-bench"]))
    return "\n".join([
        "#!/bin/bash",
        f"# peft-bench slurm: {shlex.quote(opts.suite)}, {n_trials} trials on {opts.nodes} node(s) x {opts.gpus_per_node} GPU(s)",
        "# Submit with `sbatch FILE`; resubmit the same file to resume (trials already stored as ok are skipped).",
        *(f"#SBATCH {line}" for line in sbatch),
        "",
        "set -euo pipefail",
        "export PYTHONUNBUFFERED=1  # driver output reaches the job log as it happens (python -u)",
        *venv_lines(opts),
        "",
        "nodes=${SLURM_JOB_NUM_NODES:?run this script with sbatch}",
        f"gpus_per_node={opts.gpus_per_node}",
        f"cpus_per_node={cpus}",
        f"ray_start_timeout=${{PEFT_BENCH_RAY_START_TIMEOUT:-{RAY_START_TIMEOUT_S}}}  # seconds for every node to join Ray",
        "# Ray 2.60 turns token auth on in `ray start` when a token exists, but not in a driver given an explicit",
        "# address: decide once, for every process of the job (the token must be readable on every node).",
        "if [[ -z ${RAY_AUTH_MODE:-} ]]; then",
        '  if [[ -n ${RAY_AUTH_TOKEN:-}${RAY_AUTH_TOKEN_PATH:-} || -f "$HOME/.ray/auth_token" ]]; then',
        "    export RAY_AUTH_MODE=token",
        "  else",
        "    export RAY_AUTH_MODE=disabled",
        "  fi",
        "fi",
        "for tool in ray peft-bench python; do",
        '  command -v "$tool" >/dev/null || { echo "peft-bench: $tool not found on PATH (use --venv)" >&2; exit 1; }',
        "done",
        "",
        f"# Ports: a block of {PORT_BLOCK} from SLURM_JOB_ID in [{PORT_LOW}, {PORT_LOW + PORT_BLOCK * PORT_SLOTS}), so jobs sharing nodes do not collide.",
        *port_lines(),
        "",
        'mapfile -t hosts < <(scontrol show hostnames "$SLURM_JOB_NODELIST")',
        'head=${hosts[0]}',
        'head_ip=$(srun --nodes=1 --ntasks=1 -w "$head" hostname --ip-address)',
        'head_ip=${head_ip%% *}',
        'ray_address="$head_ip:$gcs_port"',
        'echo "peft-bench: Ray head $head ($ray_address), $nodes node(s), $cpus_per_node CPUs and $gpus_per_node GPUs each"',
        "",
        "# Both the head and the workers: explicit resources, the job's ports, a per-job temp folder.",
        "ray_node_args=(",
        '  --num-cpus="$cpus_per_node" --num-gpus="$gpus_per_node"',
        '  --node-manager-port="$node_manager_port" --object-manager-port="$object_manager_port"',
        '  --dashboard-agent-listen-port="$agent_listen_port" --dashboard-agent-grpc-port="$agent_grpc_port"',
        '  --metrics-export-port="$metrics_port" --runtime-env-agent-port="$runtime_env_agent_port"',
        '  --min-worker-port="$min_worker_port" --max-worker-port="$max_worker_port"',
        '  --temp-dir="/tmp/ray-$SLURM_JOB_ID" --disable-usage-stats --block',
        ")",
        "",
        "head_pid=''",
        "workers_pid=''",
        "cleanup() {",
        "  local status=$?",
        "  trap - EXIT INT TERM",
        "  set +e",
        '  echo "peft-bench: stopping Ray on $nodes node(s)" >&2',
        '  for pid in $workers_pid $head_pid; do kill "$pid" 2>/dev/null; done  # `ray start --block` then stops its node',
        "  for _ in $(seq 60); do [[ -z $(jobs -pr) ]] && break; sleep 1; done",
        '  timeout 120 srun --overlap --nodes="$nodes" --ntasks="$nodes" --ntasks-per-node=1 ray stop >/dev/null 2>&1',
        '  exit "$status"',
        "}",
        "trap cleanup EXIT",
        "trap 'exit 143' TERM",
        "trap 'exit 130' INT",
        "",
        "# Bounded waits: fail clearly if the head step dies or the deadline passes.",
        "deadline=$(( SECONDS + ray_start_timeout ))",
        'head_listening() { (exec 3<>"/dev/tcp/$head_ip/$gcs_port") 2>/dev/null; }',
        "nodes_up() {",
        "  timeout 60 python - \"$ray_address\" \"$nodes\" <<'PY'",
        "import sys",
        "import ray",
        'ray.init(address=sys.argv[1], include_dashboard=False, log_to_driver=False, logging_level="ERROR")',
        'alive = sum(1 for node in ray.nodes() if node["Alive"])',
        'print(f"peft-bench: {alive}/{sys.argv[2]} Ray nodes up", flush=True)',
        "sys.exit(0 if alive >= int(sys.argv[2]) else 1)",
        "PY",
        "}",
        "wait_for() {  # CHECK DESCRIPTION",
        '  until "$1"; do',
        '    kill -0 "$head_pid" 2>/dev/null || { echo "peft-bench: the Ray head step exited before $2; see the log above" >&2; exit 1; }',
        '    (( SECONDS < deadline )) || { echo "peft-bench: no $2 within ${ray_start_timeout}s; giving up" >&2; exit 1; }',
        "    sleep 2",
        "  done",
        "}",
        "",
        'head_args=(--head --node-ip-address="$head_ip" --port="$gcs_port" --include-dashboard=false)',
        "# Ray starts its client server (default port 10001) only with ray[client] installed: then on this job's port.",
        "if python -c 'import grpc' 2>/dev/null; then head_args+=(--ray-client-server-port=\"$client_port\"); fi",
        'srun --nodes=1 --ntasks=1 -w "$head" --cpus-per-task="$cpus_per_node" \\',
        '  ray start "${head_args[@]}" "${ray_node_args[@]}" &',
        "head_pid=$!",
        'wait_for head_listening "Ray head listening on $ray_address"',
        "if (( nodes > 1 )); then",
        '  srun --nodes=$((nodes - 1)) --ntasks=$((nodes - 1)) --ntasks-per-node=1 --exclude="$head" \\',
        '    --cpus-per-task="$cpus_per_node" ray start --address="$ray_address" "${ray_node_args[@]}" &',
        "  workers_pid=$!",
        "fi",
        'wait_for nodes_up "Ray cluster of $nodes node(s)"',
        "",
        "run_status=0",
        f"{run_line} || run_status=$?",
        'exit "$run_status"',
        "",
    ])


def build_script(opts: SlurmOptions) -> tuple[str, int]:
    """Validate, plan the suite, check every trial fits one node, render."""
    opts = validated(opts)
    for name, option in (("nodes", "--nodes"), ("gpus_per_node", "--gpus-per-node")):
        if getattr(opts, name) is None:
            raise UserError(f"{option}: required to start Ray on the allocation; allowed: a positive integer (or use --array)")
    refuse(opts, {"gpus_per_task": "--gpus-per-task", "cpus_per_task": "--cpus-per-task"},
           "only with --array (one Slurm task per trial); allowed here: --gpus-per-node, --cpus-per-node")
    specs = plan_specs(opts)
    check_room(specs, {"--gpus-per-node": (opts.gpus_per_node, "gpus"), "--cpus-per-node": (opts.cpus_per_node, "cpus")})
    return render(opts, len(specs)), len(specs)
