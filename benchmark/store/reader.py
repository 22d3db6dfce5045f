"""Read trial files back, tolerating old schema versions and skipping unreadable files.

Every file is read into the newest TRIAL_SCHEMA, so columns an older file lacks come back as
nulls. A file that cannot be read (truncated by a crash outside the atomic writer, or a foreign
Parquet file dropped into the folder) is skipped and named in one warning: one bad file must
never hide the results of a whole study.
"""

from __future__ import annotations

import functools
import logging

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from benchmark.store.fs import Location
from benchmark.store.schema import REQUIRED_COLUMNS, TRIAL_SCHEMA

log = logging.getLogger(__name__)

# Nullable pandas dtypes, so an integer column with a null (a failed trial) stays integer.
_PANDAS_TYPES = {pa.int32(): pd.Int32Dtype(), pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}
SOURCE = "__filename"  # the file each row came from (named like pyarrow.dataset's virtual column)


_WANTED_TYPES = {field.name: field.type for field in TRIAL_SCHEMA}


def _schema_problem(schema: pa.Schema) -> str | None:
    """Why a file with this schema is not a readable trial file, or None when it is one."""
    names = set(schema.names)
    missing = [name for name in REQUIRED_COLUMNS if name not in names]
    if missing:
        return f"not a trial file (no column {', '.join(missing)})"
    for field in schema:
        want = _WANTED_TYPES.get(field.name)
        if want is not None and not _castable(field.type, want):
            return f"column {field.name} has type {field.type}, expected {want}"
    return None


def _castable(have: pa.DataType, want: pa.DataType) -> bool:
    if have == want:
        return True
    # Widening integers and string flavours are safe; anything else is a foreign file.
    integers = pa.types.is_integer(have) and pa.types.is_integer(want)
    strings = (pa.types.is_string(have) or pa.types.is_large_string(have)) and pa.types.is_string(want)
    return integers or strings


def _read_one(loc: Location, path: str, names: list[str], check: bool) -> pa.Table | str:
    """One trial file's `names` columns in TRIAL_SCHEMA types (SOURCE = its path; columns an older
    file lacks as nulls), or why it cannot be read. The file is read once, footer and data from the
    same bytes: a trial file is a few kB, and opening it twice cost more than decoding it."""
    try:
        with loc.fs.open_input_file(path) as handle:
            data = handle.read()
        parquet = pq.ParquetFile(pa.BufferReader(data))
        schema = parquet.schema_arrow  # a property that converts the footer on every access: once
        problem = _schema_problem(schema) if check else None
        if problem:
            return problem
        have = set(schema.names)
        present = [n for n in names if n in have]
        table = parquet.read(columns=present, use_threads=False)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ... for a damaged file
        return f"{type(exc).__name__}: {exc}"
    columns = []
    for name in names:
        if name == SOURCE:
            columns.append(pa.array([path] * table.num_rows, pa.string()))
        elif name in present:
            column = table[name]
            want = _WANTED_TYPES[name]
            columns.append(column if column.type == want else column.cast(want))
        else:
            columns.append(pa.nulls(table.num_rows, _WANTED_TYPES[name]))
    return pa.Table.from_arrays(columns, schema=_schema(tuple(names)))


@functools.lru_cache(maxsize=64)
def _schema(names: tuple[str, ...]) -> pa.Schema:
    return pa.schema([pa.field(SOURCE, pa.string()) if n == SOURCE else TRIAL_SCHEMA.field(n) for n in names])


def read_tables(loc: Location, paths: list[str], columns: list[str] | None = None, with_source: bool = False,
                check: bool = True) -> pa.Table:
    """All rows of the trial files in `paths` (only `columns`, when given), bad files skipped.

    with_source adds SOURCE (the file each row came from). check=False skips the per-file schema check,
    for files this store wrote itself and already validated (the consolidated file)."""
    names = list(TRIAL_SCHEMA.names if columns is None else columns)
    if with_source:
        names.append(SOURCE)
    skipped, parts = {}, []
    for path in paths:
        got = _read_one(loc, path, names, check)
        if isinstance(got, str):
            skipped[path] = got
        else:
            parts.append(got)
    if skipped:
        log.warning("store: skipped %d unreadable trial file(s):\n%s", len(skipped),
                    "\n".join(f"  {path}: {why}" for path, why in sorted(skipped.items())))
    if not parts:
        return _schema(tuple(names)).empty_table()
    return pa.concat_tables(parts).combine_chunks()  # one chunk per column, not one per file


def to_frame(table: pa.Table) -> pd.DataFrame:
    return table.to_pandas(types_mapper=_PANDAS_TYPES.get)
