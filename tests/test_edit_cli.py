"""``z2h edit`` as a user runs it: artefacts, JSON progress, cancel, bad input, no silent overwrite."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import write_random_vgg_cache
from eval_fixtures import pan_video

from z2h.io import read_frames, read_image, write_frames, write_image

FAST = ["--work-size", "64", "--steps", "30", "--pseudo-pairs", "1", "--threads", "1"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """Random VGG16 weights in a private Z2H_CACHE (the subprocesses get it through the environment)."""
    root = tmp_path_factory.mktemp("cache")
    write_random_vgg_cache(root)
    return root


@pytest.fixture
def video(tmp_path):
    v = pan_video(frames=5, size=(48, 48), step=(2, 1))
    write_frames(tmp_path / "video", v["original"])
    write_image(tmp_path / "ref.png", v["edited"][1])
    return tmp_path, v


def z2h_edit(cache, *args, **popen):
    env = {**os.environ, "Z2H_CACHE": str(cache), "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "z2h", "edit", *map(str, args)]
    if popen:
        return subprocess.Popen(cmd, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return subprocess.run(cmd, env=env, text=True, capture_output=True, timeout=300)


def events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]  # every stdout line must be JSON


def test_edit_writes_every_artefact_and_follows_the_json_contract(cache, video):
    root, v = video
    out = root / "out"
    r = z2h_edit(cache, "--video", root / "video", "--anchor", 1, "--reference", root / "ref.png",
                 "--out", out, "--progress", "json", *FAST)
    assert r.returncode == 0, r.stderr
    evs = events(r.stdout)
    for e in evs[:-1]:
        assert set(e) == {"event", "stage", "step", "total", "message"} and e["event"] == "progress"
        assert isinstance(e["step"], int) and 0 <= e["step"] <= e["total"]
    assert {e["stage"] for e in evs[:-1]} == {"zero", "hero-pairs", "hero-train", "hero", "write"}
    assert evs[-1] == {"event": "done", "out": str(out), "partial": False}
    assert [p.name for p in sorted((out / "frames").iterdir())] == [f"{i:04d}.png" for i in range(5)]
    frames, zero = read_frames(out / "frames"), read_frames(out / "zero")
    assert frames.shape == zero.shape == v["original"].shape
    np.testing.assert_array_equal(frames[1], read_image(root / "ref.png"))
    assert len(read_frames(out / "preview.mp4")) == 5
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "complete" and run["engine"] == "offline"
    assert run["settings"]["hero"]["mode"] == 2 and run["settings"]["zero"]["k"] == 1
    assert run["written"] == {"zero": 5, "frames": 5, "preview": True}
    assert {"zero", "hero_train", "hero", "write", "total"} <= set(run["timings"])
    assert run["versions"]["torch"] and run["train"]["steps"] == 30
    # training statistics: a fixed step count by default, never cut short without a --time-budget
    assert (run["train"]["steps_planned"], run["train"]["time_budget_s"], run["train"]["budget_hit"]) == \
        (30, None, False)
    assert run["settings"]["hero"]["time_budget_s"] is None


def test_no_overwrite_without_the_flag(cache, video):
    root, _ = video
    out = root / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    args = ["--video", root / "video", "--anchor", 1, "--reference", root / "ref.png", "--out", out, *FAST]
    r = z2h_edit(cache, *args, "--progress", "json")
    assert r.returncode == 1
    assert "not empty" in events(r.stdout)[-1]["message"] and "--overwrite" in r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    (out / "frames").mkdir()
    (out / "frames" / "0099.png").write_bytes(b"stale")
    r = z2h_edit(cache, *args, "--overwrite", "--progress", "none")
    assert r.returncode == 0, r.stderr
    assert (out / "notes.txt").read_text() == "mine"  # only an earlier run's artefacts are replaced
    assert not (out / "frames" / "0099.png").exists()


@pytest.mark.parametrize("case", ["missing-video", "odd-frame", "anchor", "reference-size", "weights"])
def test_bad_input_gives_a_clear_error(cache, video, case):
    root, v = video
    args = {"--video": root / "video", "--anchor": 1, "--reference": root / "ref.png", "--out": root / "out"}
    expect = {"missing-video": "video not found", "odd-frame": "0003.png is 40x48",
              "anchor": "--anchor 9 is out of range", "reference-size": "reference .* is 48x30",
              "weights": "pass --hero-model"}[case]
    if case == "missing-video":
        args["--video"] = root / "nothing"
    elif case == "odd-frame":
        write_image(root / "video" / "0003.png", v["original"][3][:, :40])
    elif case == "anchor":
        args["--anchor"] = 9
    elif case == "reference-size":
        write_image(root / "ref.png", v["edited"][1][:30])
    else:
        args["--engine"] = "diffusion"
    r = z2h_edit(cache, *[x for kv in args.items() for x in kv], "--progress", "json")
    assert r.returncode == 1
    last = events(r.stdout)[-1]
    assert last["event"] == "error"
    assert re.search(expect, last["message"]), last["message"]
    assert not (root / "out" / "run.json").exists()  # nothing presented as a result


def test_write_failure_is_reported_and_not_complete(cache, video, monkeypatch):
    """A full disk while writing frames: exit 1, an error event, run.json says failed."""
    from z2h import io
    from z2h.cli import main

    root, _ = video
    monkeypatch.setenv("Z2H_CACHE", str(cache))
    real = io.write_image
    calls = []

    def flaky(path, image, **options):
        calls.append(path)
        if path.parent.name == "frames" and len(calls) > 7:
            raise OSError(28, "No space left on device")
        real(path, image, **options)

    monkeypatch.setattr(io, "write_image", flaky)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:  # in-process run: it installs its own SIGINT/SIGTERM handlers, give pytest's back after
        code = main(["edit", "--video", str(root / "video"), "--anchor", "1", "--reference",
                     str(root / "ref.png"), "--out", str(root / "out"), "--progress", "none", *FAST])
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    assert code == 1
    run = json.loads((root / "out" / "run.json").read_text())
    assert run["status"] == "failed" and "No space left" in run["error"]
    assert run["written"]["preview"] is False


def test_sigterm_gives_partial_results_and_exit_130(cache, video):
    root, _ = video
    out = root / "out"
    p = z2h_edit(cache, "--video", root / "video", "--anchor", 1, "--reference", root / "ref.png",
                 "--out", out, "--progress", "json", "--work-size", "64", "--steps", "100000",
                 "--time-budget", "0", "--pseudo-pairs", "1", "--threads", "1", popen=True)
    deadline = time.time() + 240
    for line in p.stdout:  # wait until the Hero-Stage is training (the zero frames are written by then)
        if json.loads(line).get("stage") == "hero-train" or time.time() > deadline:
            break
    p.send_signal(signal.SIGTERM)
    rest, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    last = events(rest)[-1]
    assert last == {"event": "cancelled", "out": str(out), "partial": True}
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "partial" and run["written"]["zero"] == 5 and run["written"]["frames"] == 0
    assert len(read_frames(out / "zero")) == 5 and not (out / "preview.mp4").exists()


def test_missing_offline_weights_name_the_fix(video, tmp_path):
    root, _ = video
    out = root / "out"
    r = z2h_edit(tmp_path / "empty-cache", "--video", root / "video", "--anchor", 1, "--reference",
                 root / "ref.png", "--out", out, "--progress", "json", *FAST)
    assert r.returncode == 1
    assert "z2h weights fetch" in events(r.stdout)[-1]["message"]
    assert json.loads((out / "run.json").read_text())["status"] == "failed"
    assert not (out / "frames").exists()
