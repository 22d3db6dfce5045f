"""The quirk ledger page (benchmark/report/quirks.py) from hand-made stored results: a faithful trial per method, a
generation-quirk variant of each (dropout_at_eval on, off in llm-adapters), a training-quirk variant of one
(train_on_inputs off) and a rescore record of one (aqua_first_letter off, an extraction quirk). The page's and the
CSV's effects and flips equal a hand computation from the verdicts below; the interval holds the effect and a rebuild
gives it again; without variants there is no page; the page loads in headless Chromium."""

import re

import pandas as pd
import pytest
from markupsafe import escape

from benchmark.registry.quirks import QUIRKS, label
from benchmark.registry.spec import EvalConfig, TrainConfig, TrialSpec
from benchmark.report import build
from benchmark.report.quirks import NOT_MEASURED, Pair, pooled_effect
from benchmark.result import Metric, Prediction, TrialResult
from benchmark.store import Store
from tests.browser import chrome, needs_browser

SUITE = "llm_adapters/quirks"
LABEL_AQUA_OFF = label("llm-adapters", {"aqua_first_letter": False})  # the rescore record's protocol
LLM_QUIRKS = [q.name for q in QUIRKS.values() if q.study == "llm-adapters"]

# Verdicts by prediction id 0..9 ("1" correct). Faithful = the protocol's defaults.
FAITHFUL = {("lora", "gsm8k"): "1110010100", ("lora", "AQuA"): "1111100000",
            ("series", "gsm8k"): "0000011111", ("series", "AQuA"): "1100000000"}
DROPOUT_ON = {("lora", "gsm8k"): "1011000100", ("series", "gsm8k"): "0001111111",  # gsm8k flips below
              ("lora", "AQuA"): FAITHFUL[("lora", "AQuA")], ("series", "AQuA"): FAITHFUL[("series", "AQuA")]}
# lora gsm8k: ids 1, 5 correct->wrong, id 3 wrong->correct; series gsm8k: ids 3, 4 wrong->correct.
# Pooled: n 20, 2 correct->wrong, 3 wrong->correct, effect (3 - 2) / 20 = +5.0 points. AQuA: unchanged, 0.0.
# ids 3, 4 right only with it off: correct->wrong, -20.0; AQuA unchanged.
TRAIN_ON_INPUTS_OFF = {("lora", "gsm8k"): "1111110100", ("lora", "AQuA"): FAITHFUL[("lora", "AQuA")]}
AQUA_OFF = {("lora", "AQuA"): "0011100000"}  # the rule on: ids 0, 1 wrong->correct: effect +20.0


def spec(method: str, datasets, quirks=None) -> TrialSpec:
    return TrialSpec(suite=SUITE, suite_version="1", model="llama-7b", model_source="yahma/llama-7b-hf",
                     model_family="llama", method=method, method_args={}, train_data="math_10k",
                     eval_data=tuple(datasets), train=TrainConfig(seed=42), eval=EvalConfig(quirks=quirks or {}))


def predictions(verdicts: str, shuffled: bool = False, extra: bool = False) -> list[Prediction]:
    rows = [Prediction(id=str(i), prompt=f"q{i}", output=f"out {i}", extracted="1" if v == "1" else "2", gold="1",
                       correct=v == "1") for i, v in enumerate(verdicts)]
    if extra:  # an example only this side predicted: never paired
        rows.append(Prediction(id="99", prompt="q99", output="out", extracted="1", gold="1", correct=True))
    return rows[::-1] if shuffled else rows


def result(method: str, verdicts: dict, quirks=None, **kw) -> TrialResult:
    mine = {d: v for (m, d), v in verdicts.items() if m == method}
    preds = {d: predictions(v, **kw) for d, v in mine.items()}
    metrics = [Metric(d, "math", "accuracy", 100.0 * sum(p.correct for p in rows) / len(rows), len(rows))
               for d, rows in preds.items()]
    return TrialResult(spec=spec(method, mine, quirks), metrics=metrics, predictions=preds, trainable_params=1000,
                       total_params=10_000, device="cpu", started_at="2024-01-01T00:00:00+00:00",
                       finished_at="2024-01-01T00:01:00+00:00")


