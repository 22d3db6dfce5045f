"""Tiny trials that keep what they trained, run once per test session for tests/test_adapters_saved.py and
tests/test_rescore.py: lora, series and prefix on tiny-llama (two generation eval sets: a number answer and a
choice answer), unipelt on tiny-roberta (an embedded GLUE task). Two steps, six or eight eval examples, greedy."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

CAUSAL = """
name: kept-causal
version: "1"
description: "adapters kept: tiny causal trials"
defaults:
  model: tiny-llama
  train_data: emb-math_10k
  eval_data: [emb-gsm8k, emb-boolq]
  train: {batch_size: 2, micro_batch_size: 2, max_steps: 2, max_train_examples: 8, warmup_steps: 0, cutoff_len: 64,
          learning_rate: 0.01}
  eval: {num_beams: 1, max_new_tokens: 8, max_eval_examples: 6, batch_size: 6}
grid:
  method: [lora, series, prefix]
"""

ENCODER = """
name: kept-encoder
version: "1"
description: "adapters kept: a tiny encoder trial"
defaults:
  model: tiny-roberta
  method: unipelt
  train_data: emb-rte-train
  eval_data: [emb-rte]
  train: {batch_size: 4, micro_batch_size: 4, max_steps: 2, max_train_examples: 16, warmup_steps: 0, cutoff_len: 64,
          learning_rate: 0.01}
  eval: {max_eval_examples: 8, batch_size: 8}
"""


@dataclass(frozen=True)
class Kept:
    results: Path  # the session's results folder: copy it before writing into it
    suites: dict  # "causal" | "encoder" -> suite file
    specs: dict  # method -> TrialSpec


@functools.cache
def kept() -> Kept:
    from benchmark.paths import data_dir
    from benchmark.planner import plan
    from benchmark.scheduler import core

    root = Path(tempfile.mkdtemp(prefix="peft-bench-kept-"))
    atexit.register(shutil.rmtree, root, True)
    suites, specs = {}, {}
    for key, text in (("causal", CAUSAL), ("encoder", ENCODER)):
        suites[key] = root / f"kept-{key}.yaml"
        suites[key].write_text(text)
        for trial in plan(str(suites[key]))[1]:
            result = core.run_and_store(trial.spec, str(data_dir(None)), str(root / "results"))
            assert result.status == "ok", result.error
            specs[trial.spec.method] = trial.spec
    return Kept(root / "results", suites, specs)


def copy_results(destination: Path) -> Path:
    """A private copy of the session's results, for a test that writes."""
    return Path(shutil.copytree(kept().results, destination / "results"))
