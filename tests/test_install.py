"""The package installs: a wheel built from the checkout, installed into a fresh venv and run from another
directory, lists, validates and plans every shipped suite with the checkout's trial ids (the suites and
catalogues travel as package data). Offline and seconds: the wheel is built without build isolation and
installed without dependencies; the new venv borrows this environment's packages (torch, transformers, ...)
through a .pth line that comes after its own site-packages, so `benchmark` is the wheel's, never the checkout's."""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

from benchmark.paths import SUITES_DIR
from benchmark.registry import plan, suite_files

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures"
# What the build reads (setup.py, pyproject.toml and the README it names, the two folders that ship).
BUILD_INPUTS = ("pyproject.toml", "setup.py", "README.md", "benchmark", "suites")

# Run inside the installed venv: where the package and its suites come from, and every suite's trial ids.
PLAN_ALL = """
import contextlib, io, json, sys
import benchmark, benchmark.paths
from benchmark.cli import main
ids = {}
for name in sys.argv[1:]:
    for embedded in (False, True):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(["plan", name, "--json"] + (["--embedded"] if embedded else [])) == 0, name
        ids[name + (" --embedded" if embedded else "")] = sorted(s["trial_id"] for s in json.loads(out.getvalue()))
print(json.dumps({"package": benchmark.__file__, "suites": str(benchmark.paths.SUITES_DIR), "ids": ids}))
"""


def _run(cmd, cwd, env=None) -> str:
    done = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{cmd}: rc {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done.stdout


def _install_wheel(tmp_path: Path) -> Path:
    """Build the wheel from a copy of the checkout (the build's scratch folders stay out of it) and install it into
    a fresh venv; its python."""
    src = tmp_path / "src"
    src.mkdir()
    for name in BUILD_INPUTS:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, src / name)
    _run([sys.executable, "-m", "pip", "wheel", src, "--no-deps", "--no-build-isolation", "-q", "-w", tmp_path / "dist"],
         cwd=src)
    (wheel,) = (tmp_path / "dist").glob("peft_bench-*.whl")
    venv.create(tmp_path / "venv", with_pip=False)
    python = tmp_path / "venv" / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", wheel], cwd=tmp_path)
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp_path).strip())
    (site / "zz-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def test_wheel_in_a_fresh_venv_plans_every_shipped_suite_from_another_directory(tmp_path):
    python = _install_wheel(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PEFT_BENCH_DATASETS", "PEFT_BENCH_CATALOGUE")}
    names = [str(f.relative_to(SUITES_DIR).with_suffix("")) for f in suite_files()]
    cli = python.parent / "peft-bench"

    listed = _run([cli, "list"], elsewhere, env).splitlines()[1:]
    assert sorted(line.split()[0] for line in listed) == sorted(names)
    validated = [line for line in _run([cli, "validate"], elsewhere, env).splitlines() if line.startswith("ok  ")]
    assert len(validated) == len(names) and all("site-packages" in line for line in validated)

    found = json.loads(_run([python, "-c", PLAN_ALL, *names], elsewhere, env))
    site = python.parent.parent
    assert Path(found["package"]).is_relative_to(site), found["package"]  # the wheel's code, not the checkout's
    assert Path(found["suites"]).is_relative_to(site) and Path(found["suites"]).name == "peft_bench_suites"
    checkout = {f"{name}{' --embedded' if embedded else ''}": sorted(s.trial_id for s in plan(name, embedded=embedded)[1])
                for name in names for embedded in (False, True)}
    assert found["ids"] == checkout
    expected = json.loads((FIXTURES / "trial_ids.json").read_text())
    assert {key: found["ids"][key] for key in expected} == expected
