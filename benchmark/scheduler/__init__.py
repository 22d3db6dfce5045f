"""The only package that imports ray: run TrialSpecs as Ray Tune trials (locally or on a cluster)."""

from benchmark.scheduler.tune_driver import RunSummary, run_specs

__all__ = ["RunSummary", "run_specs"]
