"""`z2h zero` / `z2h edit`: inputs never inside --out, --out checked before compute, clear input errors."""

import os
import subprocess
import sys

import numpy as np
import pytest
from eval_fixtures import pan_video

from z2h.io import read_frames, write_frames, write_image, write_video


@pytest.fixture
def video(tmp_path):
    v = pan_video(frames=4, size=(32, 32), step=(1, 0))
    write_frames(tmp_path / "video", v["original"])
    write_image(tmp_path / "ref.png", v["edited"][1])
    return tmp_path


def z2h(*args, cache=None, **kw):
    env = {**os.environ, "Z2H_CACHE": str(cache or "/nonexistent-z2h-cache")}
    return subprocess.run([sys.executable, "-m", "z2h", *map(str, args)], env=env, text=True,
                          capture_output=True, timeout=120, **kw)


@pytest.mark.parametrize("command", ["zero", "edit"])
@pytest.mark.parametrize("where", ["same", "inside"])
def test_input_inside_out_is_refused_and_kept(video, command, where):
    frames = video / "out" / "video" if where == "inside" else video / "video"
    if where == "inside":
        (video / "video").rename(video / "out-video")
        (video / "out").mkdir()
        (video / "out-video").rename(frames)
    out = frames if where == "same" else video / "out"
    before = sorted(p.name for p in frames.iterdir())
    r = z2h(command, "--video", frames, "--anchor", 1, "--reference", video / "ref.png", "--out", out,
            "--overwrite", "--progress", "none")
    assert r.returncode == 1
    assert "lies inside --out" in r.stderr and "Traceback" not in r.stderr
    assert sorted(p.name for p in frames.iterdir()) == before


@pytest.mark.parametrize("command", ["zero", "edit"])
def test_unwritable_out_fails_before_any_compute(video, command):
    # /proc refuses new folders even for root; with no weights in the cache the old code failed on
    # the missing weights (or after the whole Zero-Stage), never on --out.
    r = z2h(command, "--video", video / "video", "--anchor", 1, "--reference", video / "ref.png",
            "--out", "/proc/z2h-cannot-write/out", "--progress", "none")
    assert r.returncode == 1
    assert "/proc/z2h-cannot-write/out is not writable" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("fps", ["0", "-5", "nan"])
def test_bad_fps_refused_up_front(video, fps):
    r = z2h("edit", "--video", video / "video", "--anchor", 1, "--reference", video / "ref.png",
            "--out", video / "out", "--fps", fps, "--progress", "none")
    assert r.returncode == 1 and f"--fps {fps}" in r.stderr
    assert not (video / "out").exists()


@pytest.mark.parametrize("mode", ["none", "bar", "json"])
def test_errors_reach_stderr_in_every_progress_mode(video, mode):
    r = z2h("edit", "--video", video / "nothing", "--anchor", 1, "--reference", video / "ref.png",
            "--out", video / "out", "--progress", mode)
    assert r.returncode == 1
    assert [line for line in r.stderr.splitlines() if "video not found" in line] != [], r.stderr


def test_video_file_formats_and_single_images(video, tmp_path):
    v = read_frames(video / "video")
    write_video(tmp_path / "clip.mp4", v, fps=10)
    os.replace(tmp_path / "clip.mp4", tmp_path / "clip.m4v")
    assert read_frames(tmp_path / "clip.m4v").shape == v.shape
    with pytest.raises(ValueError, match=r"ref.png is a single image: pass a folder of frames .* or a video"):
        read_frames(video / "ref.png")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match=r"notes.txt is not a supported video file: pass .*\.mp4"):
        read_frames(tmp_path / "notes.txt")


def test_broken_pipe_is_quiet(tmp_path):
    read, write = os.pipe()
    os.close(read)  # the reader is gone before z2h prints anything (`z2h weights info | head -0`)
    env = {**os.environ, "Z2H_CACHE": str(tmp_path)}
    p = subprocess.run([sys.executable, "-m", "z2h", "weights", "info"], stdout=write, stderr=subprocess.PIPE,
                       text=True, env=env, timeout=60)
    os.close(write)
    assert "Traceback" not in p.stderr and "BrokenPipeError" not in p.stderr, p.stderr
    assert p.returncode == 141


def test_frames_round_trip_keeps_values(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    write_frames(tmp_path / "f", frames)
    np.testing.assert_array_equal(read_frames(tmp_path / "f"), frames)


def _clip_30fps_with_sound(tmp_path):
    import imageio_ffmpeg

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    clip = tmp_path / "clip.mp4"
    subprocess.run([ffmpeg, "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=48x32:rate=30",
                    "-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-t", "0.2", "-c:v", "libx264",
                    "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(clip)], check=True)
    return ffmpeg, clip


def test_preview_writer_takes_rate_and_audio_of_the_input(tmp_path):
    from z2h.io import video_fps

    ffmpeg, clip = _clip_30fps_with_sound(tmp_path)
    assert video_fps(clip) == 30 and video_fps(tmp_path) is None
    write_video(tmp_path / "preview.mp4", read_frames(clip), fps=video_fps(clip), audio_from=clip)
    probe = subprocess.run([ffmpeg, "-hide_banner", "-i", str(tmp_path / "preview.mp4")],
                           capture_output=True, text=True).stderr
    assert " 30 fps" in probe and "Audio: aac" in probe, probe


@pytest.mark.slow  # ~20 s: a real z2h edit run
def test_preview_takes_the_input_rate_and_keeps_its_audio(tmp_path):
    """A 30 fps clip with sound: preview.mp4 was 24 fps and silent."""
    from conftest import write_random_vgg_cache

    ffmpeg, clip = _clip_30fps_with_sound(tmp_path)
    frames = read_frames(clip)
    write_image(tmp_path / "ref.png", 255 - frames[0])
    write_random_vgg_cache(tmp_path / "cache")
    r = z2h("edit", "--video", clip, "--anchor", 0, "--reference", tmp_path / "ref.png", "--out",
            tmp_path / "out", "--progress", "none", "--work-size", "32", "--steps", "2",
            "--pseudo-pairs", "1",
            cache=tmp_path / "cache")
    assert r.returncode == 0, r.stderr
    probe = subprocess.run([ffmpeg, "-hide_banner", "-i", str(tmp_path / "out" / "preview.mp4")],
                           capture_output=True, text=True).stderr
    assert " 30 fps" in probe, probe
    assert "Audio: aac" in probe, probe
