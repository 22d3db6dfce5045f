"""Suites as data: YAML files under suites/ -> validated Suite -> TrialSpecs with stable ids."""

from __future__ import annotations

from pathlib import Path

from benchmark.errors import UserError
from benchmark.paths import SUITES_DIR
from benchmark.registry import catalogues
from benchmark.registry.catalogues import Catalogue
from benchmark.registry.expand import apply_filters, expand, spec_fields
from benchmark.registry.spec import EvalConfig, Resources, TrainConfig, TrialSpec
from benchmark.registry.suite import Suite, parse_suite

# Files under suites/ that are catalogues or baselines, not grids.
NOT_SUITES = {"models.yaml", "datasets.yaml", "perf.yaml"}

__all__ = ["EvalConfig", "Resources", "Suite", "TrainConfig", "TrialSpec", "apply_filters", "expand",
           "find_suite", "load_suite", "plan", "spec_fields", "suite_files"]


def suite_files(root: Path = SUITES_DIR) -> list[Path]:
    files = []
    for path in sorted(root.rglob("*.yaml")):
        rel = path.relative_to(root)
        if rel.name in NOT_SUITES or rel.parts[0] == "baselines":
            continue
        files.append(path)
    return files


def find_suite(name_or_path: str) -> Path:
    """A path to a YAML file, or a name relative to suites/ such as `smoke` or `llm_adapters/math`."""
    candidates = [Path(name_or_path)]
    if not name_or_path.endswith((".yaml", ".yml")):
        candidates.append(SUITES_DIR / f"{name_or_path}.yaml")
    candidates.append(SUITES_DIR / name_or_path)
    for path in candidates:
        if path.is_file():
            return path
    known = [str(p.relative_to(SUITES_DIR).with_suffix("")) for p in suite_files()]
    from benchmark.errors import did_you_mean

    raise UserError(f"suite {name_or_path!r}: no such file or suite name{did_you_mean(name_or_path, known)}; "
                    f"allowed: a YAML path or one of {', '.join(known)}")


def load_suite(name_or_path: str) -> Suite:
    return parse_suite(find_suite(name_or_path))


def plan(name_or_path: str, filters: list[str] | None = None, embedded: bool = False,
         catalogue: Catalogue | None = None) -> tuple[Suite, list[TrialSpec]]:
    """The suite's TrialSpecs, expanded and filtered: the grid alone, against `catalogue` (default: the current
    one; the suite's own sections added). benchmark.planner.plan resolves and checks them against the method and
    task registries (what validate, plan and run call)."""
    suite = load_suite(name_or_path)
    cat = catalogues.for_suite(suite, catalogue)
    return suite, apply_filters(expand(suite, embedded=embedded, catalogue=cat), filters or [])
