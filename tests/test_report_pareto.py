"""The Pareto view (benchmark/report/pareto.py, plots.plot_pareto) and the collapsed-run flags
(benchmark/report/collapse.py), on hand-made stored results."""

import re

import pandas as pd
import pytest

from benchmark.registry.spec import TrainConfig, TrialSpec
from benchmark.report import build
from benchmark.report.cells import Row
from benchmark.report.collapse import SEED_SPREAD_POINTS, reasons
from benchmark.report.pareto import Point, frontier
from benchmark.result import Metric, TrialResult
from benchmark.store import Store

SUITE = "llm_adapters/math"
GIB = 2**30


def result(method, scores, seed=1, trainable=1_000_000, memory=None, seconds=None, suite=SUITE):
    spec = TrialSpec(suite=suite, suite_version="1", model="llama-7b", model_source="yahma/llama-7b-hf",
                     model_family="llama", method=method, method_args={}, train_data="math_10k",
                     eval_data=tuple(scores), train=TrainConfig(seed=seed))
    return TrialResult(spec=spec, metrics=[Metric(d, "math", "accuracy", v, 100) for d, v in scores.items()],
                       trainable_params=trainable, total_params=6_742_609_920, train_seconds=seconds,
                       eval_seconds=10.0, peak_memory_bytes=memory, device="cpu",
                       started_at="2024-01-01T00:00:00+00:00", finished_at="2024-01-01T00:01:00+00:00")


def _point(name, cost, score):
    return Point(Row(label=name, model="m", method_label=name, cells=[], average=score, trainable_params=None),
                 cost, score)


def test_frontier_keeps_the_runs_nothing_beats_on_both():
    a, b, c, d, e = (_point("a", 1, 30), _point("b", 4, 40), _point("c", 8, 35), _point("d", 4, 38),
                     _point("e", 16, 41))
    assert [p.row.label for p in frontier([c, e, a, b, d])] == ["a", "b", "e"]  # cheapest first
    # c costs more than b and scores less; d costs as much as b and scores less: both dominated
    tie = _point("b2", 4, 40)  # exactly b's cost and score: neither beats the other
    assert [p.row.label for p in frontier([a, b, tie])] == ["a", "b", "b2"]


@pytest.fixture(scope="module")
def pareto_report(tmp_path_factory):
    root = tmp_path_factory.mktemp("pareto")
    store = Store(root / "results")
    # On each cost: lora is cheapest, dora scores best, series is dominated by dora (costs more, scores less).
    # No run recorded its training time (results written before it was stored): that panel says so.
    store.write(result("lora", {"gsm8k": 30.0, "AQuA": 30.0}, trainable=1_000_000, memory=10 * GIB))
    store.write(result("dora", {"gsm8k": 40.0, "AQuA": 40.0}, trainable=4_000_000, memory=12 * GIB))
    store.write(result("series", {"gsm8k": 35.0, "AQuA": 35.0}, trainable=8_000_000, memory=20 * GIB))
    index = build([SUITE], root / "results", root / "report")
    return index


def _math_table(index):
    from benchmark.report.published import with_published
    from benchmark.report.tables import build_tables

    frame = Store(index.parent.parent / "results").read([SUITE])
    return next(t for t in with_published(build_tables(frame)) if t.group == "math")


def test_pareto_figure_joins_and_names_the_optimal_runs_and_says_what_is_missing(pareto_report):
    from benchmark.report.plots import pareto_figure

    figure, alt = pareto_figure(_math_table(pareto_report))
    params, memory, time = figure.axes
    for axes, costs in ((params, [1e6, 4e6]), (memory, [10.0, 12.0])):  # memory in GiB
        (line,) = axes.get_lines()
        assert list(line.get_xdata()) == costs and list(line.get_ydata()) == [30.0, 40.0]  # series not joined
        assert sorted(t.get_text() for t in axes.texts) == ["dora", "lora"]  # the optimal runs named, only them
        assert axes.get_xscale() == "log"
    assert not time.axison and "training time: not recorded" in time.texts[0].get_text()
    assert alt.endswith("trainable parameters: llama-7b / lora, llama-7b / dora; peak memory: llama-7b / lora, "
                        "llama-7b / dora; training time: not recorded for any run")


def test_pareto_figure_and_csv_are_in_the_report(pareto_report):
    out = pareto_report.parent
    page = next(out.glob("*_math.html")).read_text()
    png = next(out.glob("*_math-pareto.png"))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f'<img src="{png.name}"' in page
    assert re.search(r'alt="[^"]*trainable parameters, peak memory and training time \(three panels', page)
    assert re.search(r'<a href="[^"]*_math-pareto\.csv">Pareto data \(CSV\)</a>', page)
    frame = pd.read_csv(next(out.glob("*_math-pareto.csv")), keep_default_na=False, dtype=str)
    by = frame.set_index("Model / method")
    assert list(by.index) == ["llama-7b / dora", "llama-7b / lora", "llama-7b / series"]
    assert by.loc["llama-7b / series", "Pareto: trainable parameters"] == "no"
    assert by.loc["llama-7b / series", "Pareto: peak memory"] == "no"
    assert by.loc["llama-7b / dora", "Pareto: peak memory"] == "yes" and by.loc["llama-7b / lora", "Pareto: trainable parameters"] == "yes"
    assert float(by.loc["llama-7b / series", "Peak memory (bytes)"]) == 20 * GIB
    assert float(by.loc["llama-7b / dora", "Average"]) == 40.0 and by.loc["llama-7b / dora", "Trainable params"] == "4000000"
    assert set(frame["Training time (s)"]) == {""} and set(frame["Pareto: training time"]) == {""}  # not recorded


