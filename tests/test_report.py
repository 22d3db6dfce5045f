"""The HTML report built from a small real store: numbers, markers, escaping, figure, exports."""

import re

import pandas as pd
import pytest

from benchmark import baselines
from benchmark.registry.spec import TrainConfig, TrialSpec
from benchmark.report import build
from benchmark.result import Metric, TrialResult
from benchmark.store import Store

SUITE = "llm_adapters/math"
EVIL = "<script>alert(1)</script>"


def spec(method, args, seed=42, eval_data=("gsm8k", "AQuA"), suite=SUITE):
    return TrialSpec(suite=suite, suite_version="2", model="llama-7b", model_source="yahma/llama-7b-hf", model_family="llama",
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
    return index, pages(index)


def pages(index):
    """The index followed by every table page, each opening with its <h1>: one text to search."""
    tables = sorted(p for p in index.parent.glob("[0-9][0-9]-*.html"))
    return "\n".join(p.read_text(encoding="utf-8") for p in [index, *tables])


def _row(html, label_start):
    math_section = _section(html, "math")
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
    assert "NVIDIA H100 (4 trials)" in html and "4.00 GPU-hours, 0.00 CPU-hours" in html  # 4 x (1800 + 1800) s


def test_data_strings_are_escaped(report):
    _, html = report
    assert EVIL not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script" not in html.lower()


def test_figures_and_exports_are_written(report):
    index, html = report
    out = index.parent
    pngs = sorted(out.glob("*.png"))
    assert len(sorted(out.glob("*-params.png"))) == 2  # math and commonsense: score vs parameters
    assert len(sorted(out.glob("*-delta.png"))) == 1  # math only: commonsense has no paper number to differ from
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
        assert f'src="{png.name}"' in html
    alts = re.findall(r'<img src="([^"]+)" alt="([^"]+)"', html)
    assert len(alts) == len(pngs) and all("trainable parameters" in alt for src, alt in alts if "-params" in src)
    csvs = sorted(set(out.glob("*.csv")) - set(out.glob("*-pareto.csv")) - set(out.glob("*-cost.csv")))
    mds = sorted(out.glob("*.md"))
    assert len(csvs) == 2 and len(mds) == 2 and len(sorted(out.glob("*.tex"))) == 2
    assert len(sorted(out.glob("*-pareto.csv"))) == 2 and len(sorted(out.glob("*-pareto.png"))) == 2
    assert len(sorted(out.glob("*-cost.csv"))) == 2
    math_md = next(p for p in mds if p.name.endswith("_math.md")).read_text()
    assert "| Model / method | gsm8k | AQuA | Average | Trainable params (%) |" in math_md
    assert "**40.5**" in math_md and "not run" in math_md and "failed" in math_md
    math_csv = next(p for p in csvs if p.name.endswith("_math.csv")).read_text()
    assert "32.0 ± 2.8 (n=2)" in math_csv
    assert "http" not in re.sub(r'<a href="[^"]+\.(csv|md)"', "", html)  # no external resources


def test_empty_store_still_builds(tmp_path):
    html = build(["nothing"], tmp_path / "results", tmp_path / "out").read_text()
    assert "No trials stored" in html and "<td>nothing</td><td>no trials stored</td>" in html


def test_rows_split_by_differing_train_settings(tmp_path):
    store = Store(tmp_path / "results")
    for lr in (1e-4, 3e-4):
        s = TrialSpec(suite="hp", suite_version="1", model="m", model_source="embedded:m", model_family="llama", method="lora",
                      method_args={"r": 8}, train_data="d", eval_data=("gsm8k",), train=TrainConfig(learning_rate=lr))
        store.write(ok(s, {"gsm8k": 10.0 if lr < 2e-4 else 20.0}))
    html = pages(build(["hp"], tmp_path / "results", tmp_path / "out"))
    assert "m / lora (r=8) [learning_rate=0.0001]" in html and "m / lora (r=8) [learning_rate=0.0003]" in html


def test_chance_level_comes_from_the_catalogue_answer_options():
    from benchmark.report.tables import chance_level

    assert chance_level("emb-boolq") == 50.0  # true / false
    assert chance_level("emb-hellaswag") == 25.0  # ending1..4
    assert chance_level("emb-AQuA") == 20.0  # A-E
    assert chance_level("emb-gsm8k") == 0.0  # an open number
    assert chance_level("no-such-dataset") is None


# ---- published numbers beside the run (benchmark/report/published.py) ----

def _section(html, family):
    start = html.index(f": {family}</h1>")
    end = html.find("<h1>", start + 1)
    return html[start:end if end > 0 else len(html)]


def _published_row(html, label, family="math"):
    rows = re.findall(r'<tr class="ref-(?:paper|baseline)">(.*?)</tr>', _section(html, family), flags=re.S)
    return next(r for r in rows if re.search(rf"<td[^>]*>{re.escape(label)}\s*<span", r))


def _cells(row_html):
    return [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row_html, flags=re.S)]


