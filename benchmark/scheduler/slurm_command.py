"""`peft-bench slurm SUITE`: print (or write) an sbatch script, Ray on the allocation (slurm.py) or a job array
(slurm_array.py)."""

from __future__ import annotations

import sys
from pathlib import Path


def slurm_command(args) -> int:
    from benchmark.registry.catalogues import current
    from benchmark.scheduler.groups import parse_co_train
    from benchmark.scheduler.slurm import SlurmOptions, build_script
    from benchmark.scheduler.slurm_array import build_array_script

    opts = SlurmOptions(
        suite=args.suite, nodes=args.nodes, gpus_per_node=args.gpus_per_node, cpus_per_node=args.cpus_per_node,
        gpus_per_task=args.gpus_per_task, cpus_per_task=args.cpus_per_task, partition=args.partition, time=args.time,
        account=args.account, job_name=args.job_name, results=args.results, data_dir=args.data_dir, embedded=args.embedded,
        filters=args.filter, venv=args.venv, max_concurrent=args.max_concurrent, max_failures=args.max_failures,
        retry_failed=args.retry_failed, catalogues=list(current().user_files), co_train=args.co_train)
    parse_co_train(args.co_train)  # before anything is rendered: a bad value fails at submission, not on the cluster
    if args.array:
        built = build_array_script(opts)
        if built.text is None:  # exit 0 and no script: there is nothing to submit
            which = "stored as failed" if args.retry_failed else "not stored as ok"
            print(f"nothing to run: no trial of {args.suite} ({built.total} planned) is {which} in {args.results}; "
                  "no script written", file=sys.stderr)
            return 0
        script, what = built.text, (f"{built.tasks} array tasks for {built.pending} pending trials of {built.total} "
                                    "(a trial or a co-trained group each)")
    else:
        script, n_trials = build_script(opts)
        what = f"{n_trials} trials"
    if args.out is None:
        sys.stdout.write(script)
    else:
        Path(args.out).write_text(script)
        print(f"wrote {args.out} ({what}); submit with: sbatch {args.out}", file=sys.stderr)
    return 0
