"""The `peft-bench` command. No work at import time: each command imports what it needs.

User errors (benchmark.errors.UserError) print as one line and exit 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmark.errors import UserError


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
    from benchmark.registry import expand, find_suite, parse_suite, suite_files
    from benchmark.registry.catalogue import datasets, models

    models()
    datasets()
    files = [find_suite(s) for s in args.suites] if args.suites else suite_files()
    for file in files:
        suite = parse_suite(file)
        n = len(expand(suite))
        print(f"ok  {file}  ({suite.name} v{suite.version}, {n} trials)")
    return 0


def cmd_plan(args) -> int:
    from benchmark.registry import plan

    suite, specs = plan(args.suite, args.filter, embedded=args.embedded)
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
    from benchmark.paths import data_dir
    from benchmark.registry import plan
    from benchmark.scheduler import run_specs

    suite, specs = plan(args.suite, args.filter, embedded=args.embedded)
    summary = run_specs(specs, data_root=str(data_dir(args.data_dir)), results_root=args.results,
                        address=args.address, max_concurrent=args.max_concurrent, max_failures=args.max_failures)
    print(f"{summary.ok} ok, {len(summary.failed)} failed, {summary.skipped} already stored "
          f"({summary.seconds:.0f} s); results in {args.results}")
    for trial_id, error in summary.failed:
        print(f"FAILED {trial_id}: {error}")
    return 1 if summary.failed else 0


def cmd_slurm(args) -> int:
    from benchmark.scheduler.slurm import SlurmOptions, build_script, positive_int

    opts = SlurmOptions(
        suite=args.suite, nodes=positive_int("--nodes", args.nodes), gpus_per_node=positive_int("--gpus-per-node", args.gpus_per_node),
        cpus_per_node=None if args.cpus_per_node is None else positive_int("--cpus-per-node", args.cpus_per_node),
        partition=args.partition, time=args.time, account=args.account, job_name=args.job_name, results=args.results,
        data_dir=args.data_dir, embedded=args.embedded, filters=args.filter, venv=args.venv)
    script, n_trials = build_script(opts)
    if args.out is None:
        sys.stdout.write(script)
    else:
        Path(args.out).write_text(script)
        print(f"wrote {args.out} ({n_trials} trials); submit with: sbatch {args.out}", file=sys.stderr)
    return 0


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
    ok, failed = store.ok_trial_ids(name), store.failed_trial_ids(name)
    ids = {s.trial_id for s in specs}
    done, bad = len(ids & ok), len((ids & failed) - ok)
    print(f"{name}: {done} done, {bad} failed, {len(ids) - done - bad} remaining, {len(ids)} total")
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
    from benchmark.registry import catalogue, plan

    suite, specs = plan(args.suite, embedded=args.embedded)
    names = sorted({s.train_data for s in specs} | {d for s in specs for d in s.eval_data})
    rows = check([catalogue.dataset(n) for n in names], data_dir(args.data_dir))
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


def _parse_value(text: str):
    import yaml

    return yaml.safe_load(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="peft-bench", description="PEFT ablation benchmark suite")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("list", help="suites, their versions and trial counts").set_defaults(fn=cmd_list)
    p = sub.add_parser("validate", help="parse every suite (or the given ones)")
    p.add_argument("suites", nargs="*")
    p.set_defaults(fn=cmd_validate)

    def suite_args(p, filters=True):
        p.add_argument("suite", help="a YAML path or a name such as smoke or llm_adapters/math")
        if filters:
            p.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE")
        p.add_argument("--embedded", action="store_true", help="rehearse on the embedded twins (tiny models, embedded tasks)")

    p = sub.add_parser("plan", help="the expanded trials")
    suite_args(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_plan)

    p = sub.add_parser("run", help="run a suite through Ray (local by default)")
    suite_args(p)
    p.add_argument("--address", default=None, help="an existing Ray cluster: auto or ray://HOST:10001")
    p.add_argument("--results", default="results")
    p.add_argument("--data-dir", default=None, help="root of the LLM-Adapters layout (else $PEFT_BENCH_DATA, ./data)")
    p.add_argument("--max-concurrent", type=int, default=None)
    p.add_argument("--max-failures", type=int, default=0, help="retries per trial for transient failures")
    p.set_defaults(fn=cmd_run)

    p = sub.add_parser("slurm", help="print an sbatch script that starts Ray on the allocation and runs the suite")
    suite_args(p)
    p.add_argument("--nodes", required=True, help="nodes to allocate (exclusive, one Ray node each)")
    p.add_argument("--gpus-per-node", required=True)
    p.add_argument("--cpus-per-node", default=None, help="default: every CPU of the node")
    p.add_argument("--partition", default=None)
    p.add_argument("--time", default=None, help="Slurm time limit, e.g. 24:00:00 or 2-00:00:00")
    p.add_argument("--account", default=None)
    p.add_argument("--job-name", default="peft-bench")
    p.add_argument("--results", default="results", help="shared storage; made absolute in the script")
    p.add_argument("--data-dir", default=None, help="root of the LLM-Adapters layout (else $PEFT_BENCH_DATA on the cluster)")
    p.add_argument("--venv", default=None, help="virtual environment (on shared storage) to activate on every node")
    p.add_argument("--out", default=None, help="write the script to this file instead of stdout")
    p.set_defaults(fn=cmd_slurm)

    p = sub.add_parser("report", help="write the HTML report")
    p.add_argument("suites", nargs="+")
    p.add_argument("--results", default="results")
    p.add_argument("--out", default="reports")
    p.add_argument("--name", default=None, help="report folder name (default: the first suite's)")
    p.add_argument("--embedded", action="store_true", help="report the suites' embedded rehearsal results")
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
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_params)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except UserError as exc:
        print(f"peft-bench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("peft-bench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