def write_faithful(store: Store) -> None:
    for method in ("lora", "series"):
        store.write(result(method, FAITHFUL))


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("quirks")
    store = Store(root / "results")
    write_faithful(store)
    for method in ("lora", "series"):  # ids in another order, one unpaired example: matched by id
        store.write(result(method, DROPOUT_ON, {"dropout_at_eval": "on"}, shuffled=True, extra=True))
    store.write(result("lora", TRAIN_ON_INPUTS_OFF, {"train_on_inputs": "off"}))
    faithful_lora = result("lora", FAITHFUL)
    rescored = predictions(AQUA_OFF[("lora", "AQuA")])
    store.write_eval(TrialResult(spec=faithful_lora.spec, metrics=[Metric("AQuA", "math", "accuracy", 30.0, 10)],
                                 predictions={"AQuA": rescored}), "rescore", LABEL_AQUA_OFF)
    index = build([SUITE], root / "results", root / "report")
    again = build([SUITE], root / "results", root / "again")
    return index, again


def csv(index) -> pd.DataFrame:
    return pd.read_csv(index.parent / "quirks.csv", keep_default_na=False, dtype=str)


def by_quirk(frame: pd.DataFrame) -> dict:
    return {(r.quirk, r.dataset): r for r in frame.itertuples()}


def test_effects_and_flips_equal_the_hand_computation(report):
    index, _ = report
    rows = by_quirk(csv(index))
    assert {(q, d) for q, d in rows} == {(q, d) for q in LLM_QUIRKS for d in ("gsm8k", "AQuA")}
    expected = {("dropout_at_eval", "gsm8k"): (5.0, 2, 3, 20, 2), ("dropout_at_eval", "AQuA"): (0.0, 0, 0, 20, 2),
                ("train_on_inputs", "gsm8k"): (-20.0, 2, 0, 10, 1),
                ("train_on_inputs", "AQuA"): (0.0, 0, 0, 10, 1), ("aqua_first_letter", "AQuA"): (20.0, 0, 2, 10, 1)}
    for key, (effect, c2w, w2c, n, pairs) in expected.items():
        row = rows[key]
        assert float(row.effect) == pytest.approx(effect), key
        assert (int(row.correct_to_wrong), int(row.wrong_to_correct), int(row.n), int(row.pairs)) == (c2w, w2c, n, pairs)
        assert int(row.flips) == c2w + w2c
        assert float(row.low) <= float(row.effect) <= float(row.high), key
    assert float(rows[("dropout_at_eval", "gsm8k")].low) < 5.0 < float(rows[("dropout_at_eval", "gsm8k")].high)
    assert (rows[("dropout_at_eval", "AQuA")].low, rows[("dropout_at_eval", "AQuA")].high) == ("0.0", "0.0")
    for key in set(rows) - set(expected):  # measured on neither side: empty, never a 0
        assert (rows[key].effect, rows[key].n) == ("", "0"), key


def test_the_interval_is_reproducible(report):
    index, again = report
    assert csv(index).equals(csv(again))
    pairs = [Pair("q", "llm-adapters", "d", "m", ("a", "b"), on=pd.Series([1, 0, 1, 1]).astype(bool).to_numpy(),
                  off=pd.Series([0, 0, 1, 0]).astype(bool).to_numpy(), on_value=75.0, off_value=25.0)]
    first, second = pooled_effect(pairs), pooled_effect(pairs)
    assert first == second and first.effect == 50.0 and first.low <= 50.0 <= first.high