def test_run_cell_shows_the_paper_number_and_the_signed_difference(report):
    _, html = report
    lora = _row(html, "llama-7b / lora (r=8)")
    # llama-7b / lora on gsm8k: run 32.0, paper 37.5 (current README table) -> -5.5; AQuA 22.0 vs 18.9 -> +3.1
    assert re.search(r'paper 37\.5<sup>1</sup>, <span class="delta[^"]*">-5\.5</span>', lora)
    assert re.search(r'paper 18\.9<sup>1</sup>, <span class="delta[^"]*">\+3\.1</span>', lora)
    # Average: the table prints gsm8k/AQuA/mawps/SVAMP, so the mean of the paper's two numbers: 28.2 vs 27.0
    assert re.search(r'paper 28\.2<sup>1</sup>, <span class="delta[^"]*">-1\.2</span>', lora)
    assert 'title="Math reasoning, 4 datasets (current README) [llm_adapters_math_current]: ' in lora
    series = _row(html, "llama-7b / series (bottleneck_size=256)")
    assert "<strong>40.5</strong>" in series and "+7.2" in series
    assert re.search(r">not run<span class=\"paper\"[^>]*>paper 15\.0<sup>1</sup></span>", series)  # no run: no difference
    assert "paper 24.2" in series  # mean of 33.3 and 15.0, rounded as by hand (not 24.1)
    parallel = _row(html, "llama-7b / parallel")
    assert "paper 35.3" in parallel and "delta" not in parallel
    commonsense = _section(html, "commonsense")
    assert 'class="paper"' not in commonsense and "Published (not this run)" not in commonsense  # no published column fits: nothing extra


def test_baseline_and_other_paper_rows_are_reference_rows_with_their_source(report):
    _, html = report
    gpt = _published_row(html, "GPT-3.5")
    assert _cells(gpt)[1:] == ["56.4", "38.9", "47.7", "-"]  # average: the mean of 56.4 and 38.9, 47.65, half up
    assert ">baseline</span>" in gpt and "<strong>" not in gpt
    assert "AGI-Edgerunners/LLM-Adapters README (main at 2024-03-10)" in gpt  # the source, as a tooltip
    assert "<li>Math reasoning, 4 datasets (current README) [llm_adapters_math_current]: AGI-Edgerunners" in html
    llama13 = _published_row(html, "LLaMA-13B-LoRA")
    assert _cells(llama13)[1:3] == ["47.5", "18.5"] and ">paper</span>" in llama13
    adapterp = _published_row(html, "LLaMA-7B-AdapterP")  # only the historical (fallback) table prints AdapterP
    assert _cells(adapterp)[1:3] == ["30.2", "14.9"] and _cells(adapterp)[-1] == "66M" and "<sup>2</sup>" in adapterp
    with pytest.raises(StopIteration):
        _published_row(html, "LLaMA-7B-LoRA")  # run here: its numbers sit beside the run, not below
    math = _section(html, "math")
    assert math.index("llama-7b / series") < math.index("GPT-3.5") < math.index("LLaMA-13B-LoRA") < math.index("chance (")
    assert "April-4-2023" not in html  # the contaminated table is never compared


