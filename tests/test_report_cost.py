"""The cost table (benchmark/report/cost.py) on each table page and in `<table>-cost.csv`, from hand-made results:
two seeds of one row with known costs show their means; a row stored before the costs were measured shows "-"."""

import re

import pandas as pd
import pytest

from benchmark.registry.spec import TrainConfig, TrialSpec
from benchmark.report import build
from benchmark.report.cost import MEASURES
from benchmark.result import Metric, TrialResult
from benchmark.store import Store

SUITE = "llm_adapters/math"
MIB = 2**20
LORA_COSTS = [  # two seeds: each cost's mean is the midpoint
    dict(adapter_bytes=16 * MIB, train_seconds=100.0, eval_seconds=20.0, train_tokens=1_000_000,
         train_peak_memory_bytes=2048 * MIB, train_p99_memory_bytes=1024 * MIB, eval_peak_memory_bytes=512 * MIB,
         eval_p99_memory_bytes=256 * MIB),
    dict(adapter_bytes=16 * MIB, train_seconds=140.0, eval_seconds=40.0, train_tokens=1_000_000,
         train_peak_memory_bytes=4096 * MIB, train_p99_memory_bytes=2048 * MIB, eval_peak_memory_bytes=1536 * MIB,
         eval_p99_memory_bytes=768 * MIB),
]


def result(method, seed, **costs):
    spec = TrialSpec(suite=SUITE, suite_version="1", model="llama-7b", model_source="yahma/llama-7b-hf",
                     model_family="llama", method=method, method_args={}, train_data="math_10k",
                     eval_data=("gsm8k",), train=TrainConfig(seed=seed))
    return TrialResult(spec=spec, metrics=[Metric("gsm8k", "math", "accuracy", 30.0 + seed, 100)],
                       trainable_params=costs.pop("trainable_params", 4_194_304), total_params=6_742_609_920,
                       device="cpu", started_at="2024-01-01T00:00:00+00:00",
                       finished_at="2024-01-01T00:01:00+00:00", **costs)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("cost")
    store = Store(root / "results")
    for seed, costs in enumerate(LORA_COSTS, start=1):
        store.write(result("lora", seed, **costs))
    store.write(result("dora", 1, trainable_params=None))  # as stored before schema 5: no cost but its score
    build([SUITE], root / "results", root / "report")
    out = root / "report"
    return next(out.glob("*_math.html")).read_text(), pd.read_csv(next(out.glob("*_math-cost.csv")), dtype=str,
                                                                  keep_default_na=False)


def _page_rows(page: str) -> dict[str, list[str]]:
    """The cost table's rows on the page: label -> its cells' text."""
    table = page.split("<h2>Cost</h2>", 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr><td>(.*?)</td>(.*?)</tr>", table, flags=re.S)
    return {label: re.findall(r"<td[^>]*>(.*?)</td>", cells) for label, cells in rows}


def test_the_page_shows_each_rows_mean_costs_under_the_main_table(report):
    page, _ = report
    assert page.index('<table class="results">') < page.index("<h2>Cost</h2>") < page.index("<h2>Figures</h2>")
    headings = re.findall(r"<th>(.*?)</th>", page.split("<h2>Cost</h2>", 1)[1].split("</thead>", 1)[0])
    assert headings == ["Model / method", *(m.heading for m in MEASURES)]
    rows = _page_rows(page)
    # the inference overhead (adapted, merged) and forgetting were not recorded here: tests/test_cost_overhead.py
    assert rows["llama-7b / lora"] == ["4.2M", "16.00 MiB", "2.0 min", "30.0 s", "1.0M", "3.00 GiB", "1.50 GiB",
                                       "1.00 GiB", "512.00 MiB", "-", "-", "-"]
    assert rows["llama-7b / dora"] == ["-"] * len(MEASURES)
    assert '<td class="missing">-</td>' in page  # greyed like the main table's placeholders
    assert re.search(r'<a href="[^"]*_math-cost\.csv">cost \(CSV\)</a>', page)


def test_the_csv_has_the_same_means_as_stored(report):
    _, frame = report
    by = frame.set_index("Model / method")
    lora = by.loc["llama-7b / lora"]
    assert lora["Trainable params"] == "4194304" and lora["Adapter size (bytes)"] == str(16 * MIB)
    assert float(lora["Training time (s)"]) == 120.0 and float(lora["Evaluation time (s)"]) == 30.0
    assert lora["Training tokens"] == "1000000"
    assert [lora[c] for c in ("Training peak memory (bytes)", "Training p99 memory (bytes)",
                              "Evaluation peak memory (bytes)", "Evaluation p99 memory (bytes)")] == \
        [str(3072 * MIB), str(1536 * MIB), str(1024 * MIB), str(512 * MIB)]
    assert set(by.loc["llama-7b / dora"]) == {""}  # not recorded: empty, never 0
