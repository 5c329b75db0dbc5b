"""Progress of the long stages.

On a terminal (stderr is a tty) a status line is rewritten in place while a stage runs: the stage, the step it is
on, the rows done so far and the elapsed time (and DuckDB's own percentage for the query in flight). Elsewhere
(logs, CI, tests) nothing is printed while it runs; each stage ends with one log line: its rows and seconds.
Nothing here prints a patient-level value or a path.
"""
from __future__ import annotations

import io
import logging
import sys
import threading
import time

log = logging.getLogger("pipeline")


class StageProgress:
    def __init__(self, stage: str, stream=None, interval: float = 0.5):
        self.stage = stage
        self.stream = stream or sys.stderr
        self.interval = interval
        self.step = ""
        self.rows = 0
        self.detail = ""
        self.con = None
        self.t0 = time.perf_counter()
        self._stop = threading.Event()
        self._thread = None
        self.live = bool(getattr(self.stream, "isatty", lambda: False)()) and log.isEnabledFor(logging.INFO)

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def update(self, step: str | None = None, rows: int = 0, con=None, detail: str | None = None) -> None:
        """Name the step now running (with the DuckDB connection to poll), and add rows finished; `detail` is said
        in brackets on the stage's closing line (e.g. the report's packs)."""
        if detail is not None:
            self.detail = detail
        if step is not None:
            self.step = step
        self.rows += int(rows)
        if con is not None:
            self.con = con

    def _line(self) -> str:
        pct = ""
        if self.con is not None:
            try:
                p = self.con.query_progress()
                if p is not None and p >= 0:
                    pct = f" {p:5.1f}%"
            except Exception:  # a connection that is busy or closed: no percentage this tick
                pct = ""
        step = f" {self.step}" if self.step else ""
        return f"{self.stage}{step}{pct}: {self.rows:,} rows, {self.elapsed():.0f} s"

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.stream.write("\r\033[K" + self._line())
            self.stream.flush()

    def __enter__(self):
        if self.live:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self.stream.write("\r\033[K")
            self.stream.flush()
        if exc[0] is None:
            detail = f" ({self.detail})" if self.detail else ""
            if self.rows:
                log.info("%s: %s rows in %.1f s%s", self.stage, f"{self.rows:,}", self.elapsed(), detail)
            else:
                log.info("%s done in %.1f s%s", self.stage, self.elapsed(), detail)
        return False


_current: StageProgress | None = None


def current() -> StageProgress:
    """The stage now running (a silent stand-in when none is, e.g. a stage function called from a test)."""
    return _current if _current is not None else StageProgress("-", stream=io.StringIO())  # not a tty: silent


def start(stage: str) -> StageProgress:
    global _current
    _current = StageProgress(stage)
    return _current
