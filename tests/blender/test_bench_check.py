"""png.py round trips and ``bench check`` on synthetic benchmarks (no rendering)."""

import json
import zlib

import numpy as np
import pytest

from z2h.benchmark.check import check_benchmark
from z2h.benchmark.manifest import write_manifest
from z2h.benchmark.png import PNGError, encode_png, read_png, write_png


@pytest.mark.parametrize("shape", [(5, 7), (6, 4, 2), (9, 3, 3), (4, 11, 4)])
def test_png_round_trip(tmp_path, shape):
    img = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    write_png(tmp_path / "a.png", img)
    assert np.array_equal(read_png(tmp_path / "a.png"), img)
    assert encode_png(img) == encode_png(img.copy())  # deterministic bytes


def _png_with_filter(img: np.ndarray, ftype: int) -> bytes:
    """A PNG whose rows all use filter ``ftype`` (a reference encoder written the slow, obvious way)."""
    h, w, c = img.shape
    raw = b""
    prev = [0] * (w * c)
    for y in range(h):
        row = img[y].reshape(-1).tolist()
        out = []
        for i, x in enumerate(row):
            a = row[i - c] if i >= c else 0
            b = prev[i]
            cc = prev[i - c] if i >= c else 0
            if ftype == 1:
                pred = a
            elif ftype == 3:
                pred = (a + b) // 2
            else:
                p = a + b - cc
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - cc)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else cc)
            out.append((x - pred) % 256)
        raw += bytes([ftype] + out)
        prev = row
    png = encode_png(img)
    head = png[:33]  # signature + IHDR
    body = zlib.compress(raw)
    chunk = len(body).to_bytes(4, "big") + b"IDAT" + body + zlib.crc32(b"IDAT" + body).to_bytes(4, "big")
    return head + chunk + png[-12:]


@pytest.mark.parametrize("ftype", [1, 3, 4])
def test_png_filters(tmp_path, ftype):
    img = np.random.default_rng(ftype).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    (tmp_path / "f.png").write_bytes(_png_with_filter(img, ftype))
    assert np.array_equal(read_png(tmp_path / "f.png"), img)


def test_png_errors_name_file(tmp_path):
    (tmp_path / "x.png").write_bytes(b"not a png")
    with pytest.raises(PNGError, match="x.png: not a PNG"):
        read_png(tmp_path / "x.png")


def make_bench(root, frames=3, size=(8, 6), anchor=1):
    w, h = size
    d = root / "vid"
    for kind in ("original", "edited", "mask"):
        (d / kind).mkdir(parents=True)
        for i in range(frames):
            if kind == "mask":
                m = np.zeros((h, w), np.uint8)
                m[2:4, 2 + i : 4 + i] = 255
                write_png(d / kind / f"{i:04d}.png", m)
            else:
                write_png(d / kind / f"{i:04d}.png", np.full((h, w, 3), 10 * i, np.uint8))
    meta = {
        "name": "vid",
        "frames": frames,
        "anchor": anchor,
        "resolution": [w, h],
        "fps": 24,
        "edit": {"object": "a", "kind": "color"},
        "per_frame": [
            {"frame": i, "displacement_px": 0.0, "rotation_deg": 0.0, "mask_area": 4} for i in range(frames)
        ],
    }
    (d / "meta.json").write_text(json.dumps(meta))
    np.savez(
        d / "flow.npz",
        forward=np.zeros((frames - 1, h, w, 2), np.float16),
        backward=np.zeros((frames - 1, h, w, 2), np.float16),
    )
    write_manifest(root, {"resolution": [w, h]})
    return d


def test_check_accepts_good_benchmark(tmp_path):
    make_bench(tmp_path)
    assert check_benchmark(tmp_path) == ([], [])


def test_check_reports_problems(tmp_path):
    d = make_bench(tmp_path)
    (d / "edited" / "0002.png").unlink()
    write_png(d / "mask" / "0001.png", np.zeros((6, 8), np.uint8))  # the anchor's mask
    write_png(d / "mask" / "0000.png", np.zeros((6, 8), np.uint8))  # another frame: only a warning
    write_png(d / "original" / "0000.png", np.zeros((5, 8, 3), np.uint8))
    np.savez(d / "flow.npz", forward=np.zeros((1, 6, 8, 2), np.float16))
    errors, warnings = check_benchmark(tmp_path)
    text = "\n".join(errors)
    assert "edited/0002.png: missing" in text
    assert "mask/0001.png: empty mask at the anchor" in text
    assert "original/0000.png: size 8x5, expected 8x6" in text
    assert "flow.npz: forward has shape" in text and "backward has shape None" in text
    assert len(errors) == 5
    assert len(warnings) == 1 and "mask/0000.png: empty mask" in warnings[0]


def test_check_manifest_consistency(tmp_path):
    make_bench(tmp_path)
    m = json.loads((tmp_path / "manifest.json").read_text())
    m["videos"][0]["frames"] = 4
    m["videos"].append({"name": "gone", "frames": 2, "anchor": 0})
    (tmp_path / "manifest.json").write_text(json.dumps(m))
    errors, _ = check_benchmark(tmp_path)
    assert any("manifest says frames=4" in e for e in errors)
    assert any("gone: listed in manifest.json but missing" in e for e in errors)
    (tmp_path / "manifest.json").write_text(json.dumps({**m, "version": 9}))
    assert "version 9" in check_benchmark(tmp_path)[0][0]


def test_check_reports_truncated_frame(tmp_path):
    d = make_bench(tmp_path)
    p = d / "original" / "0001.png"
    p.write_bytes(p.read_bytes()[:-20])  # what a killed non-atomic writer would leave
    errors, _ = check_benchmark(tmp_path)
    assert errors == [f"{p}: truncated (no IEND chunk)"]
