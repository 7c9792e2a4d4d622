"""A small PNG reader/writer on the standard library (zlib) and numpy.

``z2h bench check`` and the build orchestrator run where neither PIL nor bpy is available, and the
worker writes masks with it so their bytes are deterministic. Supports non-interlaced 8- and 16-bit
greyscale (L), grey+alpha (LA), RGB and RGBA images with all five row filters; 16-bit is scaled to 8.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # PNG colour type -> channels


class PNGError(ValueError):
    """The file is not a PNG this module can decode; the message names the file."""


def read_header(path: str | Path) -> tuple[int, int, int, int]:
    """(width, height, channels, bit depth) from the IHDR chunk, without decoding pixels."""
    with open(path, "rb") as f:
        head = f.read(33)
    if len(head) < 33 or head[:8] != SIGNATURE or head[12:16] != b"IHDR":
        raise PNGError(f"{path}: not a PNG file")
    w, h, depth, ctype = struct.unpack(">IIBB", head[16:26])
    if ctype not in _CHANNELS:
        raise PNGError(f"{path}: unsupported PNG colour type {ctype} (palette images are not supported)")
    return w, h, _CHANNELS[ctype], depth


def png_complete(path: str | Path) -> bool:
    """True when the file ends with the IEND chunk (a cheap test for a truncated write)."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() < 45:
            return False
        f.seek(-12, os.SEEK_END)
        return f.read(12) == b"\0\0\0\0IEND\xaeB`\x82"


def _unfilter(raw: bytes, h: int, stride: int, bpp: int, path: str | Path) -> np.ndarray:
    if len(raw) < h * (stride + 1):
        raise PNGError(f"{path}: truncated image data ({len(raw)} bytes, expected {h * (stride + 1)})")
    rows = np.frombuffer(raw, np.uint8, h * (stride + 1)).reshape(h, stride + 1)
    out = np.zeros((h, stride), np.uint8)
    prev = np.zeros(stride, np.uint8)
    for y in range(h):
        ftype, line = rows[y, 0], rows[y, 1:]
        if ftype == 0:
            cur = line
        elif ftype == 1:  # sub: a running sum along each channel
            cur = np.cumsum(line.reshape(-1, bpp), axis=0, dtype=np.uint64).astype(np.uint8).reshape(-1)
        elif ftype == 2:
            cur = line + prev  # uint8 arithmetic wraps mod 256, as the filter wants
        elif ftype in (3, 4):
            cur = _unfilter_sequential(ftype, line.tolist(), prev.tolist(), bpp)
        else:
            raise PNGError(f"{path}: bad row filter {ftype} in row {y}")
        out[y] = cur
        prev = out[y]
    return out


def _unfilter_sequential(ftype: int, line: list[int], prev: list[int], bpp: int) -> np.ndarray:
    """Average (3) and Paeth (4) depend on the decoded left neighbour: plain Python ints are fastest."""
    cur = line
    for i in range(len(cur)):
        a = cur[i - bpp] if i >= bpp else 0
        b = prev[i]
        if ftype == 3:
            cur[i] = (cur[i] + ((a + b) >> 1)) & 255
        else:
            c = prev[i - bpp] if i >= bpp else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            cur[i] = (cur[i] + pred) & 255
    return np.array(cur, np.uint8)


def read_png(path: str | Path) -> np.ndarray:
    """Decode a PNG to uint8 (H, W) for greyscale or (H, W, C) for LA/RGB/RGBA."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"image not found: {path}") from None
    if data[:8] != SIGNATURE:
        raise PNGError(f"{path}: not a PNG file")
    pos, idat, header = 8, [], None
    while pos + 8 <= len(data):
        length, ctype = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if len(body) < length:
            raise PNGError(f"{path}: truncated chunk {ctype!r}")
        if ctype == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif ctype == b"IDAT":
            idat.append(body)
        elif ctype == b"IEND":
            break
        pos += 12 + length
    if header is None:
        raise PNGError(f"{path}: no IHDR chunk")
    w, h, depth, color, _, _, interlace = header
    if color not in _CHANNELS:
        raise PNGError(f"{path}: unsupported PNG colour type {color} (palette images are not supported)")
    if depth not in (8, 16) or interlace:
        raise PNGError(f"{path}: only non-interlaced 8/16-bit PNGs are supported (depth {depth})")
    try:
        raw = zlib.decompress(b"".join(idat))
    except zlib.error as e:
        raise PNGError(f"{path}: corrupt image data ({e})") from None
    ch, nbytes = _CHANNELS[color], depth // 8
    px = _unfilter(raw, h, w * ch * nbytes, ch * nbytes, path)
    if depth == 16:
        wide = px.reshape(h, w * ch, 2).astype(np.uint32)
        px = (((wide[..., 0] << 8 | wide[..., 1]) * 255 + 32767) // 65535).astype(np.uint8)  # rounded
    img = px.reshape(h, w, ch)
    return img[..., 0] if ch == 1 else img


def encode_png(img: np.ndarray) -> bytes:
    """PNG bytes of a uint8 (H, W) or (H, W, 1|2|3|4) image; no time chunks, so bytes are reproducible."""
    img = np.asarray(img)
    if img.dtype != np.uint8:
        raise ValueError(f"encode_png needs uint8 pixels, got {img.dtype}")
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3 or img.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"encode_png needs (H, W) or (H, W, 1..4) pixels, got shape {img.shape}")
    h, w, ch = img.shape
    color = {1: 0, 2: 4, 3: 2, 4: 6}[ch]
    # Filter "up" on every row: cheap in numpy and compresses renders well.
    rows = img.reshape(h, w * ch)
    up = rows.astype(np.int16) - np.vstack([np.zeros((1, w * ch), np.int16), rows[:-1].astype(np.int16)])
    raw = np.hstack([np.full((h, 1), 2, np.uint8), (up & 255).astype(np.uint8)]).tobytes()

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, color, 0, 0, 0)
    return SIGNATURE + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def write_png(path: str | Path, img: np.ndarray) -> None:
    """Write a PNG atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(encode_png(img))
    os.replace(tmp, path)