def test_exports_carry_the_same_published_numbers(report):
    index, _ = report
    out = index.parent
    md = next(out.glob("*math.md")).read_text()
    assert "| llama-7b / lora (r=8) | 32.0 ± 2.8 (n=2) (paper 37.5 [1], -5.5) | **22.0 ± 2.8 (n=2)** (paper 18.9 [1], +3.1) |" in md
    assert "| **40.5** (paper 33.3 [1], +7.2) | not run (paper 15.0 [1]) |" in md
    assert "| GPT-3.5 (baseline) [1] | 56.4 | 38.9 | 47.7 | - |" in md
    assert "[1] Math reasoning, 4 datasets (current README) [llm_adapters_math_current]: AGI-Edgerunners" in md
    frame = pd.read_csv(next(out.glob("*math.csv")), dtype=str)
    lora = frame[frame["Model / method"] == "llama-7b / lora (r=8)"].iloc[0]
    assert lora["gsm8k"] == "32.0 ± 2.8 (n=2) (paper 37.5 [1], -5.5)" and lora["Row"] == "run"
    gpt = frame[frame["Model / method"] == "GPT-3.5 (baseline) [1]"].iloc[0]
    assert (gpt["gsm8k"], gpt["AQuA"], gpt["Average"], gpt["Row"]) == ("56.4", "38.9", "47.7", "baseline")
    assert gpt["Sources"].startswith("[1] Math reasoning, 4 datasets (current README)")
    assert list(frame["Row"]).count("chance") == 1 and "0" not in set(frame["Trainable params (%)"])


def _embedded_report(tmp_path):
    store = Store(tmp_path / "results")
    s = TrialSpec(suite="smoke", suite_version="1", model="tiny-llama", model_source="embedded:tiny-llama", model_family="llama",
                  method="lora", method_args={"r": 8}, train_data="emb-math_10k", eval_data=("emb-gsm8k",),
                  train=TrainConfig(seed=1))
    store.write(ok(s, {"emb-gsm8k": 3.0}, trainable=8192, total=1_000_000))
    index = build(["smoke"], tmp_path / "results", tmp_path / "out")
    return index, pages(index)


def test_embedded_run_shows_published_numbers_apart_for_orientation_only(tmp_path):
    index, html = _embedded_report(tmp_path)
    assert "Published numbers, for orientation only (not comparable: another model or synthetic data)" in html
    run = _row(html, "tiny-llama / lora (r=8)")
    assert "paper" not in run and "delta" not in run  # no difference against a tiny model on synthetic data
    block = html[html.index('<table class="orientation">'):]
    block = block[:block.index("</table>")]
    assert "<th>gsm8k</th>" in block  # the real dataset the twin stands in for
    lora = next(r for r in re.findall(r"<tr class=\"ref-paper\">(.*?)</tr>", block, flags=re.S) if ">LLaMA-7B-LoRA" in r)
    assert _cells(lora)[1:3] == ["37.5", "37.5"]  # gsm8k, and the mean over the one column
    main = _section(html, "math").split('<table class="orientation">')[0]
    assert "GPT-3.5" in block and "GPT-3.5" not in main and "chance (" in main  # the run table keeps only chance
    md = next(index.parent.glob("*math.md")).read_text()
    assert "### Published numbers, for orientation only" in md and "| LLaMA-7B-LoRA (paper) [1] | 37.5 |" in md
    assert "(paper " not in md
    published = pd.read_csv(next(index.parent.glob("*-published.csv")), dtype=str)
    assert published.loc[published["Model / method"] == "LLaMA-7B-LoRA (paper) [1]", "gsm8k"].iloc[0] == "37.5"


