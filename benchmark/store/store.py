"""The results store: one Parquet file per finished trial, under `<root>/<suite>/`.

Layout:
    <root>/<suite>/trials/<trial_id>.parquet                       the trial (its existence marks completion)
    <root>/<suite>/predictions/<trial_id>/<eval_data>.parquet      per-example predictions
A suite name with "/" (llm_adapters/math) is stored as a folder with "__" (llm_adapters__math).

Replacement rule: a trial file already stored with status ok is replaced only by another ok
result. A failed rerun (an interrupted resume, a worker lost after the trial was written) must
never erase a good result; it is logged and dropped instead. A failed file may be replaced by
anything, which is how a rerun fixes a failure. (Two writers racing on the same trial_id are
not serialised; the scheduler runs each trial_id once.)
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pyarrow.compute as pc

from benchmark.result import TrialResult
from benchmark.store.reader import read_tables, to_frame
from benchmark.store.schema import safe_name, unsafe_name
from benchmark.store.writer import predictions_table, trial_table, write_atomic

log = logging.getLogger(__name__)


class Store:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    # -- layout ------------------------------------------------------------------------------
    def suite_dir(self, suite: str) -> Path:
        return self.root / safe_name(suite, "suite")

    def trial_path(self, suite: str, trial_id: str) -> Path:
        return self.suite_dir(suite) / "trials" / f"{safe_name(trial_id, 'trial_id')}.parquet"

    def predictions_path(self, suite: str, trial_id: str, eval_data: str) -> Path:
        return (self.suite_dir(suite) / "predictions" / safe_name(trial_id, "trial_id")
                / f"{safe_name(eval_data, 'eval_data')}.parquet")

    def _trial_files(self, suites: list[str] | None) -> list[Path]:
        folders = [self.suite_dir(s) for s in suites] if suites is not None else self._suite_folders()
        # The glob matches final names only; temporary files end in .tmp-<pid>-<uuid>.
        return sorted(p for folder in folders for p in (folder / "trials").glob("*.parquet"))

    def _suite_folders(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        # Dot folders (Ray's .ray experiment folder) are not suites.
        return sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")
                      and (p / "trials").is_dir())

    # -- writing -----------------------------------------------------------------------------
    def write(self, result: TrialResult) -> Path:
        """Store one trial: predictions first, then the trial file (whose presence means done)."""
        path = self.trial_path(result.spec.suite, result.trial_id)
        table = trial_table(result)  # validates before anything touches the disk
        if result.status != "ok" and self._stored_status(path) == "ok":
            log.warning("store: trial %s is already stored as ok; the failed rerun is not stored (%s)",
                        result.trial_id, (result.error or "").splitlines()[0] if result.error else "no error text")
            return path
        for eval_data, rows in result.predictions.items():
            write_atomic(predictions_table(rows), self.predictions_path(result.spec.suite, result.trial_id, eval_data))
        return write_atomic(table, path)

    def _stored_status(self, path: Path) -> str | None:
        if not path.exists():
            return None
        table = read_tables([path], ["status"])
        return table["status"][0].as_py() if table.num_rows else None

    # -- reading -----------------------------------------------------------------------------
    def _ids_with_status(self, suite: str, status: str) -> set[str]:
        table = read_tables(self._trial_files([suite]), ["trial_id", "status"])
        return set(table.filter(pc.equal(table["status"], status))["trial_id"].to_pylist())

    def ok_trial_ids(self, suite: str) -> set[str]:
        """Trials stored as ok (a resumed run skips these). Reads two columns only."""
        return self._ids_with_status(suite, "ok")

    def failed_trial_ids(self, suite: str) -> set[str]:
        return self._ids_with_status(suite, "failed")

    def read(self, suites: list[str] | None = None) -> pd.DataFrame:
        """Every row of every trial of `suites` (all suites when None), in the newest schema."""
        return to_frame(read_tables(self._trial_files(suites)))

    def read_predictions(self, suite: str, trial_id: str, eval_data: str) -> pd.DataFrame:
        import pyarrow.parquet as pq

        path = self.predictions_path(suite, trial_id, eval_data)
        if not path.exists():
            raise FileNotFoundError(f"no predictions for trial {trial_id} on {eval_data} in suite {suite} ({path})")
        return to_frame(pq.read_table(path))

    def suites(self) -> list[str]:
        """Suite names with a trials folder, as the trial files spell them."""
        names = []
        for folder in self._suite_folders():
            files = sorted((folder / "trials").glob("*.parquet"))[:1]
            stored = read_tables(files, ["suite"])["suite"].to_pylist() if files else []
            names.append(stored[0] if stored else unsafe_name(folder.name))
        return sorted(set(names))


