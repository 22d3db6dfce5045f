"""Issue 19's acceptance, end to end on the embedded rehearsals (slow: minutes on 2 cores).

- `make demo`'s suite: every cost column is filled for every method, and the cost table and the Pareto figures
  appear in its report, opened in headless Chromium;
- `peft-bench run llm_adapters/quirks --embedded` then `report`: a quirk page with one row per quirk, a number with an
  interval for every dataset the quirk can act on, and the extraction quirks produced by rescore without training."""

import re

import pytest

from benchmark.cli import main
from benchmark.registry.quirks import QUIRKS, acts_on
from benchmark.store import Store
from tests.browser import chrome, console_errors, needs_browser

pytestmark = pytest.mark.slow
COST = ("train_peak_memory_bytes", "train_p99_memory_bytes", "eval_peak_memory_bytes", "eval_p99_memory_bytes",
        "train_tokens", "adapter_bytes", "train_seconds", "eval_seconds", "base_decode_tokens_per_s",
        "decode_tokens_per_s", "forgetting_base_loss", "forgetting_loss")


@needs_browser
def test_demo_fills_every_cost_column_and_its_report_shows_them(tmp_path):
    results, reports = tmp_path / "results", tmp_path / "reports"
    assert main(["run", "smoke", "--results", str(results)]) == 0
    rows = Store(results).read()
    for method, mine in rows.groupby("method"):
        for column in COST:
            assert mine[column].notna().all(), (method, column)
        merges = method in ("lora", "dora", "ia3")  # the methods that declare Method.merges
        assert mine["merged_decode_tokens_per_s"].notna().all() == merges, method
    assert main(["report", "smoke", "--results", str(results), "--out", str(reports)]) == 0
    driver = chrome()
    try:
        for page in sorted((reports / "smoke").glob("0*.html")):
            driver.get(page.resolve().as_uri())
            assert console_errors(driver) == []
            heads = [th.text for th in driver.find_elements("css selector", "table.cost thead th")]
            assert {"Inference overhead", "Forgetting (loss change)"} <= {h.replace("\n", " ") for h in heads}
            for line in driver.find_elements("css selector", "table.cost tbody tr"):
                cells = [td.text for td in line.find_elements("tag name", "td")]
                merged = heads.index("Inference overhead, merged") if "Inference overhead, merged" in heads else None
                assert all(text != "-" for i, text in enumerate(cells) if i != merged), cells
            (pareto,) = driver.find_elements("css selector", "img[src$='-pareto.png']")
            assert pareto.get_property("naturalWidth") > 1000
    finally:
        driver.quit()


def test_the_quirk_ledger_rehearsal_measures_every_quirk(tmp_path, monkeypatch):
    results, reports = tmp_path / "results", tmp_path / "reports"
    assert main(["run", "llm_adapters/quirks", "--embedded", "--results", str(results)]) == 0
    evals = Store(results).read_evals()
    assert set(evals["source"]) == {"rescore"}  # the extraction quirks: read again, no eval, no new trial
    assert len(evals) == 4 * 2 * 3  # faithful trials x eval sets x extraction quirks
    assert main(["report", "llm_adapters/quirks", "--embedded", "--results", str(results), "--out", str(reports)]) == 0
    page = (reports / "llm_adapters__quirks-embedded" / "quirks-llm-adapters.html").read_text()
    table = page.split('<table class="quirks">', 1)[1].split("</table>", 1)[0]
    rows = dict(re.findall(r'<tr id="quirk-([a-z_]+)">(.*?)</tr>', table, flags=re.S))
    assert set(rows) == {q.name for q in QUIRKS.values() if q.study == "llm-adapters"}
    heads = re.findall(r"<th>([^<]*)</th>", table.split("</thead>", 1)[0])
    datasets = [h for h in heads if h.startswith("emb-")]
    rules = {"emb-boolq": "choice", "emb-piqa": "choice", "emb-gsm8k": "number", "emb-AQuA": "letter"}
    assert sorted(datasets) == sorted(rules)
    for name, body in rows.items():
        cells = re.findall(r"<td[^>]*>(.*?)</td>", body, flags=re.S)[-len(datasets):]
        for dataset, cell in zip(datasets, cells):
            assert "95% CI [" in cell, (name, dataset)  # a number with an interval for every dataset
            if not acts_on(name, rules[dataset]):  # where the quirk cannot act, it measures zero
                assert '<span class="value">+0.0</span>' in cell and "95% CI [+0.0, +0.0]" in cell, (name, dataset, cell)
