"""Where things live: the package's suites, the cache, the data and results roots."""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SUITES_DIR = REPO_ROOT / "suites"


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
