"""Test-wide settings: no network, a private cache, quiet Ray."""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Set before anything imports transformers or ray.
os.environ.setdefault("PEFT_BENCH_CACHE", str(ROOT / ".cache" / "peft-bench-test"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
