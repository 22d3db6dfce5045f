"""The package list, kept here because pyproject.toml cannot both discover packages and rename a folder.

Everything else about the package is in pyproject.toml. The wheel holds `benchmark` (every package below it,
found, so a new one needs no edit here) and `peft_bench_suites`: the checkout's suites/ folder (the grids,
the model and dataset catalogues, the published baselines) shipped as package data, so an installed
peft-bench knows every suite without a checkout (benchmark/paths.py finds it either way).
"""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["benchmark", "benchmark.*"]), "peft_bench_suites"],
      package_dir={"peft_bench_suites": "suites"})
