"""Roll-ups: a process's last trial files folded into one batch file that reads stand in for them."""

from __future__ import annotations

import pyarrow.parquet as pq

from benchmark.store import Store, reader
from benchmark.store import store as store_module
from tests.test_store import failed_result, make_spec, ok_result


def _files(root, folder):
    return sorted(p.name for p in (root / "llm_adapters__math" / folder).glob("*.parquet"))


def test_every_rollup_every_trials_one_rollup_covers_them_and_reads_skip_them(tmp_path, monkeypatch):
    monkeypatch.setattr(store_module, "ROLLUP_EVERY", 3)
    store = Store(tmp_path)
    specs = [make_spec(seed=i) for i in range(7)]
    for spec in specs:
        store.write(ok_result(spec, gsm=float(spec.train.seed)))
    rollups = [n for n in _files(tmp_path, "batches") if n.startswith(store_module.ROLLUP_PREFIX)]
    assert len(rollups) == 2 and len(_files(tmp_path, "trials")) == 7  # trial files stay: nothing is deleted
    opened = []
    real = reader._read_one
    monkeypatch.setattr(reader, "_read_one", lambda loc, path, names, check: opened.append(path) or real(loc, path, names, check))
    frame = Store(tmp_path).read()
    assert sorted(frame["trial_id"].unique()) == sorted(s.trial_id for s in specs)
    assert len(frame) == 2 * 7  # two metrics per trial, each once
    assert len(opened) == 2 + 1  # two roll-ups and the one trial file written after the last of them
    gsm = frame[frame["eval_data"] == "gsm8k"].set_index("trial_id")["value"]
    assert {tid: gsm[tid] for tid in gsm.index} == {s.trial_id: float(s.train.seed) for s in specs}


def test_a_rewritten_trial_file_is_read_again_and_a_later_attempt_wins(tmp_path, monkeypatch):
    monkeypatch.setattr(store_module, "ROLLUP_EVERY", 2)
    store = Store(tmp_path)
    first, second = make_spec(seed=1), make_spec(seed=2)
    store.write(failed_result(first))
    store.write(ok_result(second))  # roll-up covers the failed attempt of `first` and `second`
    store.write(ok_result(first, gsm=77.0))  # --retry-failed: a new file, not covered
    frame = Store(tmp_path).read()
    assert set(frame[frame["trial_id"] == first.trial_id]["status"]) == {"ok"}
    assert 77.0 in set(frame[frame["trial_id"] == first.trial_id]["value"])
    history = Store(tmp_path).read(history=True)  # every attempt once: roll-ups are copies, not attempts
    assert sorted(history.groupby("trial_id")["status"].apply(sorted).loc[first.trial_id]) == ["failed", "ok", "ok"]
    assert len(history[history["trial_id"] == second.trial_id]) == 2


def test_a_damaged_rollup_covers_nothing_and_compaction_still_folds_everything(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(store_module, "ROLLUP_EVERY", 2)
    store = Store(tmp_path)
    specs = [make_spec(seed=i) for i in range(4)]
    for spec in specs:
        store.write(ok_result(spec))
    rollup = next((tmp_path / "llm_adapters__math" / "batches").glob(store_module.ROLLUP_PREFIX + "*"))
    rollup.write_bytes(b"not parquet")
    frame = Store(tmp_path).read()
    assert sorted(frame["trial_id"].unique()) == sorted(s.trial_id for s in specs)  # its trial files are read
    assert Store(tmp_path).compact() > 0
    consolidated = pq.read_table(tmp_path / "llm_adapters__math" / "consolidated.parquet")
    assert sorted(set(consolidated["trial_id"].to_pylist())) == sorted(s.trial_id for s in specs)


def test_the_pending_files_belong_to_the_store_instance_and_a_worker_reuses_one(tmp_path, monkeypatch):
    monkeypatch.setattr(store_module, "ROLLUP_EVERY", 2)
    for seed in range(3):  # a new Store per trial: no instance reaches ROLLUP_EVERY files
        Store(tmp_path).write(ok_result(make_spec(seed=seed)))
    assert not [n for n in _files(tmp_path, "batches") if n.startswith(store_module.ROLLUP_PREFIX)]
    worker = Store.for_worker(tmp_path)  # one instance per root for the process
    assert Store.for_worker(str(tmp_path)) is worker and Store.for_worker(tmp_path / "other") is not worker
    for seed in range(3, 5):
        Store.for_worker(tmp_path).write(ok_result(make_spec(seed=seed)))
    assert len([n for n in _files(tmp_path, "batches") if n.startswith(store_module.ROLLUP_PREFIX)]) == 1
