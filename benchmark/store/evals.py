"""Rows of `peft-bench eval` and `peft-bench rescore`: beside a trial's own rows, never among them.

Layout, per suite folder (a record per trial, source, protocol and eval dataset):
    evals/<trial_id>/<source>-<protocol>-<eval_data>.parquet                 the metric rows
    evals/<trial_id>/<source>-<protocol>-<eval_data>/predictions.parquet     the per-example predictions

The rows are a trial's long-format rows (TRIAL_SCHEMA, the trial's own trial_id and metadata) with `source`
(eval | rescore) and the `protocol` they were scored under. Predictions are written first, then the rows file
(whose presence means done), both atomically; a rerun skips what is stored. Store.read() never reads these
files (it reads trials/ and batches/ only), so a trial's rows stay exactly as its run stored them.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from benchmark.result import TrialResult
from benchmark.store import fs as sfs
from benchmark.store.reader import read_tables, to_frame
from benchmark.store.schema import TRIAL_SCHEMA, safe_name
from benchmark.store.writer import predictions_table, trial_rows

SOURCES = ("eval", "rescore")


def key(source: str, protocol: str, eval_data: str) -> str:
    if source not in SOURCES:
        raise ValueError(f"source: got {source!r}; allowed: {', '.join(SOURCES)}")
    return f"{source}-{safe_name(protocol, 'protocol')}-{safe_name(eval_data, 'eval_data')}"


def rows_path(suite_dir: str, trial_id: str, record: str) -> str:
    return f"{suite_dir}/evals/{safe_name(trial_id, 'trial_id')}/{record}.parquet"


def predictions_path(suite_dir: str, trial_id: str, record: str) -> str:
    return f"{suite_dir}/evals/{safe_name(trial_id, 'trial_id')}/{record}/predictions.parquet"


def stored(loc: sfs.Location, suite_dir: str, trial_id: str, record: str) -> bool:
    return sfs.exists(loc, rows_path(suite_dir, trial_id, record))


def write(loc: sfs.Location, suite_dir: str, result: TrialResult, source: str, protocol: str) -> list[str]:
    """Store each eval dataset of `result` (a trial's spec, new metrics and predictions) as one record."""
    rows = trial_rows(result)
    written = []
    for eval_data, predictions in result.predictions.items():
        record = key(source, protocol, eval_data)
        mine = [{**row, "source": source, "protocol": protocol} for row in rows if row["eval_data"] == eval_data]
        sfs.write_atomic(loc, predictions_table(predictions), predictions_path(suite_dir, result.trial_id, record))
        written.append(sfs.write_atomic(loc, pa.Table.from_pylist(mine, schema=TRIAL_SCHEMA),
                                        rows_path(suite_dir, result.trial_id, record), small=True))
    return written


def read(loc: sfs.Location, suite_dirs: list[str]) -> pd.DataFrame:
    """Every eval and rescore row of the suites, in the newest schema."""
    paths = [info.path for folder in suite_dirs for trial in sfs.list_dirs(loc, f"{folder}/evals")
             for info in sfs.list_parquet(loc, f"{folder}/evals/{trial}")]
    return to_frame(read_tables(loc, paths)) if paths else to_frame(TRIAL_SCHEMA.empty_table())


def read_predictions(loc: sfs.Location, suite_dir: str, trial_id: str, record: str) -> pd.DataFrame:
    path = predictions_path(suite_dir, trial_id, record)
    if not sfs.exists(loc, path):
        raise FileNotFoundError(f"no predictions for {record} of trial {trial_id} ({path})")
    return to_frame(pq.read_table(path, filesystem=loc.fs))
