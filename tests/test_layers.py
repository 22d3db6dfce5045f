"""The import layers (pyproject.toml, [tool.importlinter]; docs/architecture.md, "Layers") hold.

`lint-imports` reads the contracts from pyproject.toml and checks the package found on the path:
here the working tree's, in a tampered copy the copy's.
"""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(package_root: Path) -> subprocess.CompletedProcess:
    assert LINT_IMPORTS.exists(), f"{LINT_IMPORTS} is missing: install the dev extra (pip install -e '.[dev]')"
    env = {"PATH": str(LINT_IMPORTS.parent), "PYTHONPATH": str(package_root), "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--no-logo", str(package_root / "pyproject.toml")],
                          cwd=package_root, env=env, capture_output=True, text=True, timeout=120)


def broken_section(output: str) -> str:
    """What lint-imports lists under "Broken contracts" (the whole output when it has no such heading)."""
    _, found, rest = output.partition("Broken contracts")
    return rest.strip() if found else output


def test_the_package_keeps_its_import_layers():
    run = lint_imports(ROOT)
    kept = run.returncode == 0
    assert kept, "imports that break the layers:\n" + broken_section(run.stdout + run.stderr)


def append_function(module: Path, body: str) -> None:
    module.write_text(module.read_text() + f"\n\ndef _added():\n    {body}  # noqa: F401\n")


def test_the_contracts_catch_each_kind_of_fault(tmp_path):
    # A copy of the package with one fault per contract: a lazy import of the cli from the bottom layer,
    # a top-level module no layer places, the report importing a task, ray outside the scheduler.
    package = tmp_path / "benchmark"
    shutil.copytree(ROOT / "benchmark", package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    append_function(package / "paths.py", "from benchmark import cli")
    (package / "unplaced.py").write_text('"""Not in any layer."""\n')
    append_function(package / "report" / "__init__.py", "from benchmark import tasks")
    append_function(package / "store" / "__init__.py", "import ray")

    run = lint_imports(tmp_path)
    output = run.stdout + run.stderr
    assert run.returncode == 1, output
    assert "benchmark.paths is not allowed to import benchmark.cli" in output, output
    assert "- benchmark.unplaced" in output, output
    assert "benchmark.report is not allowed to import benchmark.tasks" in output, output
    assert "benchmark.store -> ray" in output, output
