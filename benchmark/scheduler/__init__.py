"""Where and when trials run: backend-neutral bookkeeping (core), the run command line (command), and two
backends: Ray Tune (tune_driver, the only module that imports ray) and Slurm job arrays (slurm_array).

Ray is imported on first use of run_specs, so the Slurm script builders and `peft-bench run-trial` work on
a login node or a compute node without starting (or even importing) ray.
"""

from benchmark.scheduler.core import RunSummary

__all__ = ["RunSummary", "run_specs"]


def __getattr__(name: str):
    if name == "run_specs":
        from benchmark.scheduler import tune_driver

        return tune_driver.run_specs
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
