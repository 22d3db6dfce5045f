"""The `peft-bench` command. No work at import time: each command imports what it needs.

User errors (benchmark.errors.UserError) print as one line and exit 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmark.errors import UserError, first_line


def _print_table(rows: list[dict], columns: list[str]) -> None:
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) if rows else len(c) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(str(row.get(c, "")).ljust(widths[c]) for c in columns))


def cmd_list(args) -> int:
    from benchmark.paths import SUITES_DIR
    from benchmark.registry import expand, parse_suite, suite_files

    rows = []
    for file in suite_files():
        suite = parse_suite(file)
        rows.append({"suite": str(file.relative_to(SUITES_DIR).with_suffix("")), "name": suite.name,
                     "version": suite.version, "trials": len(expand(suite)), "description": suite.description})
    _print_table(rows, ["suite", "name", "version", "trials", "description"])
    return 0


def cmd_validate(args) -> int:
    from benchmark.planner import plan
    from benchmark.registry import find_suite, suite_files
    from benchmark.registry.catalogue import datasets, models

    models()
    datasets()
    files = [find_suite(s) for s in args.suites] if args.suites else suite_files()
    for file in files:
        suite, trials = plan(str(file))  # every trial resolved and checked, nothing loaded
        print(f"ok  {file}  ({suite.name} v{suite.version}, {len(trials)} trials)")
    return 0


def cmd_plan(args) -> int:
    from benchmark.planner import plan

    suite, trials = plan(args.suite, args.filter, embedded=args.embedded)
    specs = [trial.spec for trial in trials]
    if args.json:
        print(json.dumps([s.to_dict() for s in specs], indent=1, default=str))
        return 0
    # cell: the grid coordinates (axis values or their labels), the names --filter AXIS=VALUE takes.
    rows = [{"trial_id": s.trial_id, "cell": "/".join(map(str, s.cell.values())) or "-", "model": s.model, "method": s.method,
             "args": ",".join(f"{k}={v}" for k, v in sorted(s.method_args.items())) or "-",
             "train": s.train_data, "eval": ",".join(s.eval_data), "lr": f"{s.train.learning_rate:g}",
             "epochs": f"{s.train.epochs:g}", "batch": f"{s.train.batch_size}/{s.train.micro_batch_size}",
             "cpus": f"{s.resources.cpus:g}", "gpus": f"{s.resources.gpus:g}"} for s in specs]
    _print_table(rows, ["trial_id", "cell", "model", "method", "args", "train", "eval", "lr", "epochs", "batch", "cpus", "gpus"])
    print(f"{len(specs)} trials in {specs[0].suite if specs else suite.name} v{suite.version}")
    return 0


def cmd_run(args) -> int:
    from benchmark.registry import load_suite
    from benchmark.scheduler.run_command import run

    code = run(args)
    if load_suite(args.suite).ledger:  # a quirk ledger: its extraction quirks from the stored outputs, no training
        from benchmark.rescore import rescore_suite

        ledger = rescore_suite(args.suite, args.filter, args.embedded, args.results, None, say=lambda _: None,
                               ledger=True)
        print(f"quirk ledger, extraction quirks: {ledger.line()}")
    return code


def cmd_submit(args) -> int:
    from benchmark.scheduler.jobs import submit_command

    return submit_command(args)


def cmd_jobs(args) -> int:
    from benchmark.scheduler import jobs

    if args.jobs_command == "status":
        state, message = jobs.status(args.address, args.job_id)
        print(f"{args.job_id}: {state}" + (f" ({message})" if message else ""))
        return 0
    if args.jobs_command == "logs":
        sys.stdout.write(jobs.logs(args.address, args.job_id))
        return 0
    stopped = jobs.stop(args.address, args.job_id)
    print(f"{args.job_id}: {'stop requested' if stopped else 'already finished'}")
    return 0


def cmd_run_trial(args) -> int:
    from benchmark.scheduler.run_trial_command import run_trial

    return run_trial(args)


def cmd_eval(args) -> int:
    from benchmark.paths import data_dir
    from benchmark.rescore import parse_quirk_args
    from benchmark.scheduler.evaluate import evaluate_suite

    summary = evaluate_suite(args.suite, args.filter, args.embedded, args.results,
                             str(Path(data_dir(args.data_dir)).resolve()), args.protocol, args.eval_data,
                             switches=parse_quirk_args(args.quirk))
    print(f"{summary.line()}; rows in {args.results} (evals/)")
    return 0


def cmd_rescore(args) -> int:
    from benchmark.rescore import parse_quirk_args, rescore_suite

    summary = rescore_suite(args.suite, args.filter, args.embedded, args.results, args.protocol,
                            switches=parse_quirk_args(args.quirk), ledger=args.ledger)
    print(f"{summary.line()}; rows in {args.results} (evals/)")
    return 0


def cmd_slurm(args) -> int:
    from benchmark.scheduler.slurm_command import slurm_command

    return slurm_command(args)


def cmd_report(args) -> int:
    from benchmark.registry import load_suite
    from benchmark.report import build

    names = []
    for suite in args.suites:
        name = load_suite(suite).name
        names.append(f"{name}-embedded" if args.embedded else name)
    out = Path(args.out) / (args.name or names[0].replace("/", "__"))
    index = build(names, args.results, out)
    print(f"report: {index}")
    return 0


def cmd_status(args) -> int:
    from benchmark.registry import plan
    from benchmark.store import Store

    suite, specs = plan(args.suite, args.filter, embedded=args.embedded)
    store = Store(args.results)
    name = specs[0].suite if specs else suite.name
    statuses = store.statuses(name)
    ids = {s.trial_id for s in specs}
    done = sum(statuses.get(t) == "ok" for t in ids)
    bad = sum(statuses.get(t) == "failed" for t in ids)
    print(f"{name}: {done} done, {bad} failed, {len(ids) - done - bad} remaining, {len(ids)} total")
    if bad:  # which ones, and why (the first line of the stored error)
        frame = store.read([name])
        errors = dict(zip(frame["trial_id"], frame["error"]))
        for spec in specs:
            if statuses.get(spec.trial_id) == "failed":
                cell = "/".join(map(str, spec.cell.values())) or f"{spec.model}/{spec.method}"
                why = first_line(errors.get(spec.trial_id))[:160]
                print(f"FAILED {spec.trial_id} {cell}: {why}")
        print(f"rerun only these with: peft-bench run {args.suite} --retry-failed --results {args.results}")
    return 0


def cmd_data(args) -> int:
    if args.data_command == "embedded":
        from benchmark.data.embedded import counts, ensure, write_all
        from benchmark.paths import embedded_data_dir

        if args.out is None:  # the folder `embedded:` datasets are read from; written once per generator version
            out = ensure(embedded_data_dir())
            written = counts()
        else:
            out = Path(args.out)
            written = write_all(out)
        for file, n in sorted(written.items()):
            print(f"{n:6d}  {out / file}")
        print(f"{len(written)} files in {out}")
        return 0
    from benchmark.data.check import check
    from benchmark.paths import data_dir
    from benchmark.planner import datasets_needed, plan

    _, trials = plan(args.suite, embedded=args.embedded)
    rows = check(datasets_needed(trials), data_dir(args.data_dir))
    _print_table([{k: r.get(k, "") for k in ("name", "path", "n_examples", "error")} for r in rows],
                 ["name", "n_examples", "path", "error"])
    return 1 if any(r.get("error") for r in rows) else 0


def cmd_params(args) -> int:
    from benchmark.params import count_for

    sets = {}
    for text in args.set or []:
        key, sep, value = text.partition("=")
        if not sep:
            raise UserError(f"--set {text!r}: allowed: key=value")
        sets[key] = _parse_value(value)
    info = count_for(args.model, args.method, sets, with_head=args.with_head)
    if args.json:
        print(json.dumps(info))
    else:
        head = f"; {info['head']['kind']} head {info['head']['parameters']:,}" if info["head"] else ""
        print(f"{info['model']} / {info['method']}: trainable {info['trainable']:,} of {info['total']:,} "
              f"({info['trainable_pct']:.3f}%; {info['trainable_pct_of_base']:.3f}% of the base model's "
              f"{info['base_total']:,}{head})")
    return 0


def cmd_doctor(args) -> int:
    from benchmark.store.doctor import report

    return report(args.results)  # read-only: lists damaged / foreign / temporary / old-schema files


def catalogue_arg(p) -> None:
    """--catalogue FILE (repeatable), on every command that plans or reads catalogue entries; main() makes the
    catalogue current for the command (benchmark/registry/catalogues.py)."""
    p.add_argument("--catalogue", action="append", default=[], metavar="FILE",
                   help="a catalogue file of your own (models:, datasets:, tables:), after $PEFT_BENCH_CATALOGUE's; "
                   "repeatable")


def _parse_value(text: str):
    import yaml

    return yaml.safe_load(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="peft-bench", description="PEFT ablation benchmark suite")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("list", help="suites, their versions and trial counts").set_defaults(fn=cmd_list)
    p = sub.add_parser("validate", help="parse every suite (or the given ones)")
    p.add_argument("suites", nargs="*")
    catalogue_arg(p)
    p.set_defaults(fn=cmd_validate)

    def co_train_arg(p):
        p.add_argument("--co-train", default=None, metavar="auto|off|K",
                       help="train trials that share a frozen base together, one forward and backward for all "
                            "(default auto: trials on GPUs in groups of up to 8, CPU-only trials alone; off: every "
                            "trial alone; K: groups of at most K, CPU trials included)")

    def suite_args(p, filters=True):
        p.add_argument("suite", help="a YAML path or a name such as smoke or llm_adapters/math")
        if filters:
            p.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE")
        p.add_argument("--embedded", action="store_true", help="rehearse on the embedded twins (tiny models, embedded tasks)")
        catalogue_arg(p)

    p = sub.add_parser("plan", help="the expanded trials")
    suite_args(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_plan)

    p = sub.add_parser("run", help="run a suite through Ray (local by default)")
    suite_args(p)
    p.add_argument("--address", default=None, help="an existing Ray cluster: auto or ray://HOST:10001")
    p.add_argument("--results", default="results")
    p.add_argument("--data-dir", default=None, help="root of the LLM-Adapters layout (else $PEFT_BENCH_DATA, ./data)")
    p.add_argument("--max-concurrent", type=int, default=None, help="at most this many trials at once, cluster-wide")
    p.add_argument("--max-failures", type=int, default=2,
                   help="retries per trial when its worker dies (a trial's own error, NaN loss or OOM is stored, not retried)")
    p.add_argument("--retry-failed", action="store_true", help="run only the trials stored as failed")
    p.add_argument("--no-save-adapters", action="store_true", help="do not keep what each trial trained (results/"
                   "<suite>/adapters/<trial_id>/); the trial ids do not change")
    p.add_argument("--log", default=None, metavar="FILE", help="where Ray's own output goes (default: RESULTS/.logs/"
                   "run-SUITE-TIME.log, or $PEFT_BENCH_CACHE/logs/ for results on an object store)")
    p.add_argument("--verbose", action="store_true", help="Ray's own output on the terminal, not in the log file")
    co_train_arg(p)
    p.set_defaults(fn=cmd_run)

    p = sub.add_parser("submit", help="send the run to an existing Ray cluster as a Ray Job; prints the job id")
    suite_args(p)
    p.add_argument("--address", required=True, help="the Ray dashboard: http://HEAD:8265")
    p.add_argument("--results", default="results", help="absolute path on shared storage or a URI (s3://...)")
    p.add_argument("--data-dir", default=None, help="absolute path on the cluster (else $PEFT_BENCH_DATA there)")
    p.add_argument("--max-concurrent", type=int, default=None, help="at most this many trials at once, cluster-wide")
    p.add_argument("--max-failures", type=int, default=2, help="retries per trial when its worker dies")
    p.add_argument("--retry-failed", action="store_true", help="run only the trials stored as failed")
    p.add_argument("--working-dir", default=".", help="folder shipped to the cluster (default: the current one)")
    p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="environment variable for the job")
    p.add_argument("--driver-cpus", type=float, default=1, help="CPUs reserved for the job's driver")
    p.add_argument("--driver-gpus", type=float, default=0, help="GPUs reserved for the job's driver")
    p.add_argument("--wait", action="store_true", help="wait for the job, print its logs, exit with its status")
    co_train_arg(p)
    p.set_defaults(fn=cmd_submit)

    p = sub.add_parser("jobs", help="follow a submitted Ray Job: status, logs, stop")
    p.add_argument("jobs_command", choices=["status", "logs", "stop"])
    p.add_argument("job_id")
    p.add_argument("--address", required=True, help="the Ray dashboard: http://HEAD:8265")
    p.set_defaults(fn=cmd_jobs)

    p = sub.add_parser("run-trial", help="run one trial of a suite in this process and store it (what every backend's "
                       "worker runs); exit 0 ok or already stored, 1 failed",
                       description="Plan SUITE (every plan-time check, as `run` does), run the trial TRIAL_ID in this "
                       "process and store it exactly as `run` would (same row, same trial id). A trial already stored "
                       "as ok is skipped. Exit status: 0 ok or already stored, 1 failed (stored with its error), "
                       "2 a user error (one line).")
    suite_args(p)
    p.add_argument("trial_ids", nargs="+", metavar="TRIAL_ID", help="a trial id, as `peft-bench plan SUITE` lists them; "
                   "several: co-train them as one group (they must share a base; else each runs alone)")
    p.add_argument("--results", default="results")
    p.add_argument("--data-dir", default=None, help="root of the LLM-Adapters layout (else $PEFT_BENCH_DATA, ./data)")
    p.add_argument("--no-save-adapters", action="store_true", help="do not keep what the trial trained")
    p.set_defaults(fn=cmd_run_trial)

    p = sub.add_parser("eval", help="evaluate the adapters a suite's trials kept again, without training; rows "
                       "stored beside the trials' (source eval)")
    suite_args(p)
    p.add_argument("--protocol", default=None, help="protocol: llm-adapters, pt-unipelt or strict (default: each trial's)")
    p.add_argument("--quirk", action="append", default=None, metavar="NAME=on|off",
                   help="switch an extraction or generation quirk on top of each trial's (repeatable)")
    p.add_argument("--eval-data", nargs="+", default=None, metavar="NAME",
                   help="evaluation datasets (default: each trial's own)")
    p.add_argument("--results", default="results")
    p.add_argument("--data-dir", default=None, help="root of the LLM-Adapters layout (else $PEFT_BENCH_DATA, ./data)")
    p.set_defaults(fn=cmd_eval)

    p = sub.add_parser("rescore", help="extract and score a suite's stored outputs again under another protocol "
                       "(no model loaded); rows stored beside the trials' (source rescore)")
    suite_args(p)
    p.add_argument("--protocol", default=None, help="protocol: llm-adapters, pt-unipelt or strict (default: each "
                   "trial's)")
    p.add_argument("--quirk", action="append", default=None, metavar="NAME=on|off",
                   help="switch an extraction quirk on top of each trial's (repeatable; docs/protocols/quirks.md)")
    p.add_argument("--ledger", action="store_true", help="the quirk ledger: each trial run under its protocol's "
                   "defaults, once per extraction quirk flipped")
    p.add_argument("--results", default="results")
    p.set_defaults(fn=cmd_rescore)

    p = sub.add_parser("slurm", help="print an sbatch script: Ray started on the allocation runs the suite, or with "
                       "--array one Slurm array task per pending trial (no Ray)")
    suite_args(p)
    p.add_argument("--array", action="store_true", help="one array task per trial not yet stored as ok, each running "
                   "`peft-bench run-trial`; render again to resume (prints nothing when no trial is pending)")
    p.add_argument("--nodes", default=None, help="Ray: nodes to allocate (exclusive, one Ray node each); required without --array")
    p.add_argument("--gpus-per-node", default=None, help="Ray: required without --array")
    p.add_argument("--cpus-per-node", default=None, help="Ray: default: every CPU of the node")
    p.add_argument("--gpus-per-task", default=None, help="--array: GPUs per trial (default: the most a pending trial asks for)")
    p.add_argument("--cpus-per-task", default=None, help="--array: CPUs per trial (default: the most a pending trial asks for)")
    p.add_argument("--partition", default=None)
    p.add_argument("--time", default=None, help="Slurm time limit (per array task with --array), e.g. 24:00:00 or 2-00:00:00")
    p.add_argument("--account", default=None)
    p.add_argument("--job-name", default="peft-bench")
    p.add_argument("--results", default="results", help="shared storage; made absolute in the script")
    p.add_argument("--data-dir", default=None, help="root of the LLM-Adapters layout (else $PEFT_BENCH_DATA on the cluster)")
    p.add_argument("--venv", default=None, help="virtual environment (on shared storage) to activate on every node")
    p.add_argument("--max-concurrent", default=None, help="at most this many trials at once (--array: the %% throttle)")
    p.add_argument("--max-failures", default=2, help="Ray: retries per trial when its worker dies; --array: retries of "
                   "a task killed by a signal")
    p.add_argument("--retry-failed", action="store_true", help="run only the trials stored as failed")
    co_train_arg(p)
    p.add_argument("--out", default=None, help="write the script to this file instead of stdout")
    p.set_defaults(fn=cmd_slurm)

    p = sub.add_parser("report", help="write the HTML report")
    p.add_argument("suites", nargs="+")
    p.add_argument("--results", default="results")
    p.add_argument("--out", default="reports")
    p.add_argument("--name", default=None, help="report folder name (default: the first suite's)")
    p.add_argument("--embedded", action="store_true", help="report the suites' embedded rehearsal results")
    catalogue_arg(p)
    p.set_defaults(fn=cmd_report)

    p = sub.add_parser("status", help="done / failed / remaining, from the store")
    suite_args(p)
    p.add_argument("--results", default="results")
    p.set_defaults(fn=cmd_status)

    p = sub.add_parser("data", help="embedded data, dataset checks")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    q = data_sub.add_parser("embedded", help="write the embedded tasks in the real formats")
    q.add_argument("--out", default=None, help="default: the cache folder embedded datasets are read from "
                   "($PEFT_BENCH_CACHE/embedded-data)")
    q = data_sub.add_parser("check", help="load every dataset a suite needs and count its examples")
    suite_args(q, filters=False)
    q.add_argument("--data-dir", default=None)
    p.set_defaults(fn=cmd_data)

    p = sub.add_parser("params", help="trainable / total parameters on the meta device (no weights)")
    p.add_argument("--model", required=True)
    p.add_argument("--method", required=True)
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="a method argument")
    p.add_argument("--with-head", action="store_true")
    catalogue_arg(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_params)

    p = sub.add_parser("doctor", help="list damaged, foreign, temporary and old-schema files in the results (read-only)")
    p.add_argument("--results", default="results")
    p.set_defaults(fn=cmd_doctor)

    from benchmark.perf.cli import add_parser as add_perf_parser  # light: imports nothing heavy

    add_perf_parser(sub)
    return parser


# Nothing leaves the machine unless the user named it (a model or dataset id): no usage statistics from Ray,
# no telemetry from the Hugging Face hub client. Set before any command imports either; a user may override.
NO_PHONE_HOME = {"RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_DISABLE_TELEMETRY": "1"}


def main(argv: list[str] | None = None) -> int:
    import os

    for key, value in NO_PHONE_HOME.items():
        os.environ.setdefault(key, value)
    args = build_parser().parse_args(argv)
    try:
        if not hasattr(args, "catalogue"):
            return args.fn(args)
        from benchmark.registry import catalogues

        with catalogues.using(catalogues.load(args.catalogue)):  # a bad catalogue file fails here, in one line
            return args.fn(args)
    except UserError as exc:
        print(f"peft-bench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("peft-bench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
