"""Progress reporting and cooperative cancellation, shared by every long-running job.

Long loops take a ``ProgressFn`` (``progress(done, total)``). A :class:`Reporter` hands out one per
stage and renders them either as tqdm bars (people) or as JSON lines on stdout (the Blender add-on):
``{"event": "progress", "stage": "zero", "step": 3, "total": 48, "message": ""}``.
Cancellation is checked inside the callback, so every loop that reports progress is also cancellable.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

from z2h.log import quiet

ProgressFn = Callable[[int, int], None]
log = logging.getLogger("z2h")


class Cancelled(Exception):
    """Raised inside a progress callback once cancellation was requested (Ctrl-C, SIGTERM, add-on)."""


def no_progress(done: int, total: int) -> None:
    """A ProgressFn that reports nothing."""


class Reporter:
    """Renders stage progress as tqdm bars (``mode="bar"``), JSON lines (``"json"``) or not at all."""

    def __init__(self, mode: str = "bar", stream: TextIO | None = None, line_interval: float = 10.0):
        if mode not in ("bar", "json", "none"):
            raise ValueError(f"progress mode must be bar, json or none, not {mode!r}")
        self.mode = mode
        self.stream = stream or (sys.stdout if mode == "json" else sys.stderr)
        self.cancel_event = threading.Event()
        self._bars: dict[str, Any] = {}
        self._lines: dict[str, tuple[int, float]] = {}  # stage -> (last tenth, time of its last line)
        self.line_interval = line_interval
        isatty = getattr(self.stream, "isatty", None)
        self._tty = bool(isatty and isatty())

    def emit(self, event: str, **fields: Any) -> None:
        """Write one JSON event (json mode); 'bar' prints the message of other events on stderr.

        An error's message always goes to stderr as one line, in every mode: ``--progress none``
        silences progress, never the reason a command failed.
        """
        if self.mode == "json":
            self.stream.write(json.dumps({"event": event, **fields}) + "\n")
            self.stream.flush()
        if "message" in fields and event != "progress":
            if event == "error":
                print(f"z2h: error: {fields['message']}", file=sys.stderr, flush=True)
            elif self.mode == "bar":
                log.info("z2h: %s", fields["message"])

    def stage(self, name: str, message: str = "") -> ProgressFn:
        """A ProgressFn for one stage; it raises :class:`Cancelled` once cancellation was requested."""

        def progress(done: int, total: int) -> None:
            if self.cancel_event.is_set():
                raise Cancelled(f"cancelled during {name}")
            if self.mode == "json":
                self.emit("progress", stage=name, step=done, total=total, message=message)
            elif self.mode == "bar" and not quiet():
                if not self._tty:
                    self._line(name, done, total)
                    return
                from tqdm import tqdm

                bar = self._bars.get(name)
                if bar is None or bar.total != total:
                    bar = self._bars[name] = tqdm(total=total, desc=name, file=self.stream, leave=True)
                bar.update(done - bar.n)
                if done >= total:
                    bar.close()

        return progress

    def _line(self, name: str, done: int, total: int) -> None:
        """Not a terminal (a log file, CI): plain lines instead of a redrawn bar.

        One line when a stage ends; a long stage also reports each new 10% once ``line_interval``
        seconds have passed since its last line, so quick stages cost one line and slow ones show life.
        """
        now = time.monotonic()
        tenth = 10 * done // max(total, 1)
        last_tenth, last_time = self._lines.get(name, (0, now))
        if tenth < last_tenth:  # the stage started over
            last_tenth, last_time = 0, now
        if done >= total or (tenth > last_tenth and now - last_time >= self.line_interval):
            percent = 100 * done // max(total, 1)
            print(f"z2h: {name} {done}/{total} ({percent}%)", file=self.stream, flush=True)
            last_tenth, last_time = (0, now) if done >= total else (tenth, now)
        self._lines[name] = (last_tenth, last_time)

    def cancel(self) -> None:
        self.cancel_event.set()

    def install_signal_handlers(self) -> None:
        """Turn SIGINT/SIGTERM into a cooperative cancel: the running loop stops at its next step."""

        def handler(signum: int, frame: Any) -> None:
            if self.cancel_event.is_set():  # second signal: stop now
                raise KeyboardInterrupt
            self.cancel()

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)
        if hasattr(signal, "SIGBREAK"):  # Windows: the add-on's Cancel sends CTRL_BREAK_EVENT
            signal.signal(signal.SIGBREAK, handler)
