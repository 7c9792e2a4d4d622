"""The add-on's backend client against real subprocesses: a fake backend and `python -m z2h`."""

from __future__ import annotations

import importlib.util
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import pid_gone

ROOT = Path(__file__).resolve().parents[1]


def _load_client():
    # blender_addon/__init__.py imports bpy; the client itself is plain Python, so load it by path.
    spec = importlib.util.spec_from_file_location("z2h_addon_client", ROOT / "blender_addon" / "client.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


client = _load_client()

FAKE_BACKEND = textwrap.dedent(
    """
    import json, signal, subprocess, sys, time
    mode, steps, delay = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    def emit(**e):
        print(json.dumps(e), flush=True)
    cancelled = []
    if mode == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, lambda *a: cancelled.append(1))
    if mode in ("grandchild", "stubborn"):
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        print(f"child {child.pid}", file=sys.stderr, flush=True)
    print("loading weights (a human log line on stderr)", file=sys.stderr, flush=True)
    print("a stray print that is not JSON", flush=True)
    for i in range(1, steps + 1):
        if cancelled:
            emit(event="cancelled", out="OUT", partial=True)
            sys.exit(130)
        time.sleep(delay)
        emit(event="progress", stage="zero" if i <= steps // 2 else "hero", step=i, total=steps, message="m")
        if mode == "error" and i == 2:
            emit(event="error", message="reference image is 64x64, the video is 32x32")
            sys.exit(1)
        if mode == "crash" and i == 2:
            raise RuntimeError("CUDA out of memory (a fake crash)")
    emit(event="done", out="OUT", partial=False)
    """
)


@pytest.fixture
def fake(tmp_path):
    script = tmp_path / "fake_backend.py"
    script.write_text(FAKE_BACKEND)
    return lambda mode, steps=4, delay=0.01: [sys.executable, str(script), mode, str(steps), str(delay)]


def _child_pid(job) -> int:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for line in job.stderr_tail.splitlines():
            if line.startswith("child "):
                return int(line.split()[1])
        time.sleep(0.02)
    raise AssertionError("the fake backend never reported its child")


def test_progress_events_are_parsed(fake):
    job = client.BackendJob(fake("ok", steps=6))
    seen = []
    while not (state := job.poll()).finished:
        seen.append((state.stage, state.step, state.total))
        time.sleep(0.005)
    assert state.status == "done" and state.out == "OUT" and not state.partial
    assert state.returncode == 0
    assert state.events == 7  # 6 progress + done; the stray non-JSON line is not an event
    assert state.stage == "hero" and state.step == 6 and state.total == 6 and state.fraction == 1.0
    assert "a stray print that is not JSON" in job.stderr_tail
    steps = [s for _, s, _ in seen]
    assert steps == sorted(steps)  # polled snapshots never go backwards


def test_error_event_message_is_surfaced(fake):
    state = client.BackendJob(fake("error")).wait(timeout=30)
    assert state.status == "error" and state.returncode == 1
    assert state.message == "reference image is 64x64, the video is 32x32"


def test_crash_surfaces_last_stderr_line_not_the_traceback(fake):
    state = client.BackendJob(fake("crash")).wait(timeout=30)
    assert state.status == "error" and state.returncode == 1
    assert state.message == "RuntimeError: CUDA out of memory (a fake crash)"
    assert "Traceback" not in state.message


def test_missing_interpreter_is_a_clear_error(tmp_path):
    with pytest.raises(client.BackendError, match="cannot start the backend"):
        client.BackendJob([str(tmp_path / "no-such-python"), "-m", "z2h"])


def test_cancel_stops_cooperative_backend_and_its_grandchild(fake):
    job = client.BackendJob(fake("grandchild", steps=1000, delay=0.05))
    child = _child_pid(job)
    while job.poll().step < 1:
        time.sleep(0.02)
    t0 = time.monotonic()
    job.cancel(grace=3.0, wait=True)
    state = job.wait(timeout=10)
    assert state.status == "cancelled" and state.partial
    assert state.returncode == client.EXIT_CANCELLED  # the backend stopped itself on SIGTERM
    assert pid_gone(job.proc.pid) and pid_gone(child)
    assert not job.group_alive()
    assert time.monotonic() - t0 < 4.0


def test_cancel_kills_a_backend_that_ignores_sigterm(fake):
    job = client.BackendJob(fake("stubborn", steps=1000, delay=0.05))
    child = _child_pid(job)
    job.cancel(grace=0.5, wait=True)
    state = job.wait(timeout=10)
    assert state.status == "cancelled"
    assert state.returncode == -signal.SIGKILL
    assert pid_gone(job.proc.pid) and pid_gone(child)


def test_cancel_without_wait_returns_at_once_and_escalates_in_background(fake):
    job = client.BackendJob(fake("stubborn", steps=1000, delay=0.05))
    child = _child_pid(job)
    t0 = time.monotonic()
    job.cancel(grace=0.3)
    assert time.monotonic() - t0 < 0.2
    assert job.wait(timeout=10).status == "cancelled"
    assert pid_gone(child)


def test_edit_command_follows_the_cli_contract():
    argv = client.edit_command("py", video="V", anchor=3, reference="R.png", out="O", engine="diffusion",
                               zero_model="/m/sd", overwrite=True)
    assert argv == ["py", "-m", "z2h", "edit", "--video", "V", "--anchor", "3", "--reference", "R.png",
                    "--out", "O", "--engine", "diffusion", "--progress", "json", "--zero-model", "/m/sd",
                    "--overwrite"]
    assert "--hero-model" not in client.edit_command("py", video="V", anchor=0, reference="R", out="O")
    argv = client.edit_command("py", video="V", anchor=0, reference="R", out="O", extra=["--steps", "5"])
    assert argv[-2:] == ["--steps", "5"]


def test_check_backend_with_the_real_z2h():
    from z2h import __version__

    assert client.check_backend(sys.executable) == f"z2h {__version__}"


def test_check_backend_errors(tmp_path):
    with pytest.raises(client.BackendError, match="no backend Python set"):
        client.check_backend("")
    with pytest.raises(client.BackendError, match="not found"):
        client.check_backend(str(tmp_path / "missing" / "python"))
    # A Python without z2h: the message is the last stderr line, not the whole traceback.
    bare = tmp_path / "bare-python"
    bare.write_text(f"#!/bin/sh\nexec {sys.executable} -I -S \"$@\"\n")
    bare.chmod(0o755)
    with pytest.raises(client.BackendError, match=r"cannot run z2h: .*No module named z2h"):
        client.check_backend(str(bare))


def test_real_z2h_failure_is_surfaced():
    # The real CLI rejecting its arguments: the user sees argparse's one-line reason.
    state = client.BackendJob([sys.executable, "-m", "z2h", "no-such-command"]).wait(timeout=60)
    assert state.status == "error" and state.returncode == 2
    assert "invalid choice: 'no-such-command'" in state.message


@pytest.mark.slow
def test_real_z2h_edit_runs_when_available(tmp_path):
    if subprocess.run([sys.executable, "-c", "import z2h.edit_cli"], capture_output=True).returncode:
        pytest.skip("z2h edit is not written yet")
    import numpy as np

    from z2h.io import write_frames, write_image

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (3, 32, 32, 3), dtype=np.uint8)
    write_frames(tmp_path / "video", frames)
    write_image(tmp_path / "ref.png", frames[1][..., ::-1].copy())
    argv = client.edit_command(sys.executable, video=str(tmp_path / "video"), anchor=1,
                               reference=str(tmp_path / "ref.png"), out=str(tmp_path / "out"),
                               extra=["--steps", "10", "--time-budget", "5", "--pseudo-pairs", "2"])
    job = client.BackendJob(argv)
    state = job.wait(timeout=300)
    assert state.status == "done", (state.message, job.stderr_tail)
    assert state.events >= 2 and state.total > 0
    assert sorted(p.name for p in (tmp_path / "out" / "frames").iterdir()) == ["0000.png", "0001.png",
                                                                               "0002.png"]