def test_matching_rules_rank_tables_and_check_metrics():
    from benchmark.report.published import Matcher, ranked_tables

    tables = ranked_tables()
    assert all(t.compare != "never" or t.train_examples for t in tables) and "llm_adapters_math_2023_04_04" not in {t.id for t in tables}
    key = ("llama-7b", "lora", None)
    matcher = Matcher([("gsm8k", "accuracy"), ("AddSub", "accuracy"), ("emb-SVAMP", "accuracy")], tables)
    gsm8k, addsub, svamp = (matcher.cell(i, key) for i in range(3))
    assert (gsm8k.value, gsm8k.table.id) == (37.5, "llm_adapters_math_current")  # current README first
    assert (addsub.value, addsub.table.id) == (83.3, "llm_adapters_math_six_2023_07")  # only there (and older)
    assert (svamp.value, svamp.table.id) == (52.1, "llm_adapters_math_current") and matcher.synthetic
    _, text, used = matcher.average([gsm8k, addsub, svamp])  # across two tables: the mean of the numbers shown
    assert text == "57.6" and {h.table.id for h in used} == {"llm_adapters_math_current", "llm_adapters_math_six_2023_07"}
    assert Matcher([("gsm8k", "f1")], tables).cell(0, key) is None  # another metric never meets
    four = Matcher([(d, "accuracy") for d in ("gsm8k", "AQuA", "mawps", "SVAMP")], tables)
    value, text, used = four.average([four.cell(i, key) for i in range(4)])
    current = next(t for t in baselines.load("llm_adapters") if t.id == "llm_adapters_math_current")
    assert value == current.find("llama-7b", "lora").value("average") and text == "46.9"


def test_missing_published_numbers_show_nothing_extra(tmp_path):
    store = Store(tmp_path / "results")
    store.write(ok(spec("dora", {}, eval_data=("gsm8k", "mawps")), {"gsm8k": 30.0, "mawps": 70.0}))
    html = pages(build([SUITE], tmp_path / "results", tmp_path / "out"))
    assert "paper" not in _row(html, "llama-7b / dora")  # the paper has no DoRA row
    adapterp = _published_row(html, "LLaMA-7B-AdapterP")  # the April-21 table prints no mawps, nor an average
    assert _cells(adapterp)[1:4] == ["30.2", "-", "-"]


def test_embedded_rehearsal_rows_name_the_model_they_stand_for(tmp_path):
    """`run --embedded` puts tiny-llama in place of llama-7b and llama-13b: the rows stay apart and say so."""
    store = Store(tmp_path / "results")
    for grid_model in ("llama-7b", "llama-13b"):
        s = TrialSpec(suite="llm_adapters/math-embedded", suite_version="1", model="tiny-llama",
                      model_source="embedded:tiny-llama", model_family="llama", method="lora", method_args={"r": 8},
                      train_data="emb-math_10k", eval_data=("emb-gsm8k",),
                      train=TrainConfig(gradient_checkpointing=grid_model == "llama-13b"),  # as math.yaml sets it
                      cell={"model": grid_model, "method": "lora"})
        store.write(ok(s, {"emb-gsm8k": 10.0 if grid_model == "llama-7b" else 12.0}))
    html = pages(build(["llm_adapters/math-embedded"], tmp_path / "results", tmp_path / "report"))
    assert "llama-7b (as tiny-llama) / lora" in html and "llama-13b (as tiny-llama) / lora" in html
    assert "n=2" not in html  # two grid cells, not two seeds of one


def test_ablation_suites_get_sweep_lines_and_placement_bars(tmp_path):
    store = Store(tmp_path / "results")
    for size, score in ((64, 30.0), (256, 34.0)):
        store.write(ok(spec("series", {"bottleneck_size": size}, suite="llm_adapters/hparams"), {"gsm8k": score, "AQuA": 20.0}))
    for r, score in ((4, 31.0), (8, 33.0)):
        store.write(ok(spec("lora", {"r": r, "alpha": 2 * r}, suite="llm_adapters/hparams"), {"gsm8k": score, "AQuA": 20.0}))
    for modules, score in ((["o_proj"], 29.0), (["down_proj"], 33.0)):
        store.write(ok(spec("series", {"target_modules": modules}, suite="llm_adapters/placement"),
                       {"gsm8k": score, "AQuA": 19.0}))
    index = build(["llm_adapters/hparams", "llm_adapters/placement"], tmp_path / "results", tmp_path / "out")
    html = pages(index)
    sweep = next(index.parent.glob("*hparams*-sweep.png"))
    bars = next(index.parent.glob("*placement*-placement.png"))
    assert sweep.stat().st_size > 1000 and bars.stat().st_size > 1000
    assert "a line per sweep (lora r; series bottleneck_size)" in html  # LoRA's alpha follows r: one sweep
    assert "grouped bars (series by target_modules)" in html
    assert not list(index.parent.glob("*placement*-sweep.png"))  # target modules are not a numeric sweep
