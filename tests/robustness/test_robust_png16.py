"""16-bit PNGs (grey, grey+alpha, RGB, RGBA) read as the 8-bit values they stand for, on both sides."""

import struct
import zlib

import numpy as np
import pytest

from z2h.benchmark.png import SIGNATURE, read_png
from z2h.io import read_image, read_mask


def png16(img: np.ndarray) -> bytes:
    """A 16-bit PNG written by hand (no filter), so the test does not depend on the reader under test."""
    h, w = img.shape[:2]
    ch = 1 if img.ndim == 2 else img.shape[2]
    raw = b"".join(b"\0" + img[y].astype(">u2").tobytes() for y in range(h))

    def chunk(tag, body):
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

    ihdr = struct.pack(">IIBBBBB", w, h, 16, {1: 0, 2: 4, 3: 2, 4: 6}[ch], 0, 0, 0)
    return SIGNATURE + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


LEVELS = np.array([0, 257 * 20, 32768, 257 * 200, 65535], np.uint16)  # -> 0, 20, 128, 200, 255
EXPECT = np.array([0, 20, 128, 200, 255], np.uint8)


@pytest.mark.parametrize("channels", [1, 2, 3, 4], ids=["grey", "grey+alpha", "rgb", "rgba"])
def test_16_bit_scaled_not_clipped(tmp_path, channels):
    img = np.repeat(LEVELS[None, :, None], 3, axis=0)  # (3, 5, 1)
    img = np.repeat(img, channels, axis=2)
    if channels in (2, 4):
        img[..., -1] = 65535  # opaque
    path = tmp_path / "x.png"
    path.write_bytes(png16(img[..., 0] if channels == 1 else img))
    rgb = read_image(path)
    assert rgb.shape == (3, 5, 3)
    np.testing.assert_array_equal(rgb[0, :, 0], EXPECT)  # was 0,255,255,255,255 for grey
    np.testing.assert_array_equal(read_mask(path)[0], EXPECT > 127)
    png = read_png(path)  # the stdlib reader of `bench check` agrees exactly
    np.testing.assert_array_equal((png if channels == 1 else png[..., 0])[0], EXPECT)
