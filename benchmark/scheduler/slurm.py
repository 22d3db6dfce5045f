"""`peft-bench slurm`: an sbatch script that starts a Ray cluster on the allocation and runs a suite on it.

Pure string building (no ray import): validate a SlurmOptions, plan the suite so a bad name or filter
fails at submission time, then render. Every user value that lands in the script is checked here and
shell-quoted; #SBATCH lines (parsed by sbatch, not by the shell) only ever carry validated values.

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
from dataclasses import dataclass, field
from pathlib import Path

from benchmark.errors import UserError

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
    nodes: int
    gpus_per_node: int
    cpus_per_node: int | None = None  # None: all of the node's CPUs ($SLURM_CPUS_ON_NODE)
    partition: str | None = None
    time: str | None = None
    account: str | None = None
    job_name: str = "peft-bench"
    results: str = "results"
    data_dir: str | None = None
    embedded: bool = False
    filters: list[str] = field(default_factory=list)
    venv: str | None = None


def positive_int(option: str, value) -> int:
    """`value` (an int or its text) as an int >= 1, else a UserError naming `option`."""
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or int(text) < 1:
        raise UserError(f"{option} {value!r}: allowed: a positive integer")
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
    nodes = positive_int("--nodes", opts.nodes)
    gpus = positive_int("--gpus-per-node", opts.gpus_per_node)
    cpus = None if opts.cpus_per_node is None else positive_int("--cpus-per-node", opts.cpus_per_node)
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
    venv = None
    if opts.venv is not None:
        venv = str(Path(opts.venv).expanduser().resolve())
        if not (Path(venv) / "bin" / "activate").is_file():
            raise UserError(f"--venv {opts.venv!r}: allowed: a virtual environment folder (no bin/activate in {venv})")
    absolute = {"results": str(Path(opts.results).expanduser().resolve()),
                "data_dir": None if opts.data_dir is None else str(Path(opts.data_dir).expanduser().resolve())}
    return SlurmOptions(**{**opts.__dict__, "nodes": nodes, "gpus_per_node": gpus, "cpus_per_node": cpus,
                           "venv": venv, "filters": list(opts.filters), **absolute})


def port_lines() -> list[str]:
    """Bash that sets base_port and the named ports from SLURM_JOB_ID (see the module docstring)."""
    lines = [f"base_port=$(( {PORT_LOW} + (SLURM_JOB_ID % {PORT_SLOTS}) * {PORT_BLOCK} ))"]
    lines += [f"{name}_port=$(( base_port + {offset} ))" for name, offset in PORT_OFFSETS.items()]
    lines += [f"min_worker_port=$(( base_port + {WORKER_OFFSET} ))", f"max_worker_port=$(( base_port + {PORT_BLOCK - 1} ))"]
    return lines


def ports_for(job_id: int) -> dict[str, int]:
    """What port_lines() computes for `job_id`, in Python (for docs and tests)."""
    base = PORT_LOW + (job_id % PORT_SLOTS) * PORT_BLOCK
    ports = {name: base + offset for name, offset in PORT_OFFSETS.items()}
    return {**ports, "min_worker": base + WORKER_OFFSET, "max_worker": base + PORT_BLOCK - 1}


def run_command(opts: SlurmOptions) -> str:
    words = ["peft-bench", "run", shlex.quote(opts.suite), '--address "$ray_address"', "--results", shlex.quote(opts.results)]
    if opts.data_dir is not None:
        words += ["--data-dir", shlex.quote(opts.data_dir)]
    for text in opts.filters:
        words += ["--filter", shlex.quote(text)]
    if opts.embedded:
        words.append("--embedded")
    return " ".join(words)


def render(opts: SlurmOptions, n_trials: int) -> str:
    """The sbatch script for already validated options (see validated())."""
    sbatch = [f"--job-name={opts.job_name}", f"--nodes={opts.nodes}", "--ntasks-per-node=1", "--exclusive",
              f"--gpus-per-node={opts.gpus_per_node}"]
    if opts.cpus_per_node is not None:
        sbatch.append(f"--cpus-per-task={opts.cpus_per_node}")
    sbatch += [f"--{key}={value}" for key, value in (("partition", opts.partition), ("time", opts.time),
                                                     ("account", opts.account)) if value is not None]
    cpus = str(opts.cpus_per_node) if opts.cpus_per_node is not None else "${SLURM_CPUS_ON_NODE:?}"
    venv = ["", "# The environment every node runs ray and peft-bench from (shared storage).",
            f"source {shlex.quote(opts.venv + '/bin/activate')}"] if opts.venv else []
    return "\n".join([
        "#!/bin/bash",
        f"# peft-bench slurm: {shlex.quote(opts.suite)}, {n_trials} trials on {opts.nodes} node(s) x {opts.gpus_per_node} GPU(s)",
        "# Submit with `sbatch FILE`; resubmit the same file to resume (trials already stored as ok are skipped).",
        *(f"#SBATCH {line}" for line in sbatch),
        "",
        "set -euo pipefail",
        "export PYTHONUNBUFFERED=1  # driver output reaches the job log as it happens (python -u)",
        *venv,
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
        f"{run_command(opts)} || run_status=$?",
        'exit "$run_status"',
        "",
    ])


def build_script(opts: SlurmOptions) -> tuple[str, int]:
    """Validate, plan the suite (a bad suite or filter fails here, not on the cluster), render."""
    from benchmark.registry import plan

    opts = validated(opts)
    _, specs = plan(opts.suite, opts.filters, embedded=opts.embedded)
    if not specs:
        raise UserError(f"--filter {' '.join(opts.filters)}: no trials of {opts.suite} match; see `peft-bench plan`")
    for spec in specs:
        for option, have, want in (("--gpus-per-node", opts.gpus_per_node, spec.resources.gpus),
                                   ("--cpus-per-node", opts.cpus_per_node, spec.resources.cpus)):
            if have is not None and want > have:
                raise UserError(f"{option} {have}: trial {spec.trial_id} asks for {want:g} on one node; allowed: at least {want:g}")
    return render(opts, len(specs)), len(specs)
