"""`peft-bench run`: every check that can fail (the plan, the datasets, --results, --address) before Ray starts
or a model loads, then the suite on Ray with Ray's own output in a log file (quiet.py), then the summary."""

from __future__ import annotations

from pathlib import Path

from benchmark.errors import UserError, first_line


def check_datasets(trials, data_root: Path, suite: str) -> None:
    """Every dataset the trials read is loaded once, as `peft-bench data check` does: a missing or unreadable one
    fails the run in one line now, not inside a worker after Ray started (or a scheduler waited for CPUs)."""
    from benchmark.data.check import check
    from benchmark.planner import datasets_needed

    bad = [row for row in check(datasets_needed(trials), data_root) if row.get("error")]
    if bad:
        name, error = bad[0]["name"], first_line(bad[0]["error"])
        more = f" (and {len(bad) - 1} more datasets)" if len(bad) > 1 else ""
        raise UserError(f"{error if repr(name) in error else f'dataset {name}: {error}'}{more}; `peft-bench data check "
                        f"{suite}` lists every dataset the suite needs and where each is looked for")


def run(args) -> int:
    from benchmark.paths import data_dir
    from benchmark.planner import plan
    from benchmark.scheduler.address import check_address
    from benchmark.scheduler.quiet import default_log, ray_output_to
    from benchmark.store.fs import locate

    suite, trials = plan(args.suite, args.filter, embedded=args.embedded)  # every check before Ray starts
    specs = [trial.spec for trial in trials]
    locate(args.results)  # a bad --results URI or --address fails here, before Ray starts
    if args.address is not None:
        check_address(args.address)
    from benchmark.scheduler.groups import parse_co_train

    co_train = parse_co_train(args.co_train)
    from benchmark.registry import bounds

    if args.max_concurrent is not None and not 1 <= args.max_concurrent <= bounds.CONCURRENT:
        raise UserError(f"--max-concurrent {args.max_concurrent}: allowed: {bounds.up_to(bounds.CONCURRENT)} (trials "
                        "running at once, cluster-wide)")
    if not 0 <= args.max_failures <= bounds.RETRIES:
        raise UserError(f"--max-failures {args.max_failures}: allowed: {bounds.up_to(bounds.RETRIES, 0)} (retries of a "
                        "trial whose worker died)")
    data_root = Path(data_dir(args.data_dir))
    check_datasets(trials, data_root, args.suite)
    log = None if args.verbose else Path(args.log) if args.log else default_log(args.results, specs[0].suite if specs else suite.name)
    if log is not None:
        print(f"[peft-bench] Ray's own output: {log}", flush=True)
    with ray_output_to(log) as terminal:
        from benchmark.scheduler.tune_driver import run_specs  # importing ray.tune already prints warnings

        summary = run_specs(specs, data_root=str(data_root), results_root=args.results, address=args.address,
                            max_concurrent=args.max_concurrent, max_failures=args.max_failures,
                            retry_failed=args.retry_failed, save_adapters=not args.no_save_adapters,
                            progress_stream=terminal, co_train=co_train)
    skipped = "not failed" if args.retry_failed else "already stored"
    elsewhere = f", {summary.elsewhere} run by another driver" if summary.elsewhere else ""
    print(f"{summary.ok} ok, {len(summary.failed)} failed, {summary.skipped} {skipped}{elsewhere} "
          f"({summary.seconds:.0f} s); results in {args.results}")
    for trial_id, error in summary.failed:
        print(f"FAILED {trial_id}: {error}")
    if summary.failed:
        print(f"rerun only these with: peft-bench run {args.suite} --retry-failed (same options)")
    return 1 if summary.failed else 0
