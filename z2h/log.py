"""Logging for every command: ``z2h -v``/``-q`` (or after the command) set how much reaches stderr.

Messages go to stderr through the ``z2h`` logger, read at emission time (so a redirected or captured
stderr is honoured). Default level INFO; ``-q`` WARNING (also hides progress bars), ``-qq`` ERROR,
``-v`` DEBUG. Errors a command ends on are printed directly and are never silenced.
"""

from __future__ import annotations

import logging
import sys

ROOT = "z2h"


class _StderrHandler(logging.StreamHandler):
    """A StreamHandler on whatever ``sys.stderr`` is at the moment of each record."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def setup(verbosity: int = 0) -> None:
    """Configure the ``z2h`` logger for a command line run (``verbosity`` = count of -v minus -q)."""
    logger = logging.getLogger(ROOT)
    for h in [h for h in logger.handlers if isinstance(h, _StderrHandler)]:
        logger.removeHandler(h)
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel({1: logging.DEBUG, 0: logging.INFO, -1: logging.WARNING}.get(
        max(-2, min(1, verbosity)), logging.ERROR))
    logger.propagate = False


def quiet() -> bool:
    """True when -q was given: progress bars and per-stage lines are hidden too (False as a library)."""
    return logging.getLogger(ROOT).level > logging.INFO
