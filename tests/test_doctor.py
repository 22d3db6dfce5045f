"""`peft-bench doctor`: damaged, foreign, temporary and old-schema files are listed, never touched."""

import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from benchmark.cli import main
from benchmark.store import Store
from benchmark.store.doctor import diagnose
from benchmark.store.writer import trial_table
from tests.test_store import failed_result, make_spec, ok_result

SUITE = "llm_adapters/math"


def snapshot(root: Path) -> dict[str, str]:
    """Every file under root -> a hash of its bytes: the doctor must leave this unchanged."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def damaged_store(root: Path) -> tuple[Store, dict[str, Path]]:
    """A store with two good trials plus one of each fault the doctor must name."""
    store = Store(root)
    good = [make_spec(seed=1), make_spec(seed=2)]
    for spec in good:
        store.write(ok_result(spec))
    trials = root / "llm_adapters__math" / "trials"
    whole = trials / f"{good[0].trial_id}.parquet"
    truncated = trials / "0000000000trunc.parquet"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])  # a write cut off mid-file
    foreign = trials / "0000000foreign0.parquet"
    pq.write_table(pa.table({"x": [1, 2], "y": ["a", "b"]}), foreign)  # someone else's Parquet
    tmp = trials / f"{good[1].trial_id}.parquet.tmp-1234-deadbeef"
    tmp.write_bytes(b"PAR1 half a file")  # an interrupted atomic write
    # A version-1 file: written before `split` existed.
    old_spec = make_spec(seed=3)
    table = trial_table(ok_result(old_spec)).drop_columns(["split"])
    table = table.set_column(0, "schema_version", pa.array([1] * len(table), pa.int32()))
    old = trials / f"{old_spec.trial_id}.parquet"
    pq.write_table(table.replace_schema_metadata({"peft_bench.schema_version": "1"}), old)
    # A trial that failed and was then rerun ok (--retry-failed).
    rerun = make_spec(seed=4)
    store.write(failed_result(rerun))
    store.write(ok_result(rerun))
    return store, {"truncated": truncated, "foreign": foreign, "tmp": tmp, "old": old, "rerun": rerun,
                   "good": good, "old_spec": old_spec}


def test_doctor_names_every_fault_and_changes_nothing(tmp_path, capsys):
    store, f = damaged_store(tmp_path)
    before = snapshot(tmp_path)
    findings = {(finding.kind, Path(finding.path).name) for finding in diagnose(tmp_path)}
    assert findings == {("unreadable", f["truncated"].name), ("foreign", f["foreign"].name), ("tmp", f["tmp"].name),
                        ("old-schema", f["old"].name), ("ok-and-failed", f"{f['rerun'].trial_id}.*")}
    assert main(["doctor", "--results", str(tmp_path)]) == 1  # problems found
    out = capsys.readouterr().out
    assert "3 problem(s), 2 note(s); nothing was changed" in out
    assert all(str(path) in out for key, path in f.items() if key in ("truncated", "foreign", "tmp", "old"))
    assert snapshot(tmp_path) == before  # nothing deleted, renamed or rewritten
    # The reader still gives every good row: 4 ok trials x 2 metrics, the old file with a null split.
    frame = store.read()
    ids = {s.trial_id for s in [*f["good"], f["old_spec"], f["rerun"]]}
    assert set(frame["trial_id"]) == ids and len(frame) == 8
    assert set(frame["status"]) == {"ok"}
    assert frame[frame["trial_id"] == f["old_spec"].trial_id]["split"].isna().all()
    assert snapshot(tmp_path) == before


def test_doctor_on_a_clean_store_and_after_compaction(tmp_path, capsys):
    store = Store(tmp_path)
    store.write(ok_result(make_spec(seed=1)))
    store.write(ok_result(make_spec(seed=2)))
    store.compact()
    assert diagnose(tmp_path) == []
    assert main(["doctor", "--results", str(tmp_path)]) == 0
    assert "0 problem(s), 0 note(s)" in capsys.readouterr().out


def test_notes_alone_exit_zero(tmp_path, capsys):
    store = Store(tmp_path)
    spec = make_spec(seed=5)
    store.write(failed_result(spec))
    store.write(ok_result(spec))
    assert [finding.kind for finding in diagnose(tmp_path)] == ["ok-and-failed"]
    assert main(["doctor", "--results", str(tmp_path)]) == 0


def test_a_damaged_consolidated_file_and_predictions_are_named(tmp_path):
    store = Store(tmp_path)
    spec = make_spec(seed=1)
    store.write(ok_result(spec))
    store.compact()
    folder = tmp_path / "llm_adapters__math"
    (folder / "consolidated.parquet").write_bytes(b"PAR1 garbage")
    preds = folder / "predictions" / spec.trial_id / "gsm8k.parquet"
    preds.write_bytes(preds.read_bytes()[:40])
    kinds = {(finding.kind, Path(finding.path).name) for finding in diagnose(tmp_path)}
    assert kinds == {("unreadable", "consolidated.parquet"), ("unreadable", "gsm8k.parquet")}
    assert len(store.read()) == 2  # the trial file still answers for the consolidated one


def test_a_missing_results_folder_is_a_user_error(tmp_path, capsys):
    assert main(["doctor", "--results", str(tmp_path / "nope")]) == 2
    assert "no such folder" in capsys.readouterr().err