class _FakeWindowsProcess:
    """What Popen returns, for a Windows backend that never runs (the platform is simulated)."""

    def __init__(self, argv, **kwargs):
        self.args, self.kwargs, self.pid, self.returncode = argv, kwargs, 4242, None
        self.stdout, self.stderr = iter(()), iter(())

    def poll(self):
        return self.returncode

    def wait(self, timeout=None):
        return self.returncode


def test_windows_branch_uses_a_console_group_ctrl_break_and_taskkill(monkeypatch):
    calls = []
    monkeypatch.setattr(client, "is_windows", lambda: True)
    monkeypatch.setattr(client.subprocess, "Popen", _FakeWindowsProcess)
    monkeypatch.setattr(client.os, "kill", lambda pid, sig: calls.append(("kill", pid, sig)))
    monkeypatch.setattr(client.os, "killpg", lambda *a: pytest.fail("os.killpg does not exist on Windows"))

    def run(argv, **kwargs):
        calls.append(("run", argv))
        job.proc.returncode = 1  # taskkill /F ended the tree
        return subprocess.CompletedProcess(argv, 0)

    monkeypatch.setattr(client.subprocess, "run", run)
    job = client.BackendJob(["python", "-m", "z2h", "edit"])
    assert job.proc.kwargs["creationflags"] == getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0x200)
    assert "start_new_session" not in job.proc.kwargs
    assert job.group_alive()
    job.cancel(grace=0.2, wait=True)
    # Ctrl+Break to the backend's console group first (it stops cooperatively), then the whole tree.
    assert calls[0] == ("kill", 4242, getattr(signal, "CTRL_BREAK_EVENT", 1))
    assert calls[1] == ("run", ["taskkill", "/F", "/T", "/PID", "4242"])
    assert not job.group_alive() and job.poll().status == "cancelled"


def test_posix_branch_starts_a_new_session(monkeypatch):
    monkeypatch.setattr(client, "is_windows", lambda: False)
    monkeypatch.setattr(client.subprocess, "Popen", _FakeWindowsProcess)
    job = client.BackendJob(["python"])
    assert job.proc.kwargs["start_new_session"] is True and "creationflags" not in job.proc.kwargs
