"""Ground-truth motion from Cycles' vector pass, stored as ``flow.npz`` (docs/architecture.md).

The pass is written into an uncompressed multilayer EXR next to the frame and read back by a small
EXR reader (uncompressed scanline files, single- or multi-part, HALF/FLOAT channels), because bpy
cannot hand out render-pass pixels headless. Blender's vector pass holds, per pixel, the motion to the
previous frame (X, Y) and the NEGATED motion to the next frame (Z, W) in pixels, y up (measured, see
:func:`vectors_to_flow`); ``flow.npz`` holds
image-convention (dx, dy with y down) flows: ``forward[t]`` = motion t -> t+1, ``backward[t]`` =
motion t+1 -> t. Pixels showing the world background have zero motion.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import bpy
import numpy as np

from . import blender_compat


def _cstr(buf: bytes, pos: int) -> tuple[str, int]:
    end = buf.index(b"\0", pos)
    return buf[pos:end].decode("latin-1"), end + 1


def _header(buf: bytes, pos: int) -> tuple[dict, int]:
    attrs = {}
    while buf[pos] != 0:
        name, pos = _cstr(buf, pos)
        kind, pos = _cstr(buf, pos)
        (size,) = struct.unpack_from("<i", buf, pos)
        attrs[name] = (kind, buf[pos + 4 : pos + 4 + size])
        pos += 4 + size
    return attrs, pos + 1


def _channels(raw: bytes) -> list[tuple[str, int]]:
    out, pos = [], 0
    while raw[pos] != 0:
        name, pos = _cstr(raw, pos)
        (ptype,) = struct.unpack_from("<i", raw, pos)
        out.append((name, ptype))
        pos += 16
    return out


def read_exr(path: str | Path) -> dict[str, np.ndarray]:
    """Channels of an uncompressed scanline EXR as float32 (H, W) arrays, rows top to bottom."""
    buf = Path(path).read_bytes()
    if buf[:4] != b"\x76\x2f\x31\x01":
        raise ValueError(f"{path}: not an OpenEXR file")
    (version,) = struct.unpack_from("<i", buf, 4)
    multipart = bool(version & 0x1000)
    pos, headers = 8, []
    while True:
        h, pos = _header(buf, pos)
        headers.append(h)
        if not multipart or buf[pos] == 0:
            pos += 1 if multipart else 0
            break
    parts = []
    for h in headers:
        if h.get("compression", ("", b"\0"))[1][0] != 0:
            raise ValueError(
                f"{path}: compressed EXR (codec {h['compression'][1][0]}); write with codec NONE"
            )
        x0, y0, x1, y1 = struct.unpack("<4i", h["dataWindow"][1])
        chans = sorted(_channels(h["channels"][1]))
        count = struct.unpack("<i", h["chunkCount"][1])[0] if "chunkCount" in h else y1 - y0 + 1
        offsets = struct.unpack_from(f"<{count}Q", buf, pos)
        pos += 8 * count
        parts.append((x1 - x0 + 1, y1 - y0 + 1, y0, chans, offsets))
    out: dict[str, np.ndarray] = {}
    for p, (w, hgt, y0, chans, offsets) in enumerate(parts):
        arrays = {n: np.zeros((hgt, w), np.float32) for n, _ in chans}
        for off in offsets:
            q = off + (4 if multipart else 0)
            if multipart and struct.unpack_from("<i", buf, off)[0] != p:
                raise ValueError(f"{path}: chunk at {off} belongs to another part")
            y, size = struct.unpack_from("<2i", buf, q)
            q += 8
            # An uncompressed chunk holds its scanlines one after another, channels in name order.
            nlines = size // sum(w * (2 if t == 1 else 4) for _, t in chans)
            for line in range(nlines):
                for name, ptype in chans:
                    dtype, nbytes = (np.float16, 2) if ptype == 1 else (np.float32, 4)
                    arrays[name][y - y0 + line] = np.frombuffer(buf, dtype, w, q)
                    q += w * nbytes
        out.update(arrays)
    return out


class VectorPass:
    """Renders frames with the vector pass on; each call writes the PNG and returns the (H, W, 4) pass."""

    def __init__(self, restore, scene):
        self.scene = scene
        restore.set(scene.view_layers[0], "use_pass_vector", True)
        self.layer = scene.view_layers[0].name

    def render(self, png_path: Path) -> np.ndarray:
        scene, settings = self.scene, self.scene.render.image_settings
        exr = png_path.with_name(f".{png_path.stem}.tmp{os.getpid()}.exr")
        saved = (settings.color_depth, settings.color_mode)
        try:
            with blender_compat.file_format(settings, "OPEN_EXR_MULTILAYER"):
                settings.exr_codec, settings.color_depth = "NONE", "32"
                scene.render.filepath = str(exr)
                bpy.ops.render.render(write_still=True, scene=scene.name)
        finally:  # after the format is back: 8-bit depth is invalid for EXR
            settings.color_depth, settings.color_mode = saved
        # The PNG comes from the same render result, so it matches a plain render pixel for pixel.
        tmp = png_path.with_name(f".{png_path.stem}.tmp{os.getpid()}.png")
        bpy.data.images["Render Result"].save_render(str(tmp), scene=scene)
        os.replace(tmp, png_path)
        ch = read_exr(exr)
        exr.unlink()
        return np.stack([ch[f"{self.layer}.Vector.{c}"] for c in "XYZW"], -1)


def vectors_to_flow(vectors: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Blender vector passes of T frames -> (forward, backward), each (T-1, H, W, 2) in image convention."""
    v = np.stack(vectors)
    # Measured (tests/blender/test_bench_flow.py): X,Y = position(t-1) - position(t) and
    # Z,W = position(t) - position(t+1), with y up; images have y down.
    forward = v[:-1, ..., 2:4] * np.array([-1.0, 1.0], np.float32)
    backward = v[1:, ..., 0:2] * np.array([1.0, -1.0], np.float32)
    return forward, backward


def save_flow(path: Path, vectors: list[np.ndarray]) -> None:
    """Write flow.npz atomically (float16)."""
    forward, backward = vectors_to_flow(vectors)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}.npz")
    np.savez_compressed(tmp, forward=forward.astype(np.float16), backward=backward.astype(np.float16))
    os.replace(tmp, path)
