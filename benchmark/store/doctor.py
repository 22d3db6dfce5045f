"""`peft-bench doctor`: a read-only health check of a results folder.

The reader already skips damaged files with a warning so one bad file never hides a study; the
doctor is where those files get named, all at once, with what is wrong and what it means. It only
lists and reads: nothing is renamed, repaired or deleted, since the right fix (restore from a
backup, rerun the trial, remove a foreign file) is the user's call.

Findings are of two severities. Problems (the command exits 1): a Parquet file the store cannot
read (truncated or damaged), a Parquet file that is not one of ours (foreign), a temporary file
left by an interrupted write. Notes (listed, exit 0): files of an older schema_version (they still
read, with nulls in the newer columns) and trials with both an ok and a failed attempt (normal
after `--retry-failed`: the ok rows win and the failure is kept as history).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import pyarrow.fs as pafs
import pyarrow.parquet as pq

from benchmark.errors import UserError
from benchmark.store import adapters
from benchmark.store import fs as sfs
from benchmark.store.reader import _castable
from benchmark.store.schema import PREDICTION_SCHEMA, REQUIRED_COLUMNS, SCHEMA_VERSION, TRIAL_SCHEMA

PROBLEMS = ("unreadable", "foreign", "tmp")  # kinds that make the check fail
NOTES = ("old-schema", "ok-and-failed")
# trials/<id>.parquet is the ok attempt, trials/<id>.failed-<time>-<uuid>.parquet one failed attempt.
_TRIAL_NAME = re.compile(r"^(?P<id>[^.]+)(?P<failed>\.failed-[^/]*)?\.parquet$")


@dataclass(frozen=True)
class Finding:
    kind: str  # one of PROBLEMS or NOTES
    path: str
    detail: str

    @property
    def problem(self) -> bool:
        return self.kind in PROBLEMS

    def line(self) -> str:
        return f"{self.kind:<13} {self.path}: {self.detail}"


def _trial_file(loc: sfs.Location, path: str) -> Finding | None:
    """Check one trial / batch / consolidated file from its footer, then its data pages."""
    try:
        parquet = pq.ParquetFile(path, filesystem=loc.fs)
        schema = parquet.schema_arrow
    except Exception as exc:  # ArrowInvalid, OSError, ...: a damaged footer (e.g. truncated by a crash)
        return Finding("unreadable", path, f"{type(exc).__name__}: {exc}; the reader skips it")
    missing = [c for c in REQUIRED_COLUMNS if c not in schema.names]
    if missing:
        return Finding("foreign", path, f"not a trial file (no column {', '.join(missing)}); the reader skips it")
    for field in schema:
        if field.name in TRIAL_SCHEMA.names and not _castable(field.type, TRIAL_SCHEMA.field(field.name).type):
            want = TRIAL_SCHEMA.field(field.name).type
            return Finding("foreign", path, f"column {field.name} has type {field.type}, expected {want}; the reader skips it")
    try:
        # The footer can be intact while a data page is not; reading the pages is the only way to know.
        versions = parquet.read(columns=["schema_version"] if "schema_version" in schema.names else []).to_pydict()
    except Exception as exc:
        return Finding("unreadable", path, f"{type(exc).__name__}: {exc}; the reader skips it")
    stored = {v for v in versions.get("schema_version", []) if v is not None}
    absent = [c for c in TRIAL_SCHEMA.names if c not in schema.names]
    if (stored and min(stored) < SCHEMA_VERSION) or not stored or absent:
        version = f"schema_version {min(stored)}" if stored else "no schema_version"
        lacks = f", lacks {', '.join(absent)}" if absent else ""
        return Finding("old-schema", path, f"{version} (current {SCHEMA_VERSION}){lacks}; still reads, "
                       "with nulls in the missing columns")
    return None


def _prediction_file(loc: sfs.Location, path: str) -> Finding | None:
    try:
        parquet = pq.ParquetFile(path, filesystem=loc.fs)
        parquet.read()
    except Exception as exc:
        return Finding("unreadable", path, f"{type(exc).__name__}: {exc}; its predictions cannot be shown")
    missing = [c for c in PREDICTION_SCHEMA.names if c not in parquet.schema_arrow.names]
    if missing:
        return Finding("foreign", path, f"not a predictions file (no column {', '.join(missing)})")
    return None


def diagnose(root) -> list[Finding]:
    """Every finding for the results folder `root` (a path or a pyarrow filesystem URI), sorted by path.
    Reads only; never writes, renames or deletes."""
    loc = sfs.locate(root)
    if loc.fs.get_file_info(loc.base).type != pafs.FileType.Directory:
        raise UserError(f"--results {root!s}: no such folder; allowed: a results folder written by `peft-bench run`")
    infos = loc.fs.get_file_info(pafs.FileSelector(loc.base, recursive=True, allow_not_found=True))
    findings: list[Finding] = []
    attempts: dict[tuple[str, str], set[str]] = {}  # (suite folder, trial id) -> {"ok", "failed"}
    adapter_folders: set[str] = set()  # <suite>/adapters/<trial_id>: checked whole against their manifests below
    now = time.time()
    for info in sorted(infos, key=lambda i: i.path):
        if info.type != pafs.FileType.File:
            continue
        parts = info.path[len(loc.base):].strip("/").split("/")
        if parts[0].startswith("."):
            continue  # Ray's .ray experiment folder and other dot folders are not the store's
        if len(parts) >= 4 and parts[1] == "adapters" and sfs.TMP_MARK not in parts[2]:
            adapter_folders.add(loc.join(*parts[:3]))
            continue
        if any(sfs.TMP_MARK in part for part in parts):  # a file, or a file in an adapter folder being published
            age = now - info.mtime.timestamp() if info.mtime else None
            when = f"{age / 60:.0f} min old" if age is not None else "age unknown"
            findings.append(Finding("tmp", info.path, f"temporary file of an interrupted write ({when}; a recent one "
                                    "may be a write in progress); readers ignore it"))
            continue
        if not info.base_name.endswith(".parquet"):
            continue
        # parts: <suite>/trials/<file>, <suite>/batches/<file>, <suite>/consolidated.parquet,
        # <suite>/predictions/<trial>/<file>, <suite>/evals/<trial>/<record>.parquet and its
        # <record>/predictions.parquet; anything else is not read by the store at all.
        if (len(parts) == 3 and parts[1] in ("trials", "batches") or len(parts) == 2 and parts[1] == "consolidated.parquet"
                or len(parts) == 4 and parts[1] == "evals"):
            found = _trial_file(loc, info.path)
            if found and found.kind == "old-schema" and parts[1] == "consolidated.parquet":
                found = None  # it copies the old rows of the files it covers; those files are listed already
            if parts[1] == "trials" and (name := _TRIAL_NAME.match(parts[2])) and (found is None or not found.problem):
                attempts.setdefault((parts[0], name["id"]), set()).add("failed" if name["failed"] else "ok")
        elif len(parts) == 4 and parts[1] == "predictions" or len(parts) == 5 and parts[1] == "evals":
            found = _prediction_file(loc, info.path)
        else:
            found = Finding("foreign", info.path, "a Parquet file outside the store layout; the reader ignores it")
        if found:
            findings.append(found)
    for folder in sorted(adapter_folders):
        if not loc.local and not adapters.exists(loc, folder):  # files without their manifest: see adapters.py
            findings.append(Finding("tmp", folder, f"adapter files of an interrupted publication (no {adapters.MANIFEST}; "
                                    "a recent one may be a write in progress); readers ignore them, the trial's "
                                    "next run publishes the folder whole"))
            continue
        try:
            adapters.check(loc, folder)
        except UserError as exc:
            detail = str(exc).removeprefix(f"adapter folder {folder}: ")
            findings.append(Finding("unreadable", folder, f"{detail}; `peft-bench eval` refuses it"))
    for (folder, trial_id), kinds in sorted(attempts.items()):
        if kinds == {"ok", "failed"}:
            findings.append(Finding("ok-and-failed", loc.join(folder, "trials", f"{trial_id}.*"),
                                    "an ok and a failed attempt; the ok rows are read, the failure is kept as history"))
    return sorted(findings, key=lambda f: (f.path, f.kind))


def report(root) -> int:
    """Print the findings of `root`; 1 when any is a problem, else 0 (the `peft-bench doctor` command)."""
    findings = diagnose(root)
    for finding in findings:
        print(finding.line())
    problems = sum(f.problem for f in findings)
    notes = len(findings) - problems
    print(f"{root}: {problems} problem(s), {notes} note(s); nothing was changed")
    return 1 if problems else 0
