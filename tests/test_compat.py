"""Compatibility with what is already stored: every shipped suite keeps its trial ids, and results files
written by earlier versions (tests/fixtures/results_v1, written by the store before the catalogue-entry
redesign) still read and report."""

import json
import shutil
from pathlib import Path

from benchmark.paths import SUITES_DIR
from benchmark.registry import plan, suite_files
from benchmark.store import Store

FIXTURES = Path(__file__).parent / "fixtures"


def test_every_shipped_suite_keeps_its_trial_ids():
    expected = json.loads((FIXTURES / "trial_ids.json").read_text())
    seen = {}
    for file in suite_files():
        name = str(file.relative_to(SUITES_DIR).with_suffix(""))
        for embedded in (False, True):
            key = f"{name}{' --embedded' if embedded else ''}"
            if key in expected:
                seen[key] = sorted(spec.trial_id for spec in plan(name, embedded=embedded)[1])
    assert seen.keys() == expected.keys()
    changed = {key for key in expected if seen[key] != expected[key]}
    assert not changed, f"trial ids changed for: {sorted(changed)}"


def test_results_written_before_still_read(tmp_path):
    root = tmp_path / "results"
    shutil.copytree(FIXTURES / "results_v1", root)
    store = Store(root)
    frame = store.read()
    assert set(frame["trial_id"]) == {"d894af4969cebc3d", "a6fc242d6a066d92", "b6c53ec28bff238f"}
    assert set(frame.loc[frame["status"] == "ok", "trial_id"]) == {"d894af4969cebc3d", "b6c53ec28bff238f"}
    assert store.ok_trial_ids("smoke-embedded") == {"d894af4969cebc3d"}
    preds = store.read_predictions("pt_unipelt/glue-embedded", "b6c53ec28bff238f", "emb-cola")
    assert len(preds) == 4
