"""The report as a user opens it: straight from the file system in headless Chromium (Debian `chromium`
and `chromium-driver`, installed by `make browser`); skipped where they are not installed."""

import pytest

from benchmark.registry.spec import TrainConfig, TrialSpec
from benchmark.report import build
from benchmark.result import Metric, Prediction, TrialResult
from benchmark.store import Store
from tests.browser import chrome, needs_browser

pytestmark = needs_browser
EVIL = "<script>alert('x')</script>"


def _result(method: str, scores: dict, family: str, **kw) -> TrialResult:
    spec = TrialSpec(suite="browser", suite_version="1", model="llama-7b", model_source="yahma/llama-7b-hf",
                     model_family="llama", method=method, method_args={"r": 8} if method == "lora" else {},
                     train_data="math_10k", eval_data=tuple(scores), train=TrainConfig())
    return TrialResult(spec=spec, metrics=[Metric(d, family, "accuracy", v, 100) for d, v in scores.items()],
                       trainable_params=4_194_304, total_params=6_742_609_920, train_seconds=60.0, eval_seconds=60.0,
                       device="cpu", started_at="2024-01-01T00:00:00+00:00", finished_at="2024-01-01T00:02:00+00:00", **kw)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    store = Store(root / "results")
    hostile = [Prediction(id="1", prompt="2+2?", output=EVIL, extracted="4", gold="4", correct=True),
               Prediction(id="2", prompt="3+3?", output="7", extracted="7", gold="6", correct=False)]
    store.write(_result("lora", {"gsm8k": 50.0, "AQuA": 20.5}, "math", predictions={"gsm8k": hostile}))
    store.write(_result("series", {"gsm8k": 28.0, "AQuA": 18.0}, "math"))
    store.write(_result("lora", {EVIL: 50.0}, "commonsense"))  # a hostile dataset name, in its own family
    index = build(["browser"], root / "results", root / "report")
    driver = chrome()
    try:
        driver.set_window_size(1300, 1800)
        driver.get(index.resolve().as_uri())
        yield driver, root, index
    finally:
        driver.quit()


def _open(driver, path):
    driver.get(path.resolve().as_uri())
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def test_report_loads_without_console_errors_and_shows_tables_and_figures(page):
    driver, root, index = page
    assert driver.title.startswith("peft-bench report")
    assert [e for e in driver.get_log("browser") if e["level"] == "SEVERE"] == []
    links = [a.get_attribute("href") for a in driver.find_elements("css selector", "ul.tables a[href$='.html']")]
    assert len(links) == 2  # math and commonsense pages
    math = next(p for p in index.parent.glob("*_math.html"))
    assert _open(driver, math) == []
    assert len(driver.find_elements("css selector", "table.results tbody:not(.reference) tr")) == 2
    cost_rows = driver.find_elements("css selector", "table.cost tbody tr")  # the cost table: one line per run row
    assert len(cost_rows) == 2 and all(r.is_displayed() for r in cost_rows)
    images = driver.find_elements("tag name", "img")
    assert images and all(img.get_property("naturalWidth") > 0 for img in images)  # every figure decoded
    assert all(img.get_attribute("alt") for img in images)
    assert "gsm8k" in driver.find_element("tag name", "body").text
    shot = root / "report.png"
    driver.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    run_link = driver.find_element("css selector", "span.runs a")
    run_link.click()  # the drill-down of the trial behind a number
    assert [e for e in driver.get_log("browser") if e["level"] == "SEVERE"] == []
    assert driver.find_element("tag name", "h1").text.startswith("Trial ")
    driver.save_screenshot(str(root / "trial.png"))


def test_hostile_strings_render_as_text_and_never_run(page):
    from selenium.common.exceptions import NoAlertPresentException

    driver, _, index = page
    commonsense = next(p for p in index.parent.glob("*_commonsense.html"))
    lora_math = next(p for p in (index.parent / "trials").glob("*.html") if "2+2?" in p.read_text())
    for path in (commonsense, lora_math):  # a dataset name, a model output
        assert _open(driver, path) == []
        assert EVIL in driver.find_element("tag name", "body").text  # shown literally
        with pytest.raises(NoAlertPresentException):
            driver.switch_to.alert.text  # noqa: B018 - the script never ran
        assert driver.execute_script("return document.querySelectorAll('script').length") == 0


def test_pareto_figure_loads_and_collapsed_cells_are_flagged(page):
    driver, _, index = page
    math = next(p for p in index.parent.glob("*_math.html"))
    assert _open(driver, math) == []
    (pareto,) = driver.find_elements("css selector", "img[src$='-pareto.png']")
    assert pareto.get_property("naturalWidth") > 1000  # three panels side by side, decoded
    assert "peak memory and training time" in pareto.get_attribute("alt")
    (flag,) = driver.find_elements("css selector", "td.flagged span.flag")  # series scored 18.0 on AQuA (chance 20)
    assert flag.is_displayed() and flag.text == "⚠ collapsed"
    assert flag.get_attribute("title") == "collapsed: 18.0 is at or below the chance level 20.0"
    assert _open(driver, index) == []
    listed = driver.find_elements("css selector", "table.flagged tbody tr")
    assert len(listed) == 1 and "llama-7b / series" in listed[0].text and "AQuA" in listed[0].text
