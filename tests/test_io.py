"""Frame I/O: natural order, clear errors, atomic writes, MP4 round trip."""

import numpy as np
import pytest

from z2h import io


def _frames(t=3, h=16, w=20, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


def test_write_read_frames_round_trip_in_natural_order(tmp_path):
    frames = _frames(12)
    io.write_frames(tmp_path, frames)
    # 0010.png must come after 0009.png and 2.png before 10.png
    (tmp_path / "0011.png").rename(tmp_path / "11.png")
    assert [p.name for p in io.frame_paths(tmp_path)][-3:] == ["0009.png", "0010.png", "11.png"]
    np.testing.assert_array_equal(io.read_frames(tmp_path), frames)


def test_read_frames_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="video not found"):
        io.read_frames(tmp_path / "missing")
    with pytest.raises(ValueError, match="no image frames"):
        io.read_frames(tmp_path)
    io.write_image(tmp_path / "0000.png", _frames(1)[0])
    io.write_image(tmp_path / "0001.png", _frames(1, h=8)[0])
    with pytest.raises(ValueError, match="0001.png is 20x8"):
        io.read_frames(tmp_path)
    (tmp_path / "0002.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="cannot read image .*0002.png"):
        io.read_image(tmp_path / "0002.png")


def test_atomic_write_leaves_no_partial_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "f.png"
    io.write_image(target, _frames(1)[0])
    before = target.read_bytes()

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(io.os, "replace", boom)
    with pytest.raises(OSError, match="No space left"):
        io.write_image(target, _frames(1, seed=1)[0])
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["f.png"]


def test_mp4_preview_round_trip(tmp_path):
    # Smooth frames survive H.264 well; random noise would not.
    y, x = np.mgrid[0:32, 0:48]
    frames = np.stack([np.stack([(x * 5 + t * 8) % 256, y * 8, np.full_like(x, 128)], -1) for t in range(5)])
    frames = frames.astype(np.uint8)
    io.write_video(tmp_path / "preview.mp4", frames, fps=10)
    back = io.read_frames(tmp_path / "preview.mp4")
    assert back.shape == frames.shape
    assert np.abs(back.astype(int) - frames).mean() < 6


def test_prepare_out_refuses_then_removes_only_named_artefacts(tmp_path):
    out = tmp_path / "out"
    io.prepare_out(out, overwrite=False)  # missing: fine, nothing created
    assert not out.exists()
    (out / "frames").mkdir(parents=True)
    (out / "frames" / "0000.png").write_bytes(b"x")
    (out / "0007.png").write_bytes(b"x")
    (out / "run.json").write_text("{}")
    (out / "notes.txt").write_text("the user's own file")
    with pytest.raises(ValueError, match="not empty; pass --overwrite"):
        io.prepare_out(out, overwrite=False)
    io.prepare_out(out, overwrite=True, artefacts=("run.json", "frames", "[0-9][0-9][0-9][0-9].png"))
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="not a folder"):
        io.prepare_out(tmp_path / "file", overwrite=True)


def test_write_json_is_atomic_and_stringifies_paths(tmp_path):
    import json

    io.write_json(tmp_path / "r.json", {"out": tmp_path, "n": 1})
    assert json.loads((tmp_path / "r.json").read_text()) == {"out": str(tmp_path), "n": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]
