"""The live progress display of `peft-bench run`: done / running / failed / remaining and an ETA.

On a terminal one line is redrawn in place (at most once a second); when stdout is a file or a
pipe (a Slurm log, a Ray Job log) each event prints one plain line instead, so logs stay readable.
Kept free of ray so it can be tested on its own; tune_driver feeds it Tune's callbacks.
"""

from __future__ import annotations

import sys
import time


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


class Progress:
    def __init__(self, total: int, stream=None, tty: bool | None = None, clock=time.monotonic):
        self.total, self._stream, self.clock = total, stream, clock
        self.tty = self.stream.isatty() if tty is None else tty
        self.started = clock()
        self.running: set[str] = set()
        self.finished: dict[str, bool] = {}  # trial_id -> ok
        self._drawn = 0.0

    @property
    def stream(self):
        return self._stream or sys.stdout  # looked up late: pytest and Tune swap sys.stdout

    def __getstate__(self):
        # Tune pickles its callbacks with the experiment state; an open stream cannot be pickled.
        return {**self.__dict__, "_stream": None}

    @property
    def done(self) -> int:
        return sum(self.finished.values())

    @property
    def failed(self) -> int:
        return len(self.finished) - self.done

    def eta(self) -> float | None:
        """Seconds left at the pace so far (finished trials per elapsed second, whatever the concurrency)."""
        if not self.finished:
            return None
        pace = (self.clock() - self.started) / len(self.finished)
        return pace * (self.total - len(self.finished))

    def line(self) -> str:
        remaining = self.total - len(self.finished) - len(self.running)
        eta = self.eta()
        return (f"[peft-bench] {self.done} done, {len(self.running)} running, {self.failed} failed, {remaining} remaining "
                f"of {self.total} | {_duration(self.clock() - self.started)} elapsed"
                + (f", ETA {_duration(eta)}" if eta is not None else ""))

    # -- events --------------------------------------------------------------------------------
    def start(self, trial_id: str) -> None:
        if trial_id not in self.finished:
            self.running.add(trial_id)
            self._event(f"{trial_id} started")

    def finish(self, trial_id: str, ok: bool, why: str = "") -> None:
        if trial_id in self.finished:
            return
        self.running.discard(trial_id)
        self.finished[trial_id] = ok
        self._event(f"{trial_id} {'ok' if ok else 'FAILED: ' + why[:160]}", always=True)

    def retry(self, trial_id: str, why: str, failures: int) -> None:
        """The trial's worker died (its node lost, its process killed) before it stored anything: the backend runs
        it again. One line says where and which; the trial counts as remaining until it starts again."""
        if trial_id in self.finished:
            return
        self.running.discard(trial_id)
        self._event(f"{why}: retrying {trial_id} (failure {failures})", always=True)

    def leased(self, trial_id: str, why: str) -> None:
        """Another driver holds the trial (one trial, one runner): not this run's to count; its driver waits for it."""
        if trial_id in self.finished:
            return
        self.running.discard(trial_id)
        self.total -= 1
        self._event(f"{trial_id} left to another driver ({why})", always=True)

    def note(self, what: str) -> None:
        """One line about the run itself (its cluster), kept in the scrollback."""
        self._event(what, always=True)

    def tick(self) -> None:
        """Called often (each Tune loop step): redraws the terminal line at most once a second."""
        if self.tty and self.clock() - self._drawn >= 1.0:
            self._draw()

    def close(self) -> None:
        if self.tty:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()

    def _event(self, what: str, always: bool = False) -> None:
        if self.tty:
            if always:  # a finished trial stays in the scrollback above the live line
                self.stream.write("\r\x1b[K" + what + "\n")
            self._draw()
        else:  # a log: one plain line per event (started, ok, FAILED)
            self.stream.write(f"[peft-bench] {what} | {self.line()[len('[peft-bench] '):]}\n")
            self.stream.flush()

    def _draw(self) -> None:
        self._drawn = self.clock()
        self.stream.write("\r\x1b[K" + self.line())
        self.stream.flush()
