"""Read trial files back, tolerating old schema versions and skipping unreadable files.

Every file is scanned with the newest TRIAL_SCHEMA (pyarrow.dataset), so columns an older
file lacks come back as nulls. A file that cannot be read (truncated by a crash outside the
atomic writer, or a foreign Parquet file dropped into the folder) is skipped and named in one
warning: one bad file must never hide the results of a whole study.
"""

from __future__ import annotations

import logging

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from benchmark.store.fs import Location
from benchmark.store.schema import REQUIRED_COLUMNS, TRIAL_SCHEMA

log = logging.getLogger(__name__)

# Nullable pandas dtypes, so an integer column with a null (a failed trial) stays integer.
_PANDAS_TYPES = {pa.int32(): pd.Int32Dtype(), pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}
SOURCE = "__filename"  # pyarrow.dataset's virtual column: the file each row came from


def _problem(loc: Location, path: str) -> str | None:
    """Why `path` is not a readable trial file (from its footer alone), or None when it looks fine."""
    try:
        schema = pq.read_schema(path, filesystem=loc.fs)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ... for a damaged footer
        return f"{type(exc).__name__}: {exc}"
    missing = [name for name in REQUIRED_COLUMNS if name not in schema.names]
    if missing:
        return f"not a trial file (no column {', '.join(missing)})"
    for field in schema:
        if field.name in TRIAL_SCHEMA.names and not _castable(field.type, TRIAL_SCHEMA.field(field.name).type):
            return f"column {field.name} has type {field.type}, expected {TRIAL_SCHEMA.field(field.name).type}"
    return None


def _castable(have: pa.DataType, want: pa.DataType) -> bool:
    if have == want:
        return True
    # Widening integers and string flavours are safe; anything else is a foreign file.
    integers = pa.types.is_integer(have) and pa.types.is_integer(want)
    strings = (pa.types.is_string(have) or pa.types.is_large_string(have)) and pa.types.is_string(want)
    return integers or strings


def _scan(loc: Location, paths: list[str], columns: list[str] | None) -> pa.Table:
    dataset = ds.dataset(paths, schema=TRIAL_SCHEMA, format="parquet", filesystem=loc.fs)
    return dataset.to_table(columns=columns)


def read_tables(loc: Location, paths: list[str], columns: list[str] | None = None, with_source: bool = False,
                check: bool = True) -> pa.Table:
    """All rows of the trial files in `paths` (only `columns`, when given), bad files skipped.

    with_source adds SOURCE (the file each row came from). check=False skips the per-file footer check,
    for files this store wrote itself and already validated (the consolidated file)."""
    skipped = {}
    good = []
    for path in paths:
        problem = _problem(loc, path) if check else None
        if problem:
            skipped[path] = problem
        else:
            good.append(path)
    names = list(TRIAL_SCHEMA.names if columns is None else columns)
    if with_source:
        names.append(SOURCE)
    fields = [TRIAL_SCHEMA.field(c) if c != SOURCE else pa.field(SOURCE, pa.string()) for c in names]
    table = pa.schema(fields).empty_table()
    if good:
        try:
            table = _scan(loc, good, names)
        except Exception:
            # A footer can be intact while a data page is not: fall back to one file at a time.
            parts = []
            for path in good:
                try:
                    parts.append(_scan(loc, [path], names))
                except Exception as exc:
                    skipped[path] = f"{type(exc).__name__}: {exc}"
            if parts:
                table = pa.concat_tables(parts)
    if skipped:
        log.warning("store: skipped %d unreadable trial file(s):\n%s", len(skipped),
                    "\n".join(f"  {path}: {why}" for path, why in sorted(skipped.items())))
    return table


def to_frame(table: pa.Table) -> pd.DataFrame:
    return table.to_pandas(types_mapper=_PANDAS_TYPES.get)
