"""The results store: Parquet files under `<root>/<suite>/`, root a local folder or a filesystem URI.

Layout (a suite "llm_adapters/math" is the folder "llm_adapters__math"):
    trials/<trial_id>.parquet                           an ok trial (its existence marks completion)
    trials/<trial_id>.failed-<time>-<uuid>.parquet       one failed attempt (a new file per attempt)
    batches/<time>-<uuid>.parquet                        many trials at once (write_many)
    batches/rollup-<time>-<uuid>.parquet                 a copy of the last ROLLUP_EVERY trial files one
                                                         Store wrote, naming them (size, mtime) as covered
    consolidated.parquet                                 compact(): every trial above in one file
    predictions/<trial_id>/<eval_data>.parquet           per-example predictions of the ok trial
    adapters/<trial_id>/                                 what the ok trial trained (adapters.py; published
                                                         before its trial file, never rewritten)
    evals/<trial_id>/...                                 rows of `peft-bench eval` / `rescore` (evals.py)
and beside the suites, <root>/.leases/<suite>/<trial_id>/<owner>.json: who runs a trial now (leases.py).

Concurrency: every file is published atomically (fs.write_atomic). Writers never overwrite each
other's information: a failed attempt gets a unique name, so it can never erase an ok result or an
earlier failure, and two ok writes of one trial_id are the same trial run twice (either is right).
Reads resolve several row sets of one trial with resolve.py (ok beats failed, then the newest), so
after `--retry-failed` the ok rows supersede the failed ones while the failure stays on disk
(`read(history=True)` shows every attempt).

Roll-ups: a Store instance that has written ROLLUP_EVERY trial files (a Ray worker runs trial after
trial through the one Store.for_worker gives it) also writes their rows, from memory, as one batch
file whose metadata lists the files it covers. Reads take a roll-up instead of the files it covers, so a store of 10,000 trials is read as ~40
files even before the run's final compaction (a resume's status check, `peft-bench status` during
a run). Like the consolidated file, a roll-up only stands in for the exact (size, mtime) it saw.

Compaction never deletes: consolidated.parquet holds the resolved rows of the files it covers and,
in its metadata, their (size, mtime); reads take it plus only the files not covered (new or changed
since), which is what makes reading 10,000 trials fast. Two compactions racing both write a
correct file (the later rename wins); a trial written meanwhile is simply not covered yet.
"""

from __future__ import annotations

import functools
import json
import logging
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from benchmark.result import TrialResult
from benchmark.store import adapters, evals
from benchmark.store import fs as sfs
from benchmark.store.reader import SOURCE, read_tables, to_frame
from benchmark.store.resolve import NEEDED, resolve
from benchmark.store.schema import TRIAL_SCHEMA, safe_name, unsafe_name
from benchmark.store.writer import predictions_table, trial_table, trials_table

log = logging.getLogger(__name__)
CONSOLIDATED = "consolidated.parquet"
COVERS_KEY = b"peft_bench.covers"  # JSON {relative path: [size, mtime_ns]} of the files folded in
ROLLUP_PREFIX = "rollup-"
ROLLUP_EVERY = 256  # trial files per roll-up: reading a store costs ~1 ms per file, a roll-up ~ as much


def _stamp(text: str | None = None) -> str:
    try:
        moment = datetime.fromisoformat(text) if text else datetime.now(UTC)
    except ValueError:
        moment = datetime.now(UTC)
    return moment.strftime("%Y%m%dT%H%M%S")


