"""The HTML report built from a small real store: numbers, markers, escaping, figure, exports."""

import re

import pytest

from benchmark.registry.spec import TrainConfig, TrialSpec
from benchmark.report import build
from benchmark.result import Metric, TrialResult
from benchmark.store import Store

SUITE = "llm_adapters/math"
EVIL = "<script>alert(1)</script>"


def spec(method, args, seed=42, eval_data=("gsm8k", "AQuA"), suite=SUITE):
    return TrialSpec(suite=suite, suite_version="2", model="llama-7b", model_source="yahma/llama-7b-hf", family="llama",
                     method=method, method_args=args, train_data="math_10k", eval_data=eval_data, train=TrainConfig(seed=seed))


def ok(spec_, scores, family="math", trainable=4_194_304, total=6_742_609_920):
    return TrialResult(spec=spec_, metrics=[Metric(d, family, "accuracy", v, 100) for d, v in scores.items()],
                       trainable_params=trainable, total_params=total, train_seconds=1800.0, eval_seconds=1800.0,
                       device="NVIDIA H100", started_at="2024-01-01T00:00:00+00:00", finished_at="2024-01-01T01:00:00+00:00")


@pytest.fixture
def report(tmp_path):
    store = Store(tmp_path / "results")
    # LoRA, two seeds: mean ± std on gsm8k, AQuA on one seed only.
    store.write(ok(spec("lora", {"r": 8}, seed=1), {"gsm8k": 30.0, "AQuA": 20.0}))
    store.write(ok(spec("lora", {"r": 8}, seed=2), {"gsm8k": 34.0, "AQuA": 24.0}))
    # Series adapter: evaluated on gsm8k only, so AQuA is "not run" and the average incomplete.
    store.write(ok(spec("series", {"bottleneck_size": 256}, eval_data=("gsm8k",)), {"gsm8k": 40.5},
                   trainable=14_680_064))
    # Parallel adapter: failed before any metric.
    store.write(TrialResult(spec=spec("parallel", {}), status="failed", error="CUDA out of memory\nTraceback: ...",
                            started_at="2024-01-01T00:00:00+00:00", finished_at="2024-01-01T00:01:00+00:00"))
    # A dataset name that is an injection attempt, in its own family.
    store.write(ok(spec("lora", {"r": 8}, eval_data=(EVIL,)), {EVIL: 55.0}, family="commonsense"))
    out = tmp_path / "report"
    index = build([SUITE], tmp_path / "results", out)
    return index, index.read_text(encoding="utf-8")


def _row(html, label_start):
    math_section = html[html.index("<h2>math</h2>"):]
    rows = re.findall(r"<tr><td>(.*?)</tr>", math_section, flags=re.S)
    return next(r for r in rows if r.startswith(label_start))


def test_table_shows_the_expected_numbers(report):
    index, html = report
    assert index.name == "index.html"
    lora = _row(html, "llama-7b / lora (r=8)")
    assert "32.0 ± 2.8 (n=2)" in lora and "22.0 ± 2.8 (n=2)" in lora
    assert "27.0 ± 2.8 (n=2)" in lora  # average over gsm8k + AQuA per seed: 25 and 29
    assert "4.2M (0.06%)" in lora
    series = _row(html, "llama-7b / series (bottleneck_size=256)")
    assert "<strong>40.5</strong>" in series  # best on gsm8k
    assert ">not run<" in series and ">incomplete<" in series and "14.7M" in series
    assert "<strong>22.0 ± 2.8 (n=2)</strong>" in lora  # best on AQuA (the only value)


def test_failed_trials_are_marked_and_listed(report):
    _, html = report
    parallel = _row(html, "llama-7b / parallel")
    assert parallel.count(">failed<") == 3  # gsm8k, AQuA, Average
    assert "CUDA out of memory" in html and "Traceback" not in html  # first line only
    assert "5 stored: 4 ok, 1 failed" in html
    assert "NVIDIA H100" in html and "4.00 h" in html  # 4 ok trials x (1800 + 1800) s


def test_data_strings_are_escaped(report):
    _, html = report
    assert EVIL not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script" not in html.lower()


def test_figures_and_exports_are_written(report):
    index, html = report
    out = index.parent
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == 2  # math and commonsense
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
        assert f'src="{png.name}"' in html
    alts = re.findall(r'<img src="[^"]+" alt="([^"]+)"', html)
    assert len(alts) == 2 and all("trainable parameters" in alt for alt in alts)
    csvs, mds = sorted(out.glob("*.csv")), sorted(out.glob("*.md"))
    assert len(csvs) == 2 and len(mds) == 2
    math_md = next(p for p in mds if "math" in p.name).read_text()
    assert "| Model / method | gsm8k | AQuA | Average | Trainable params |" in math_md
    assert "**40.5**" in math_md and "not run" in math_md and "failed" in math_md
    math_csv = next(p for p in csvs if "math" in p.name).read_text()
    assert "32.0 ± 2.8 (n=2)" in math_csv
    assert "http" not in re.sub(r'<a href="[^"]+\.(csv|md)"', "", html)  # no external resources


def test_empty_store_still_builds(tmp_path):
    html = build(["nothing"], tmp_path / "results", tmp_path / "out").read_text()
    assert "No trials stored" in html and "nothing (no trials stored)" in html


def test_rows_split_by_differing_train_settings(tmp_path):
    store = Store(tmp_path / "results")
    for lr in (1e-4, 3e-4):
        s = TrialSpec(suite="hp", suite_version="1", model="m", model_source="embedded:m", family="llama", method="lora",
                      method_args={"r": 8}, train_data="d", eval_data=("gsm8k",), train=TrainConfig(learning_rate=lr))
        store.write(ok(s, {"gsm8k": 10.0 if lr < 2e-4 else 20.0}))
    html = build(["hp"], tmp_path / "results", tmp_path / "out").read_text()
    assert "m / lora (r=8) [learning_rate=0.0001]" in html and "m / lora (r=8) [learning_rate=0.0003]" in html


def test_chance_level_comes_from_the_catalogue_answer_options():
    from benchmark.report.tables import chance_level

    assert chance_level("emb-boolq") == 50.0  # true / false
    assert chance_level("emb-hellaswag") == 25.0  # ending1..4
    assert chance_level("emb-AQuA") == 20.0  # A-E
    assert chance_level("emb-gsm8k") == 0.0  # an open number
    assert chance_level("no-such-dataset") is None
