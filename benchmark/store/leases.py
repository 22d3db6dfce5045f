"""Trial leases: "this trial is being run by OWNER until EXPIRES", so two drivers on one store train each
trial once between them, and a dead driver's trials are taken over once its leases expire.

Layout: `<root>/.leases/<suite folder>/<trial_id>/<owner>.json` (a dot folder: never read as a suite).
Each claimant writes its own file, published atomically (fs.write_atomic's temporary key, then rename or
copy), so no claimant ever overwrites another's: object stores have no atomic create-if-absent, so a claim
is decided by looking again. A claim is:
1. list the trial's lease files: a live one (not expired) of another owner means "taken", skip the trial;
   expired ones of others are deleted (their owner died: take over);
2. write our file ({owner, claimed_at, expires_at}; claimed_at read just before the write);
3. wait SETTLE_S (longer than a claimant takes between its step 1 and its write becoming visible), list
   again: of the live claims the earliest (claimed_at, owner) wins; a loser deletes its file.
Every claimant that reaches step 3 sees the same files, so at most one wins. The holder renews its file
(a new expires_at) every third of the lease while the trial runs and deletes it when done; the trial's
result is stored before its lease is released, so a later claimant finds it stored and skips it.
Expiry compares wall clocks: hosts sharing a store must agree on the time to well within a lease (NTP).

`claim_many` claims several trials with one wait (a driver's pending trials, or the members of a group
that one process trains together); `Lease` is one held trial, renewed in a background thread.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.fs as pafs

from benchmark.checks import in_range
from benchmark.errors import UserError
from benchmark.store import fs as sfs
from benchmark.store.schema import safe_name

log = logging.getLogger(__name__)

FOLDER = ".leases"
LEASE_ENV = "PEFT_BENCH_LEASE_S"
DEFAULT_LEASE_S = 120.0  # a dead driver's trials wait this long (elsewhere than on its host); renewed every third
LEASE_BOUNDS = (2.0, 86400.0)
SETTLE_LOCAL_S = 0.1  # a local rename is visible at once: only a claimant's own scheduling delay matters
SETTLE_REMOTE_S = 1.0  # an object store PUT: a request's latency, with margin


def lease_seconds(environ=None) -> float:
    """The lease length, from $PEFT_BENCH_LEASE_S (a one-line error naming the variable if it is no number in
    LEASE_BOUNDS)."""
    text = (os.environ if environ is None else environ).get(LEASE_ENV)
    if text is None or not text.strip():
        return DEFAULT_LEASE_S
    try:
        value = float(text)
    except ValueError:
        value = None
    if not in_range(value, *LEASE_BOUNDS):
        raise UserError(f"${LEASE_ENV}={text!r}: allowed: a number of seconds from {LEASE_BOUNDS[0]:g} to "
                        f"{LEASE_BOUNDS[1]:g} (default {DEFAULT_LEASE_S:g})")
    return value


def _host() -> str:
    return "".join(c if c.isalnum() or c in "-." else "-" for c in socket.gethostname())[:40] or "host"


def new_owner() -> str:
    """A name for one run of one driver (host, pid and a random part: unique, and readable in messages)."""
    return f"{_host()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def dead_here(owner: str) -> bool:
    """The owner's driver ran on this host and its process is gone: its leases are dead before they expire (a
    run rerun after a crash resumes at once; Ray stops a dead driver's workers with it)."""
    host, _, rest = owner.rpartition("-")[0].rpartition("-")
    if host != _host() or not rest.isdigit():
        return False
    try:
        os.kill(int(rest), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # alive, another user's process
    return False


@dataclass(frozen=True)
class Claim:
    owner: str
    claimed_at: float
    expires_at: float
    path: str

    def live(self, now: float) -> bool:
        return self.expires_at > now and not dead_here(self.owner)


@dataclass(frozen=True)
class Holder:
    """Who claims (one driver's run, shared by every worker it launches) and for how long; picklable."""

    owner: str
    seconds: float

    @classmethod
    def new(cls, seconds: float | None = None) -> Holder:
        return cls(new_owner(), lease_seconds() if seconds is None else seconds)


class Leases:
    """The lease files of one store (a Store's Location)."""

    def __init__(self, loc: sfs.Location):
        self.loc = loc
        self.settle_s = SETTLE_LOCAL_S if loc.local else SETTLE_REMOTE_S

    def folder(self, suite: str, trial_id: str | None = None) -> str:
        parts = [FOLDER, safe_name(suite, "suite")] + ([safe_name(trial_id, "trial_id")] if trial_id else [])
        return self.loc.join(*parts)

    def claims(self, suite: str, trial_id: str) -> list[Claim]:
        """The trial's lease files, readable ones only (a file deleted meanwhile is simply not there)."""
        selector = pafs.FileSelector(self.folder(suite, trial_id), allow_not_found=True)
        try:
            infos = self.loc.fs.get_file_info(selector)
        except FileNotFoundError:  # the folder went between pyarrow's check and its listing (a release's rmdir)
            return []
        return [c for c in (self._read(i.path) for i in infos if i.type == pafs.FileType.File
                            and i.base_name.endswith(".json") and sfs.TMP_MARK not in i.base_name) if c]

    def every_claim(self, suite: str) -> dict[str, list[Claim]]:
        """trial_id -> its lease files, live or not, for every trial of `suite` that has one (one listing)."""
        selector = pafs.FileSelector(self.folder(suite), allow_not_found=True, recursive=True)
        for attempt in range(3):
            try:
                infos = self.loc.fs.get_file_info(selector)
                break
            except FileNotFoundError:  # a trial's folder went during the walk (a release's rmdir): list again
                if attempt == 2:
                    raise
        by_trial: dict[str, list[Claim]] = {}
        for info in infos:
            if info.type == pafs.FileType.File and info.base_name.endswith(".json") and sfs.TMP_MARK not in info.base_name:
                claim = self._read(info.path)
                if claim:
                    by_trial.setdefault(info.path.rsplit("/", 2)[-2], []).append(claim)
        return by_trial

    def holders(self, suite: str) -> dict[str, Claim]:
        """trial_id -> the winning live claim, for every leased trial of `suite`."""
        now = time.time()
        live = {tid: [c for c in claims if c.live(now)] for tid, claims in self.every_claim(suite).items()}
        return {tid: min(claims, key=_rank) for tid, claims in live.items() if claims}

    def _read(self, path: str) -> Claim | None:
        try:
            with self.loc.fs.open_input_stream(path) as stream:
                data = json.loads(stream.read())
            return Claim(str(data["owner"]), float(data["claimed_at"]), float(data["expires_at"]), path)
        except (FileNotFoundError, pa.ArrowException, OSError, ValueError, KeyError, TypeError) as exc:
            # Gone meanwhile (released), or not ours to read: it claims nothing.
            log.debug("lease %s unreadable (%s)", path, exc)
            return None

    def _write(self, suite: str, trial_id: str, holder: Holder, claimed_at: float) -> str:
        path = f"{self.folder(suite, trial_id)}/{holder.owner}.json"
        body = {"owner": holder.owner, "suite": suite, "trial_id": trial_id, "claimed_at": claimed_at,
                "expires_at": time.time() + holder.seconds}
        return _publish(self.loc, json.dumps(body).encode(), path)

    def _delete(self, path: str) -> None:
        try:
            self.loc.fs.delete_file(path)
        except (FileNotFoundError, pa.ArrowException, OSError):
            pass  # already gone (released, or taken over by someone else)
        if self.loc.local:  # an empty trial folder left behind is harmless, but a run of 10,000 would leave as many
            try:
                os.rmdir(path.rsplit("/", 1)[0])
            except OSError:
                pass  # another claimant's file is still there

    def claim_many(self, suite: str, trial_ids: Iterable[str], holder: Holder) -> list[Lease]:
        """Claim every trial of `trial_ids` that no one else holds; the leases won, renewed until released.
        A trial this holder already holds (a retried worker of the same run) is claimed again at once."""
        written: dict[str, tuple[str, float]] = {}
        for trial_id in dict.fromkeys(trial_ids):
            now = time.time()
            mine = None
            for claim in self.claims(suite, trial_id):
                if claim.owner == holder.owner:
                    mine = claim
                elif not claim.live(now):
                    log.info("lease of %s on trial %s expired: taking it over", claim.owner, trial_id)
                    self._delete(claim.path)
                else:
                    break  # someone else runs it
            else:
                claimed_at = mine.claimed_at if mine else time.time()
                written[trial_id] = (self._write(suite, trial_id, holder, claimed_at), claimed_at)
        if not written:
            return []
        time.sleep(self.settle_s)
        won = []
        for trial_id, (path, claimed_at) in written.items():
            now = time.time()
            live = [c for c in self.claims(suite, trial_id) if c.live(now)]
            if live and min(live, key=_rank).owner == holder.owner:
                won.append(Lease(self, suite, trial_id, holder, path, claimed_at))
            else:
                self._delete(path)
        return won

    def drop(self, suite: str, trial_id: str, owner: str) -> None:
        """Delete `owner`'s lease file of the trial, if any (its worker died holding it)."""
        self._delete(f"{self.folder(suite, trial_id)}/{owner}.json")

    def claim(self, suite: str, trial_id: str, holder: Holder) -> Lease | None:
        got = self.claim_many(suite, [trial_id], holder)
        return got[0] if got else None


def _publish(loc: sfs.Location, data: bytes, path: str) -> str:
    """Write `data` at `path` atomically (a claimant reads a whole lease or none); a releasing claimant may remove
    the trial's folder meanwhile (_delete), which fs.write_bytes_atomic makes again."""
    return sfs.write_bytes_atomic(loc, data, path)


def _rank(claim: Claim) -> tuple[float, str]:
    return claim.claimed_at, claim.owner


class Lease:
    """One held trial: `renew()` pushes its expiry out, `start()` does so every third of the lease in a daemon
    thread, `release()` (or leaving a `with` block) stops renewing and deletes the lease file."""

    def __init__(self, leases: Leases, suite: str, trial_id: str, holder: Holder, path: str, claimed_at: float):
        self.leases, self.suite, self.trial_id, self.holder = leases, suite, trial_id, holder
        self.path, self.claimed_at = path, claimed_at
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def renew(self) -> bool:
        """Push the expiry out; False (and a warning) if the lease was lost meanwhile: another driver took it over
        after it expired, so both may now run the trial (the store keeps one result)."""
        now = time.time()
        live = [c for c in self.leases.claims(self.suite, self.trial_id) if c.live(now) or c.owner == self.holder.owner]
        if not live or min(live, key=_rank).owner != self.holder.owner:
            log.warning("lease on trial %s lost (it expired and another driver took it over)", self.trial_id)
            return False
        self.leases._write(self.suite, self.trial_id, self.holder, self.claimed_at)
        return True

    def start(self) -> Lease:
        def loop():
            while not self._stop.wait(self.holder.seconds / 3):
                try:
                    if not self.renew():
                        return
                except Exception as exc:  # a storage hiccup: try again next time, the lease has two more thirds
                    log.warning("lease on trial %s: renewal failed (%s: %s)", self.trial_id, type(exc).__name__, exc)

        self._thread = threading.Thread(target=loop, name=f"lease-{self.trial_id}", daemon=True)
        self._thread.start()
        return self

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        self.leases._delete(self.path)

    def __enter__(self) -> Lease:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.release()
