"""The only package that imports ray: run TrialSpecs as Ray Tune trials (locally or on a cluster).

Ray is imported on first use of run_specs / RunSummary, so `benchmark.scheduler.slurm` (pure script
generation) works on a login node without ray.
"""

__all__ = ["RunSummary", "run_specs"]


def __getattr__(name: str):
    if name in __all__:
        from benchmark.scheduler import tune_driver

        return getattr(tune_driver, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
