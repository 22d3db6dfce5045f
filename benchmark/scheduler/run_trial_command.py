"""`peft-bench run-trial SUITE TRIAL_ID...`: one trial (or a co-trained group of them) in this process, stored as
every backend's worker stores it. What a Slurm array task runs; usable by hand to rerun one trial."""

from __future__ import annotations

from pathlib import Path

from benchmark.errors import UserError, first_line


def run_trial(args) -> int:
    from benchmark.paths import data_dir
    from benchmark.planner import plan
    from benchmark.scheduler import core
    from benchmark.store import Store
    from benchmark.store.fs import locate

    _, trials = plan(args.suite, args.filter, embedded=args.embedded)  # every check, as `run` does
    if len(set(args.trial_ids)) != len(args.trial_ids):
        raise UserError(f"run-trial {args.suite}: trial ids given twice: {' '.join(args.trial_ids)}; allowed: each once")
    specs = [core.find_trial([trial.spec for trial in trials], trial_id, args.suite) for trial_id in args.trial_ids]
    locate(args.results)  # a bad --results URI fails here, before the trial runs
    results = core.absolute_root(args.results)
    pending = core.pending_specs(Store(results), specs)
    for spec in specs:
        if spec not in pending:
            print(f"{spec.trial_id}: already stored as ok in {args.results}; nothing to do")
    if not pending:
        return 0
    root = str(Path(data_dir(args.data_dir)).resolve())
    if len(pending) > 1:
        outcomes = core.run_and_store_group(pending, root, results, save_adapters=not args.no_save_adapters)
    else:
        outcomes = [core.run_and_store(pending[0], root, results, save_adapters=not args.no_save_adapters)]
    failed = False
    for result in outcomes:
        if result.status == core.LEASED:  # one trial, one runner: the holder stores it (rerun this if it dies)
            print(f"{result.trial_id}: not run, {result.error}; nothing to do")
        elif result.status == "ok":
            group = f" (co-trained in {result.co_train_group})" if result.co_train_group else ""
            print(f"{result.trial_id} ok{group}; stored in {args.results}")
        else:
            failed = True
            print(f"FAILED {result.trial_id}: {first_line(result.error)} (stored in {args.results})")
    return 1 if failed else 0
