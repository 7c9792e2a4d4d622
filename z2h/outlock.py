"""One writer per output folder: an exclusive ``fcntl`` lock on ``OUT/.z2h.lock``.

Two ``z2h eval run`` on one ``--out`` both rewrote run.json and metrics.csv, and the last writer won
(the other's methods vanished). The second run now fails at once and names the holder. The lock dies
with its process (kernel-held), so a SIGKILL never leaves a stale lock; the file itself stays, because
deleting it would let two later runs lock two different files.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

LOCK_NAME = ".z2h.lock"


class FolderBusy(RuntimeError):
    """Another process holds the output folder's lock; the message names it."""


def _holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        info = json.loads(os.read(fd, 4096).decode() or "{}")
        return (f"process {info['pid']} on {info['host']} ({info['command']!r}, since {info['started']})")
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


@contextmanager
def locked(folder: str | Path, command: str | None = None) -> Iterator[Path]:
    """Hold ``folder``'s lock for the ``with`` block (the folder must exist); :class:`FolderBusy` if held."""
    path = Path(folder) / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FolderBusy(f"{folder} is in use by {_holder(fd)}: wait for it to finish or pass another "
                             "--out") from None
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "command": command or " ".join(["z2h", *sys.argv[1:]]),
                "started": datetime.now(UTC).isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the lock
