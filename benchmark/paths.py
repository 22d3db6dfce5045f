"""Where things live: the package's suites, the cache, the data and results roots."""

import importlib.util
import os
from pathlib import Path

# The folder holding the `benchmark` package: the checkout's root, or site-packages once installed.
REPO_ROOT = Path(__file__).resolve().parent.parent
SUITES_PACKAGE = "peft_bench_suites"  # suites/ inside a wheel (setup.py maps the folder to this name)


def _suites_dir() -> Path:
    """suites/ of the checkout the package runs from (a clone, `pip install -e .`), else the installed data package.

    The checkout comes first so that a suite edited there is the one read, whatever else is installed. The
    data package is plain files in site-packages (a wheel installs unzipped), so it is a directory too.
    """
    checkout = REPO_ROOT / "suites"
    if (checkout / "models.yaml").is_file():
        return checkout
    spec = importlib.util.find_spec(SUITES_PACKAGE)
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations))).resolve()
    return checkout  # neither: every reader then names the missing catalogue file


SUITES_DIR = _suites_dir()


def cache_dir() -> Path:
    """$PEFT_BENCH_CACHE, else ~/.cache/peft-bench (embedded zoo, tokenizer, embedded data)."""
    path = Path(os.environ.get("PEFT_BENCH_CACHE", Path.home() / ".cache" / "peft-bench"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """--data-dir, else $PEFT_BENCH_DATA, else ./data (the LLM-Adapters layout lives below it)."""
    return Path(explicit or os.environ.get("PEFT_BENCH_DATA") or "data")


def embedded_data_dir() -> Path:
    """Where `embedded:` datasets are generated on first use (deterministic, so a cache is safe)."""
    return cache_dir() / "embedded-data"
