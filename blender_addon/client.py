"""The backend client: runs ``python -m z2h ...`` as a subprocess and follows its JSON progress lines.

Plain Python (no bpy) so it is testable anywhere. Torch never loads inside Blender: the add-on starts
the backend in its own process group, a background thread reads one JSON object per stdout line
(see docs/architecture.md, "Progress JSON lines") into a lock-protected :class:`JobState`, and the
UI polls :meth:`BackendJob.poll` from a timer. :meth:`BackendJob.cancel` terminates the whole group,
so a backend's own workers (e.g. ffmpeg) die with it. On Windows, which has no process groups of that
kind, no killpg and no SIGKILL, the job starts in a new console process group, Cancel sends it
CTRL_BREAK_EVENT (the backend stops cooperatively) and escalates to ``taskkill /F /T`` (the tree).
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Sequence


def is_windows() -> bool:
    """The platform branch (a function, so tests can simulate Windows on Linux)."""
    return os.name == "nt"


# Exit codes of `z2h edit` (docs/architecture.md).
EXIT_CANCELLED = 130
STDERR_TAIL = 40


STOP, KILL = "stop", "kill"
SIGKILL = getattr(signal, "SIGKILL", 9)  # not defined on Windows


def _group_options() -> dict:
    """Popen options that give the job its own process group, so cancel() reaches grandchildren."""
    if is_windows():
        return {"creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0x200)}
    return {"start_new_session": True}


class BackendError(RuntimeError):
    """The backend could not be started or reported a failure; the message is meant for the user."""


@dataclasses.dataclass
class JobState:
    """A snapshot of a backend job. ``status`` is running, done, error or cancelled."""

    status: str = "running"
    stage: str = ""
    step: int = 0
    total: int = 0
    message: str = ""
    out: str = ""
    partial: bool = False
    returncode: int | None = None
    events: int = 0
    stage_started: float = 0.0  # time.monotonic() when the current stage began (for a time estimate)

    @property
    def finished(self) -> bool:
        """The process has exited and the status is final (a 'done' event alone is not enough)."""
        return self.returncode is not None

    @property
    def fraction(self) -> float:
        """Progress of the current stage in [0, 1]."""
        return min(max(self.step / self.total, 0.0), 1.0) if self.total > 0 else 0.0

    def stage_eta(self, now: float | None = None) -> float | None:
        """Seconds the current stage still needs at its pace so far; None before its first step."""
        if self.step <= 0 or self.total <= 0 or not self.stage_started:
            return None
        elapsed = (time.monotonic() if now is None else now) - self.stage_started
        return max(elapsed / self.step * (self.total - self.step), 0.0)


def last_line(text: str) -> str:
    """The last non-empty line of ``text`` (the useful end of a traceback), or ''."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else ""


