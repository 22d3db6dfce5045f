"""Which stored row set stands for a trial when several exist.

A trial can be stored more than once: a failed attempt and a later ok one (`--retry-failed`), or
two runs of the same suite racing. Nothing is overwritten across attempts (a failed attempt has
its own file), so reads choose, per trial_id, the row set of ONE source file:
    ok over failed, then the latest finished_at, then the greater file name (a stable tie-break).
The choice is an argmax, so resolve(A + B) == resolve(resolve(A) + B): the consolidated file
(already resolved) combined with newer files gives the same answer as reading every file.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from benchmark.store.reader import SOURCE

NEEDED = ("trial_id", "status", "finished_at")
_SEP = "\x1f"  # cannot appear in a trial_id (hex) or a path we wrote


def _keys(table: pa.Table) -> pa.ChunkedArray:
    return pc.binary_join_element_wise(table["trial_id"], table[SOURCE], _SEP)


def resolve(table: pa.Table) -> pa.Table:
    """Rows of `table` (which must carry NEEDED and SOURCE) restricted to one source per trial_id."""
    if table.num_rows == 0:
        return table
    sets = table.group_by(["trial_id", SOURCE]).aggregate([("status", "min"), ("finished_at", "max")])
    if sets.num_rows == len(pc.unique(sets["trial_id"])):
        return table  # every trial stored once: nothing to choose
    frame = sets.to_pandas()
    frame["is_ok"] = frame["status_min"] == "ok"
    frame["when"] = frame["finished_at_max"].fillna(frame["finished_at_max"].min())
    frame = frame.sort_values(["trial_id", "is_ok", "when", SOURCE], na_position="first")
    winners = frame.drop_duplicates("trial_id", keep="last")
    chosen = pa.array((winners["trial_id"] + _SEP + winners[SOURCE]).tolist(), pa.string())
    return table.filter(pc.is_in(_keys(table), value_set=chosen))