def test_the_page_shows_one_row_per_quirk_with_its_stage_source_and_numbers(report):
    index, _ = report
    page = (index.parent / "quirks-llm-adapters.html").read_text()
    table = page.split('<table class="quirks">', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r'<tr id="quirk-([a-z_]+)">(.*?)</tr>', table, flags=re.S)
    assert [name for name, _ in rows] == LLM_QUIRKS  # the study's quirks (select_on_reported_set is pt-unipelt's)
    cells = {name: re.findall(r"<td[^>]*>(.*?)</td>", body, flags=re.S) for name, body in rows}
    gsm8k, aqua = cells["dropout_at_eval"][-2:]
    assert "+5.0" in gsm8k and "flips 2 correct→wrong, 3 wrong→correct (n=20, 2 pairs)" in gsm8k
    assert "95% CI [" in gsm8k and "+0.0" in aqua and "95% CI [+0.0, +0.0]" in aqua
    # the AQuA letter rule cannot move gsm8k (a number set): said so, not "not measured"
    assert cells["aqua_first_letter"][-2] == "0 by construction: acts on letter sets only"
    assert "+20.0" in cells["aqua_first_letter"][-1]
    assert cells["last_number"][-2:] == [NOT_MEASURED, "0 by construction: acts on number sets only"]
    quirk = QUIRKS["no_attention_mask"]
    assert cells["no_attention_mask"][1:3] == ["generation", "off"]
    assert str(escape(quirk.description)) in page and str(escape(quirk.source)) in page  # as autoescape writes them
    # The tables' numbers with and without: the stored scores of each side (the variant's include its extra example).
    section = page.split('id="numbers-dropout_at_eval"', 1)[1].split("</table>", 1)[0]
    lines = dict(re.findall(r"<tr><td>(.*?)</td>(.*?)</tr>", section, flags=re.S))
    assert re.findall(r"<td[^>]*>(.*?)</td>", lines["llama-7b / lora"]) == ["on 45.5 / off 50.0", "on 54.5 / off 50.0"]
    section = page.split('id="numbers-aqua_first_letter"', 1)[1].split("</table>", 1)[0]
    assert "on 50.0 / off 30.0" in section and 'id="numbers-last_number"' not in page
    assert 'href="quirks-llm-adapters.html"' in index.read_text()


def test_no_quirk_variant_no_page(tmp_path):
    store = Store(tmp_path / "results")
    write_faithful(store)
    faithful = result("lora", FAITHFUL)  # a whole-protocol rescore is no quirk measurement
    store.write_eval(TrialResult(spec=faithful.spec, metrics=[Metric("AQuA", "math", "accuracy", 50.0, 10)],
                                 predictions={"AQuA": predictions(FAITHFUL[("lora", "AQuA")])}), "rescore", "strict")
    index = build([SUITE], tmp_path / "results", tmp_path / "report")
    assert not list(index.parent.glob("quirks*"))
    assert "Protocol quirks" not in index.read_text()


@needs_browser
def test_the_page_loads_in_headless_chromium(report):
    index, _ = report
    driver = chrome()
    try:
        driver.get(index.resolve().as_uri())
        driver.find_element("css selector", "ul.quirk-studies a").click()
        assert driver.title == "Protocol quirks: llm-adapters"
        assert [e for e in driver.get_log("browser") if e["level"] == "SEVERE"] == []
        rows = driver.find_elements("css selector", "table.quirks tbody tr")
        assert len(rows) == len(LLM_QUIRKS) and all(r.is_displayed() for r in rows)
        datasets = [th.text for th in driver.find_elements("css selector", "table.quirks thead th")][5:]
        assert datasets == ["gsm8k", "AQuA"]
        for row in rows:
            cells = row.find_elements("css selector", "td")[5:]
            assert len(cells) == len(datasets)
            for cell in cells:  # a number with its interval, "0 by construction" or "not measured"
                assert re.fullmatch(r"[+-]\d+\.\d\n95% CI \[[+-]\d+\.\d, [+-]\d+\.\d\]\nflips .*", cell.text,
                                    flags=re.S) or cell.text == NOT_MEASURED or cell.text.startswith(
                                        "0 by construction: acts on "), cell.text
        measured = driver.find_elements("css selector", "table.quirks td.effect")
        assert len(measured) == 5  # dropout_at_eval and train_on_inputs x 2 datasets, aqua_first_letter on AQuA
    finally:
        driver.quit()


def test_a_variant_is_a_table_row_of_its_own_never_a_seed_of_the_faithful_row(report):
    index, _ = report
    page = next(index.parent.glob("*_math.html")).read_text()
    page = page.split('<table class="results">', 1)[1].split("</table>", 1)[0]
    rows = dict(re.findall(r"<tr><td>(llama-7b / [^<]*)</td><td[^>]*>(?:<strong>)?([^<]*)<", page))
    assert rows["llama-7b / lora [protocol=llm-adapters]"] == "50.0"  # the faithful trial alone (not n=3)
    assert rows["llama-7b / lora [protocol=llm-adapters.dropout_at_eval-on]"] == "45.5"
