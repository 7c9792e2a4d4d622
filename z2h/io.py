"""Frame and video I/O for the backend: frames are ``uint8`` arrays of shape (T, H, W, 3).

Writes are atomic (temporary file + rename), so an interrupted run never leaves a half-written frame
that looks complete.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".gif")


def _natural_key(path: Path) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def frame_paths(folder: str | Path) -> list[Path]:
    """Image files of a frame folder in natural order (``2.png`` before ``10.png``)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"frame folder not found: {folder}")
    paths = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=_natural_key)
    if not paths:
        raise ValueError(f"no image frames ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return paths


def read_image(path: str | Path) -> np.ndarray:
    """An image as (H, W, 3) uint8 RGB (alpha dropped, greyscale expanded)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except FileNotFoundError:
        raise FileNotFoundError(f"image not found: {path}") from None
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"cannot read image {path}: {e}") from None


def read_mask(path: str | Path) -> np.ndarray:
    """A mask image as (H, W) bool (pixels above 127 are inside)."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("L")) > 127


def read_frames(source: str | Path) -> np.ndarray:
    """All frames of a folder of images or of a video file, as (T, H, W, 3) uint8."""
    source = Path(source)
    if source.is_file() and source.suffix.lower() in VIDEO_SUFFIXES:
        import imageio.v3 as iio

        try:
            frames = [f[..., :3] for f in iio.imiter(source, plugin="FFMPEG")]
        except Exception as e:  # imageio raises several types for broken files
            raise ValueError(f"cannot read video {source}: {e}") from None
        if not frames:
            raise ValueError(f"no frames in video {source}")
        return np.stack(frames).astype(np.uint8)
    if not source.exists():
        raise FileNotFoundError(f"video not found: {source} (pass a folder of frames or a video file)")
    paths = frame_paths(source)
    frames = [read_image(p) for p in paths]
    for p, f in zip(paths, frames, strict=True):
        if f.shape != frames[0].shape:
            raise ValueError(
                f"frame {p.name} is {f.shape[1]}x{f.shape[0]}, but {paths[0].name} is "
                f"{frames[0].shape[1]}x{frames[0].shape[0]}: all frames must have one size"
            )
    return np.stack(frames)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | Path, data: object) -> None:
    """Write ``data`` as indented JSON, atomically (non-JSON values such as paths become strings)."""
    atomic_write_bytes(path, (json.dumps(data, indent=2, default=str) + "\n").encode())


def prepare_out(out: str | Path, overwrite: bool, artefacts: tuple[str, ...] = ()) -> None:
    """Refuse a non-empty output folder unless ``overwrite``; then remove only an earlier run's ``artefacts``.

    ``artefacts`` are glob patterns relative to ``out``, removed in order (files, or folders with their
    contents); put the run record first so a stale "complete" never outlives the files it describes.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a folder")
    if not (out.is_dir() and any(out.iterdir())):
        return
    if not overwrite:
        raise ValueError(f"--out {out} is not empty; pass --overwrite to replace an earlier run there")
    for pattern in artefacts:
        for path in sorted(out.glob(pattern)):
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def write_image(path: str | Path, image: np.ndarray) -> None:
    """Write an (H, W, 3) or (H, W) uint8 image atomically; the format follows the suffix."""
    import io

    from PIL import Image

    path = Path(path)
    buf = io.BytesIO()
    fmt = Image.registered_extensions()[path.suffix.lower()]
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format=fmt)
    atomic_write_bytes(path, buf.getvalue())


def write_frames(folder: str | Path, frames: np.ndarray, start: int = 0) -> list[Path]:
    """Write frames as ``0000.png``, ``0001.png``, ... (numbered from ``start``) into ``folder``."""
    folder = Path(folder)
    paths = [folder / f"{start + i:04d}.png" for i in range(len(frames))]
    for p, f in zip(paths, frames, strict=True):
        write_image(p, f)
    return paths


def write_video(path: str | Path, frames: np.ndarray, fps: float = 24.0) -> None:
    """Write an H.264 MP4 preview (the ffmpeg binary shipped by imageio-ffmpeg), atomically."""
    import imageio.v3 as iio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    # yuv420p needs even sizes; macro_block_size=1 stops imageio from rescaling.
    h, w = frames.shape[1:3]
    frames = np.ascontiguousarray(frames[:, : h - h % 2, : w - w % 2])
    try:
        iio.imwrite(tmp, frames, plugin="FFMPEG", fps=fps, codec="libx264", macro_block_size=1)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
