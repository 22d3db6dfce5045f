"""The whole pipeline on a 2-trial embedded suite: YAML -> plan -> real local Ray -> Parquet -> HTML."""

import subprocess
import sys
import textwrap

import pytest

SUITE = """
name: e2e
version: "1"
description: two tiny trials through the real pipeline
defaults:
  model: tiny-llama
  train_data: emb-math_10k
  eval_data: [emb-gsm8k, emb-AQuA]
  train: {epochs: 1, batch_size: 8, micro_batch_size: 4, learning_rate: 3.0e-3, warmup_steps: 2,
          cutoff_len: 96, max_train_examples: 64, max_steps: 4}
  eval: {num_beams: 2, batch_size: 8, max_eval_examples: 6, max_new_tokens: 12}
grid:
  method: [lora, series]
overrides:
  - when: {method: series}
    set: {method_args.bottleneck_size: 16}
"""


def _cli(*args, env=None, check=True):
    return subprocess.run([sys.executable, "-m", "benchmark", *args], capture_output=True, text=True,
                          check=check, env=env, timeout=600)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    suite = root / "e2e.yaml"
    suite.write_text(textwrap.dedent(SUITE))
    proc = _cli("run", str(suite), "--results", str(root / "results"), "--max-concurrent", "2", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return root


def test_trials_are_stored_with_ids_metrics_and_parameter_counts(run_dir):
    from benchmark.registry import expand, parse_suite
    from benchmark.store import Store

    specs = expand(parse_suite(run_dir / "e2e.yaml"))
    frame = Store(run_dir / "results").read(["e2e"])
    assert set(frame["trial_id"]) == {s.trial_id for s in specs}
    assert set(frame["status"]) == {"ok"}
    # One row per (trial, eval dataset, metric).
    assert len(frame) == 2 * 2
    assert set(frame["eval_data"]) == {"emb-gsm8k", "emb-AQuA"}
    assert set(frame["metric"]) == {"accuracy"}
    assert frame["value"].between(0, 100).all()
    assert (frame["n_examples"] == 6).all()
    by_method = frame.groupby("method")[["trainable_params", "total_params"]].first()
    assert (by_method["trainable_params"] > 0).all()
    assert (by_method["trainable_params"] < by_method["total_params"]).all()
    for trial_id in frame["trial_id"].unique():
        preds = Store(run_dir / "results").read_predictions("e2e", trial_id, "emb-gsm8k")
        assert len(preds) == 6 and {"prompt", "output", "extracted", "gold", "correct"} <= set(preds.columns)


def test_rerun_skips_stored_trials(run_dir):
    files = sorted((run_dir / "results").rglob("trials/*.parquet"))
    before = {f: f.stat().st_mtime_ns for f in files}
    proc = _cli("run", str(run_dir / "e2e.yaml"), "--results", str(run_dir / "results"))
    assert "2 already stored" in proc.stdout
    assert {f: f.stat().st_mtime_ns for f in files} == before


def test_report_has_the_table_and_the_plot(run_dir):
    out = run_dir / "reports"
    _cli("report", str(run_dir / "e2e.yaml"), "--results", str(run_dir / "results"), "--out", str(out))
    index = out / "e2e" / "index.html"
    assert index.is_file()
    # the index links one page per paper table; the table itself is on its page
    html = "".join(p.read_text() for p in sorted((out / "e2e").glob("*.html")))
    assert "emb-gsm8k" in html and "emb-AQuA" in html and "Average" in html
    assert "lora" in html and "series" in html
    pngs = list((out / "e2e").rglob("*.png"))
    assert pngs and pngs[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