class BackendJob:
    """One backend subprocess (``argv``), started at construction, in a new process group."""

    def __init__(self, argv: Sequence[str], *, env: dict[str, str] | None = None, cwd: str | None = None,
                 log: str | os.PathLike | None = None):
        """``log``: a file that gets the command line and every stderr and non-JSON stdout line."""
        self.argv = [str(a) for a in argv]
        self.log_path = None if log is None else os.fspath(log)
        self._log = None
        if self.log_path is not None:
            os.makedirs(os.path.dirname(os.path.abspath(self.log_path)), exist_ok=True)
            self._log = open(self.log_path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 (closed by readers)
            self._log.write("$ " + " ".join(self.argv) + "\n")
        full_env = dict(os.environ if env is None else env)
        full_env["PYTHONUNBUFFERED"] = "1"  # progress lines must arrive as they are written
        self._lock = threading.Lock()
        self._state = JobState(stage_started=time.monotonic())
        self._log_lock = threading.Lock()
        self._open_readers = 2
        self._stderr: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL)
        self._cancel_requested = False
        try:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                encoding="utf-8",
                errors="replace",
                bufsize=1,
                env=full_env,
                cwd=cwd,
                **_group_options(),
            )
        except OSError as exc:
            self._write_log(f"cannot start: {exc}")
            self._close_log()
            raise BackendError(f"cannot start the backend {self.argv[0]!r}: {exc.strerror or exc}") from exc
        self.pgid = self.proc.pid  # a new session's leader is its own group leader
        self._threads = [
            threading.Thread(target=self._read_stdout, name="z2h-stdout", daemon=True),
            threading.Thread(target=self._read_stderr, name="z2h-stderr", daemon=True),
        ]
        for t in self._threads:
            t.start()

    # -- reader threads -------------------------------------------------------------------------------
    def _read_stdout(self) -> None:
        for line in self.proc.stdout:
            line = line.strip()
            if not line:
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                event = None
            if not isinstance(event, dict) or "event" not in event:
                self._stderr.append(line)  # a stray print: keep it as log, never as progress
                self._write_log(line)
                continue
            with self._lock:
                self._apply(event)
        self._reader_done()

    def _read_stderr(self) -> None:
        for line in self.proc.stderr:
            if line.strip():
                self._stderr.append(line.rstrip())
                self._write_log(line.rstrip())
        self._reader_done()

    def _write_log(self, line: str) -> None:
        if self._log is not None:
            with self._log_lock:
                if self._log is not None:
                    self._log.write(line + "\n")

    def _reader_done(self) -> None:
        with self._log_lock:
            self._open_readers -= 1
            if self._open_readers == 0:
                self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def _apply(self, event: dict) -> None:
        s = self._state
        s.events += 1
        kind = event.get("event")
        if kind == "progress":
            stage = str(event.get("stage", s.stage))
            if stage != s.stage:
                s.stage_started = time.monotonic()
            s.stage = stage
            s.step = int(event.get("step", 0))
            s.total = int(event.get("total", 0))
            s.message = str(event.get("message", ""))
        elif kind == "done":
            s.status, s.out, s.partial = "done", str(event.get("out", "")), bool(event.get("partial", False))
            s.message = str(event.get("message", "")) or "done"
        elif kind == "error":
            s.status, s.message = "error", str(event.get("message", "")) or "the backend reported an error"
        elif kind == "cancelled":
            s.status, s.out, s.partial = "cancelled", str(event.get("out", "")), True
            s.message = "cancelled"

    # -- public API -----------------------------------------------------------------------------------
    def poll(self) -> JobState:
        """The latest state (a copy). Once the process has exited, the state is final."""
        rc = self.proc.poll()
        if rc is not None and self._state.returncode is None:
            # Drain the pipes once: the final event may still be in flight. Bounded, because a
            # surviving grandchild can hold the pipe open.
            for t in self._threads:
                t.join(timeout=1.0)
        with self._lock:
            s = self._state
            if rc is not None and s.returncode is None:
                s.returncode = rc
                self._finish(s, rc)
            return dataclasses.replace(s)

    def _finish(self, s: JobState, rc: int) -> None:
        """Settle the status from the exit code when the backend sent no (consistent) final event."""
        if s.status == "done" and rc != 0:
            s.status = "error"
            s.message = self._stderr_message() or f"the backend exited with code {rc} after 'done'"
        if s.status != "running":
            return
        if self._cancel_requested or rc in (EXIT_CANCELLED, -signal.SIGTERM, -signal.SIGINT, -SIGKILL):
            s.status, s.message, s.partial = "cancelled", "cancelled", True
        elif rc == 0:
            s.status, s.message = "done", "done"
        else:
            s.status = "error"
            s.message = self._stderr_message() or f"the backend exited with code {rc}"

    def _stderr_message(self) -> str:
        return last_line("\n".join(self._stderr))

    @property
    def stderr_tail(self) -> str:
        """The last lines the backend wrote to stderr (for a log or a bug report)."""
        return "\n".join(self._stderr)

    def running(self) -> bool:
        return self.proc.poll() is None

    def group_alive(self) -> bool:
        """Whether any process of the job's group (the backend or a child of it) still exists
        (on Windows: the backend itself; ``taskkill /T`` takes its children with it)."""
        if is_windows():
            return self.proc.poll() is None
        try:
            os.killpg(self.pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # exists, owned by someone else (cannot happen for our own group)
            return True
        return True

    def cancel(self, grace: float = 3.0, wait: bool = False) -> None:
        """Terminate the process group: SIGTERM (the backend stops cooperatively, exit 130), then
        SIGKILL after ``grace`` seconds for whatever is left. ``wait=False`` escalates on a thread."""
        self._cancel_requested = True
        self._signal_group(STOP)
        if wait:
            self._escalate(grace)
        else:
            threading.Thread(target=self._escalate, args=(grace,), name="z2h-cancel", daemon=True).start()

    def _escalate(self, grace: float) -> None:
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            self.proc.poll()  # reap the leader so it does not linger as a zombie group member
            if not self.group_alive():
                return
            time.sleep(0.05)
        self._signal_group(KILL)
        try:
            self.proc.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            pass

    def _signal_group(self, how: str) -> None:
        """``STOP``: ask the whole group to stop; ``KILL``: end it now."""
        if is_windows():
            if how == STOP:
                try:  # the console group of the backend gets Ctrl+Break (SIGBREAK in Python)
                    os.kill(self.proc.pid, getattr(signal, "CTRL_BREAK_EVENT", 1))
                except OSError:
                    pass
            else:
                subprocess.run(["taskkill", "/F", "/T", "/PID", str(self.proc.pid)], capture_output=True,
                               stdin=subprocess.DEVNULL, check=False)
            return
        try:
            os.killpg(self.pgid, signal.SIGTERM if how == STOP else signal.SIGKILL)
        except ProcessLookupError:
            pass

    def wait(self, timeout: float | None = None, interval: float = 0.05) -> JobState:
        """Block until the job finished (or ``timeout`` passed) and return its state."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            state = self.poll()
            if state.finished or (deadline is not None and time.monotonic() >= deadline):
                return state
            time.sleep(interval)


def edit_command(
    python: str,
    *,
    video: str,
    anchor: int,
    reference: str,
    out: str,
    engine: str = "offline",
    zero_model: str = "",
    hero_model: str = "",
    overwrite: bool = False,
    extra: Sequence[str] = (),
) -> list[str]:
    """The argv of ``python -m z2h edit ... --progress json`` (the contract in docs/architecture.md)."""
    argv = [python, "-m", "z2h", "edit", "--video", video, "--anchor", str(anchor), "--reference", reference,
            "--out", out, "--engine", engine, "--progress", "json"]
    if zero_model:
        argv += ["--zero-model", zero_model]
    if hero_model:
        argv += ["--hero-model", hero_model]
    if overwrite:
        argv.append("--overwrite")
    return argv + list(extra)  # e.g. ["--steps", "200"]: options of `z2h edit` the add-on has no field for


def check_backend(python: str, timeout: float = 120.0) -> str:
    """Run ``python -m z2h --version`` and return the version line; :class:`BackendError` otherwise."""
    if not python:
        raise BackendError("no backend Python set: choose the python of a venv with z2h installed "
                           "in the add-on preferences")
    try:
        proc = subprocess.run([python, "-m", "z2h", "--version"], capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
    except FileNotFoundError as exc:
        raise BackendError(f"backend Python not found: {python}") from exc
    except PermissionError as exc:
        raise BackendError(f"backend Python is not executable: {python}") from exc
    except subprocess.TimeoutExpired as exc:
        raise BackendError(f"{python} -m z2h --version did not answer within {timeout:.0f} s") from exc
    version = (proc.stdout.strip() or proc.stderr.strip()).splitlines()
    if proc.returncode != 0 or not version or not version[0].startswith("z2h"):
        detail = last_line(proc.stderr) or last_line(proc.stdout) or f"exit code {proc.returncode}"
        raise BackendError(f"{python} cannot run z2h: {detail}")
    return version[0]
