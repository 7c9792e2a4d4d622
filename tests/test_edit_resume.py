"""``z2h edit --resume``: finished frames are kept only when unchanged, the rest is redone, same result."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import write_random_vgg_cache
from eval_fixtures import pan_video

from z2h.io import read_frames, write_frames, write_image

FAST = ["--work-size", "64", "--steps", "30", "--pseudo-pairs", "1", "--threads", "1", "--progress", "none"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    write_random_vgg_cache(root)
    return root


def z2h_edit(cache, *args):
    env = {**os.environ, "Z2H_CACHE": str(cache)}
    return subprocess.run([sys.executable, "-m", "z2h", "edit", *map(str, args)], env=env, text=True,
                          capture_output=True, timeout=300)


def test_resume_keeps_unchanged_frames_and_redoes_the_rest(cache, tmp_path):
    v = pan_video(frames=5, size=(48, 48), step=(2, 1))
    write_frames(tmp_path / "video", v["original"])
    write_image(tmp_path / "ref.png", v["edited"][1])
    out = tmp_path / "out"
    args = ["--video", tmp_path / "video", "--anchor", 1, "--reference", tmp_path / "ref.png", "--out", out]
    r = z2h_edit(cache, *args, *FAST)
    assert r.returncode == 0, r.stderr
    first = read_frames(out / "frames")
    assert (out / "work" / "restorer.safetensors").is_file()

    # an interruption: frame 3 never written, frame 2 damaged, zero frame 4 missing, no run.json yet
    (out / "frames" / "0003.png").unlink()
    write_image(out / "frames" / "0002.png", np.zeros((48, 48, 3), np.uint8))
    (out / "zero" / "0004.png").unlink()
    (out / "run.json").unlink()
    kept = (out / "frames" / "0000.png").stat().st_mtime_ns

    r = z2h_edit(cache, *args, *FAST, "--progress", "json")  # neither --resume nor --overwrite: refused
    assert r.returncode == 1 and "--resume" in r.stderr and "--overwrite" in r.stderr
    r = z2h_edit(cache, *args, "--k", "2", *FAST, "--resume", "--progress", "json")
    assert r.returncode == 1 and "other inputs or settings" in r.stderr

    r = z2h_edit(cache, *args, *FAST, "--resume")
    assert r.returncode == 0, r.stderr
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "complete" and run["resumed"] == {"zero": 4, "frames": 3}
    assert run["written"] == {"zero": 5, "frames": 5, "preview": True}
    assert run["train"]["loaded"].endswith("restorer.safetensors")  # not retrained
    np.testing.assert_array_equal(read_frames(out / "frames"), first)
    assert (out / "frames" / "0000.png").stat().st_mtime_ns == kept


def test_resume_needs_an_earlier_run(cache, tmp_path):
    v = pan_video(frames=3, size=(32, 32))
    write_frames(tmp_path / "video", v["original"])
    write_image(tmp_path / "ref.png", v["edited"][0])
    r = z2h_edit(cache, "--video", tmp_path / "video", "--anchor", 0, "--reference", tmp_path / "ref.png",
                 "--out", tmp_path / "out", *FAST, "--resume", "--progress", "json")
    assert r.returncode == 1 and "holds no interrupted z2h edit" in r.stderr


def test_a_video_file_is_streamed_through_a_decoded_work_folder(cache, tmp_path):
    from z2h.io import write_video

    v = pan_video(frames=4, size=(48, 64), step=(2, 1))
    write_video(tmp_path / "clip.mp4", v["original"], fps=10)
    anchor = read_frames(tmp_path / "clip.mp4")[0]  # the decoded (lossy) anchor is what gets edited
    write_image(tmp_path / "ref.png", anchor[:, ::-1])
    out = tmp_path / "out"
    r = z2h_edit(cache, "--video", tmp_path / "clip.mp4", "--anchor", 0, "--reference", tmp_path / "ref.png",
                 "--out", out, *FAST)
    assert r.returncode == 0, r.stderr
    assert read_frames(out / "frames").shape == (4, 48, 64, 3)
    assert not (out / "work" / "input").exists()  # the decoded frames are removed once done