def test_a_row_that_trained_nothing_is_a_line_not_a_frontier_point(tmp_path):
    from benchmark.report.plots import pareto_figure

    store = Store(tmp_path / "results")
    store.write(result("lora", {"gsm8k": 30.0}, trainable=1_000_000, seconds=100.0))
    store.write(result("none", {"gsm8k": 5.0}, trainable=0, seconds=0.0))
    build([SUITE], tmp_path / "results", tmp_path / "report")
    figure, alt = pareto_figure(_math_table(tmp_path / "report" / "index.html"))
    params = figure.axes[0]
    joined, flat = params.get_lines()
    assert list(joined.get_xdata()) == [1e6] and list(flat.get_ydata()) == [5.0, 5.0]  # axhline at the zero-shot's score
    assert "peak memory: not recorded for any run" in alt


# ---- collapsed or unstable runs ----

def test_reasons_at_chance_and_over_the_spread_threshold():
    assert reasons([20.0], 20.0) == ["collapsed: 20.0 is at or below the chance level 20.0"]
    assert reasons([20.1], 20.0) == []
    assert reasons([30.0, 30.0 + SEED_SPREAD_POINTS], 20.0) == []  # exactly the threshold: not flagged
    (why,) = reasons([30.0, 30.1 + SEED_SPREAD_POINTS], None)
    assert why.startswith("unstable: the 2 seeds spread 10.1 points")
    assert reasons([11.5, 60.0], 50.0)[0] == "collapsed: 1 of 2 seeds at or below the chance level 50.0: 11.5"


@pytest.fixture(scope="module")
def flagged_report(tmp_path_factory):
    root = tmp_path_factory.mktemp("flags")
    store = Store(root / "results")
    store.write(result("lora", {"gsm8k": 30.0, "AQuA": 19.0}))  # AQuA: 5 options, chance 20: collapsed
    store.write(result("dora", {"gsm8k": 25.0, "AQuA": 40.0}, seed=1))  # gsm8k seeds 25 and 45: unstable
    store.write(result("dora", {"gsm8k": 45.0, "AQuA": 42.0}, seed=2))
    store.write(result("series", {"gsm8k": 30.0, "AQuA": 30.0}, seed=1))  # a normal run, two close seeds
    store.write(result("series", {"gsm8k": 34.0, "AQuA": 31.0}, seed=2))
    index = build([SUITE], root / "results", root / "report")
    return index.read_text(), next(index.parent.glob("*_math.html")).read_text()


def _run_row(page, label):
    return next(r for r in re.findall(r"<tr><td>(.*?)</tr>", page, flags=re.S) if r.startswith(label))


def _cells(row):
    return re.findall(r'<td class="([^"]*)"[^>]*>(.*?)</td>', row, flags=re.S)


def test_collapsed_and_unstable_cells_carry_a_marker_saying_why(flagged_report):
    _, page = flagged_report
    gsm8k, aqua, average = _cells(_run_row(page, "llama-7b / lora"))[:3]
    assert "flagged" not in gsm8k[0] and 'class="flag"' not in gsm8k[1]
    assert "flagged" in aqua[0]
    assert '<span class="flag" title="collapsed: 19.0 is at or below the chance level 20.0">&#9888; collapsed</span>' in aqua[1]
    assert "flagged" not in average[0]  # the flags are per dataset
    dora_gsm8k, dora_aqua = _cells(_run_row(page, "llama-7b / dora"))[:2]
    assert re.search(r'<span class="flag" title="unstable: the 2 seeds spread 20\.0 points \(25\.0 to 45\.0; more than 10 '
                     r'is flagged\)">&#9888; unstable</span>', dora_gsm8k[1])
    assert "flagged" not in dora_aqua[0]  # 40 and 42: close, above chance
    assert 'class="flag"' not in _run_row(page, "llama-7b / series")


def test_flagged_cells_are_listed_on_the_index(flagged_report):
    index, _ = flagged_report
    section = index[index.index("Collapsed or unstable runs"):]
    body = section[section.index("<tbody>"):section.index("</tbody>")]
    rows = [[re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td>(.*?)</td>", r, flags=re.S)]
            for r in re.findall(r"<tr>(.*?)</tr>", body, flags=re.S)]
    assert [r[1:5] for r in rows] == [["llama-7b / dora", "gsm8k", "35.0 ± 14.1 (n=2)", "0.0"],
                                      ["llama-7b / lora", "AQuA", "19.0", "20.0"]]
    assert all(r[0] == "llm_adapters/math: math" for r in rows)
    assert rows[0][5].startswith("unstable:") and rows[1][5].startswith("collapsed:")
    assert "series" not in section[:section.index("</table>")]


def test_index_says_when_nothing_is_flagged(pareto_report):
    index = pareto_report.read_text()
    assert "Collapsed or unstable runs" in index and "None: no run at or below chance" in index