class Store:
    def __init__(self, root, filesystem=None):
        self.root = root
        self.loc = sfs.locate(root, filesystem)
        # Per suite folder: the trial files this instance wrote since its last roll-up, with their tables.
        self._pending: dict[str, list[tuple[str, pa.Table]]] = {}

    @classmethod
    def for_worker(cls, root) -> Store:
        """This process's Store of `root`, the same instance on every call: a worker that writes trial after
        trial through it (a reused Ray actor) rolls its files up every ROLLUP_EVERY trials."""
        return _worker_store(str(root))

    # -- layout ------------------------------------------------------------------------------
    def suite_dir(self, suite: str) -> str:
        return self.loc.join(safe_name(suite, "suite"))

    def trial_path(self, suite: str, trial_id: str) -> str:
        return f"{self.suite_dir(suite)}/trials/{safe_name(trial_id, 'trial_id')}.parquet"

    def failed_path(self, suite: str, trial_id: str, finished_at: str | None = None) -> str:
        name = f"{safe_name(trial_id, 'trial_id')}.failed-{_stamp(finished_at)}-{uuid.uuid4().hex[:8]}.parquet"
        return f"{self.suite_dir(suite)}/trials/{name}"

    def predictions_path(self, suite: str, trial_id: str, eval_data: str) -> str:
        return (f"{self.suite_dir(suite)}/predictions/{safe_name(trial_id, 'trial_id')}/"
                f"{safe_name(eval_data, 'eval_data')}.parquet")

    def adapter_path(self, suite: str, trial_id: str) -> str:
        return f"{self.suite_dir(suite)}/adapters/{safe_name(trial_id, 'trial_id')}"

    def _suite_folders(self) -> list[str]:
        # Dot folders (Ray's .ray experiment folder) are not suites.
        return [name for name in sfs.list_dirs(self.loc, self.loc.base) if not name.startswith(".")
                and (sfs.list_dirs(self.loc, self.loc.join(name)) or sfs.exists(self.loc, self.loc.join(name, CONSOLIDATED)))]

    def _sources(self, folder: str):
        """Every trial and batch file of a suite folder (not the consolidated file)."""
        return [*sfs.list_parquet(self.loc, f"{folder}/trials"), *sfs.list_parquet(self.loc, f"{folder}/batches")]

    # -- writing -----------------------------------------------------------------------------
    def write(self, result: TrialResult) -> str:
        """Store one trial: predictions and kept adapter first, then the trial file (whose presence means done)."""
        table = trial_table(result)  # validates before anything touches the storage
        suite = result.spec.suite
        if result.status != "ok":
            # A new file per failed attempt: it can never hide an ok result or erase an earlier failure.
            path = self.failed_path(suite, result.trial_id, result.finished_at)
        else:
            for eval_data, rows in result.predictions.items():
                sfs.write_atomic(self.loc, predictions_table(rows),
                                 self.predictions_path(suite, result.trial_id, eval_data))
            if result.adapter_dir is not None:
                adapters.publish(self.loc, Path(result.adapter_dir), self.adapter_path(suite, result.trial_id))
            path = self.trial_path(suite, result.trial_id)
        sfs.write_atomic(self.loc, table, path, small=True)
        self._remember(self.suite_dir(suite), path, table)
        return path

    def _remember(self, folder: str, path: str, table: pa.Table) -> None:
        pending = self._pending.setdefault(folder, [])
        pending.append((path, table))
        if len(pending) >= ROLLUP_EVERY:
            batch = list(pending)
            pending.clear()
            self._roll_up(folder, batch)

    def _roll_up(self, folder: str, written: list[tuple[str, pa.Table]]) -> None:
        """One batch file with the rows of `written` (already on storage), covering them. Only an
        optimisation: a failure is logged, and reads take the trial files themselves."""
        try:
            infos = self.loc.fs.get_file_info([path for path, _ in written])
            covers = {self._rel(folder, i): [i.size, i.mtime_ns] for i in infos if i.type == pafs.FileType.File}
            if not covers:
                return
            table = pa.concat_tables([table for _, table in written]).combine_chunks()
            path = f"{folder}/batches/{ROLLUP_PREFIX}{_stamp()}-{uuid.uuid4().hex}.parquet"
            sfs.write_atomic(self.loc, table, path, metadata={COVERS_KEY: json.dumps(covers).encode()})
        except Exception as exc:
            log.warning("store: roll-up skipped (%s: %s)", type(exc).__name__, exc)

    def write_many(self, results: list[TrialResult]) -> list[str]:
        """Store many trials in one batch file per suite (for bulk imports and drivers that collect
        results): the same rows as write() one by one, at a fraction of the per-file cost."""
        by_suite: dict[str, dict[str, TrialResult]] = {}
        for result in results:
            by_suite.setdefault(result.spec.suite, {})[result.trial_id] = result  # one row set per trial
        paths = []
        for suite, chosen in by_suite.items():
            for result in chosen.values():
                if result.status == "ok":
                    for eval_data, rows in result.predictions.items():
                        sfs.write_atomic(self.loc, predictions_table(rows),
                                         self.predictions_path(suite, result.trial_id, eval_data))
                    if result.adapter_dir is not None:
                        adapters.publish(self.loc, Path(result.adapter_dir), self.adapter_path(suite, result.trial_id))
            table = trials_table(list(chosen.values()))
            path = f"{self.suite_dir(suite)}/batches/{_stamp()}-{uuid.uuid4().hex}.parquet"
            paths.append(sfs.write_atomic(self.loc, table, path))
        return paths

    def compact(self, suites: list[str] | None = None) -> int:
        """Fold every suite's trial and batch files into its consolidated.parquet (atomically; nothing
        is deleted). Returns the number of files newly folded in."""
        folded = 0
        for folder in self._folders(suites):
            infos = self._sources(folder)
            covers, _ = self._covers(folder)
            fresh = [i for i in infos if covers.get(self._rel(folder, i)) != [i.size, i.mtime_ns]]
            if not fresh:
                continue
            table = self._resolved(folder, None, infos=infos)
            manifest = {self._rel(folder, i): [i.size, i.mtime_ns] for i in infos}
            sfs.write_atomic(self.loc, table, f"{folder}/{CONSOLIDATED}",
                             metadata={COVERS_KEY: json.dumps(manifest).encode()})
            folded += len(fresh)
        return folded

    # -- reading -----------------------------------------------------------------------------
    def _folders(self, suites: list[str] | None) -> list[str]:
        if suites is None:
            return [self.loc.join(name) for name in self._suite_folders()]
        return [self.suite_dir(s) for s in suites]

    @staticmethod
    def _rel(folder: str, info) -> str:
        return info.path[len(folder) + 1:]

    def _covers(self, folder: str) -> tuple[dict, str | None]:
        path = f"{folder}/{CONSOLIDATED}"
        if not sfs.exists(self.loc, path):
            return {}, None
        try:
            meta = pq.read_schema(path, filesystem=self.loc.fs).metadata or {}
            return json.loads(meta.get(COVERS_KEY, b"{}")), path
        except Exception as exc:  # a damaged consolidated file: read every file instead
            log.warning("store: ignoring %s (%s: %s)", path, type(exc).__name__, exc)
            return {}, None

    def _rollup_covers(self, infos) -> dict:
        """The trial files the roll-ups among `infos` stand in for (a roll-up whose footer cannot be
        read covers nothing: its files are read instead)."""
        covers: dict = {}
        for info in infos:
            if info.base_name.startswith(ROLLUP_PREFIX):
                try:
                    meta = pq.read_schema(info.path, filesystem=self.loc.fs).metadata or {}
                    covers.update(json.loads(meta.get(COVERS_KEY, b"{}")))
                except Exception as exc:
                    log.warning("store: ignoring roll-up %s (%s: %s)", info.path, type(exc).__name__, exc)
        return covers

    def _resolved(self, folder: str, columns: list[str] | None, infos=None, history: bool = False) -> pa.Table:
        """The rows of one suite folder: the consolidated file plus every file it does not cover (directly
        or through a roll-up), resolved. history=True: every attempt's own file (roll-ups are copies)."""
        infos = self._sources(folder) if infos is None else infos
        if history:
            covers, consolidated = {}, None
            infos = [i for i in infos if not i.base_name.startswith(ROLLUP_PREFIX)]
        else:
            covers, consolidated = self._covers(folder)
            covers = {**self._rollup_covers(infos), **covers}
        fresh = [i.path for i in infos if covers.get(self._rel(folder, i)) != [i.size, i.mtime_ns]]
        wanted = None if columns is None else list(dict.fromkeys([*columns, *NEEDED]))
        parts = []
        if consolidated:
            parts.append(read_tables(self.loc, [consolidated], wanted, with_source=True, check=False))
        if fresh:
            parts.append(read_tables(self.loc, fresh, wanted, with_source=True))
        if not parts:
            names = wanted or TRIAL_SCHEMA.names
            return pa.schema([TRIAL_SCHEMA.field(c) for c in names]).empty_table().select(columns or names)
        table = pa.concat_tables(parts)
        if not history:
            table = resolve(table)
        return table.drop_columns([SOURCE]).select(columns or TRIAL_SCHEMA.names)

    def _table(self, suites: list[str] | None, columns: list[str] | None = None, history: bool = False) -> pa.Table:
        parts = [self._resolved(folder, columns, history=history) for folder in self._folders(suites)]
        if not parts:
            names = columns or TRIAL_SCHEMA.names
            return pa.schema([TRIAL_SCHEMA.field(c) for c in names]).empty_table()
        return pa.concat_tables(parts)

    def statuses(self, suite: str) -> dict[str, str]:
        """trial_id -> resolved status (ok | failed) of every stored trial of `suite`."""
        table = self._table([suite], ["trial_id", "status"])
        return dict(zip(table["trial_id"].to_pylist(), table["status"].to_pylist()))

    def ok_trial_ids(self, suite: str) -> set[str]:
        """Trials stored as ok (a resumed run skips these). Reads two columns only."""
        return {tid for tid, status in self.statuses(suite).items() if status == "ok"}

    def read(self, suites: list[str] | None = None, history: bool = False) -> pd.DataFrame:
        """Every row of every trial of `suites` (all suites when None), in the newest schema: one row
        set per trial (ok supersedes failed); history=True returns every stored attempt instead."""
        return to_frame(self._table(suites, history=history))

    def read_predictions(self, suite: str, trial_id: str, eval_data: str) -> pd.DataFrame:
        path = self.predictions_path(suite, trial_id, eval_data)
        if not sfs.exists(self.loc, path):
            raise FileNotFoundError(f"no predictions for trial {trial_id} on {eval_data} in suite {suite} ({path})")
        return to_frame(pq.read_table(path, filesystem=self.loc.fs))

    # -- kept adapters, eval and rescore rows ----------------------------------------------------
    def has_adapter(self, suite: str, trial_id: str) -> bool:
        """Whether the trial kept an adapter folder, checked whole: a UserError naming the folder and the file when
        it is damaged. Reads the manifest and lists the files only."""
        folder = self.adapter_path(suite, trial_id)
        if not adapters.exists(self.loc, folder):
            return False
        adapters.check(self.loc, folder)
        return True

    def fetch_adapter(self, suite: str, trial_id: str) -> Path:
        """A local folder with the trial's kept adapter (checked again): the folder itself on a local store, a
        temporary download on an object store (the caller removes it: `not store.loc.local`)."""
        return adapters.fetch(self.loc, self.adapter_path(suite, trial_id))

    def eval_stored(self, suite: str, trial_id: str, source: str, protocol: str, eval_data: str) -> bool:
        return evals.stored(self.loc, self.suite_dir(suite), trial_id, evals.key(source, protocol, eval_data))

    def write_eval(self, result: TrialResult, source: str, protocol: str) -> list[str]:
        """Store `result`'s metrics and predictions as eval / rescore rows of its trial (evals.py)."""
        return evals.write(self.loc, self.suite_dir(result.spec.suite), result, source, protocol)

    def read_evals(self, suites: list[str] | None = None) -> pd.DataFrame:
        """Every eval and rescore row of `suites` (all when None); read() never includes them."""
        return evals.read(self.loc, self._folders(suites))

    def read_eval_predictions(self, suite: str, trial_id: str, source: str, protocol: str, eval_data: str) -> pd.DataFrame:
        return evals.read_predictions(self.loc, self.suite_dir(suite), trial_id, evals.key(source, protocol, eval_data))

    def suites(self) -> list[str]:
        """Suite names with stored trials, as the trial files spell them."""
        names = []
        for name in self._suite_folders():
            folder = self.loc.join(name)
            files = ([f"{folder}/{CONSOLIDATED}"] if sfs.exists(self.loc, f"{folder}/{CONSOLIDATED}") else []) \
                or [i.path for i in self._sources(folder)[:1]]
            stored = read_tables(self.loc, files, ["suite"])["suite"].to_pylist() if files else []
            names.append(stored[0] if stored else unsafe_name(name))
        return sorted(set(names))


@functools.cache
def _worker_store(root: str) -> Store:
    return Store(root)
