"""Frame and video I/O for the backend: frames are ``uint8`` arrays of shape (T, H, W, 3).

Writes are atomic (temporary file + rename), so an interrupted run never leaves a half-written frame
that looks complete.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm", ".gif", ".mpg", ".mpeg", ".wmv", ".flv")


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


_WIDE_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")  # 16-bit greyscale as Pillow opens it


def _open(path: str | Path, mode: str) -> np.ndarray:
    """Pixels of ``path`` converted to Pillow ``mode`` ("RGB" or "L") as uint8; 16-bit grey is scaled.

    ``convert()`` clips 16-bit greyscale (I;16) to 0..255, so mid-grey came out pure white; the
    value is scaled by 255/65535 here instead. Pillow already reduces 16-bit RGB(A)/LA to 8 bit.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if im.mode in _WIDE_MODES:
                wide = np.asarray(im).astype(np.int64)
                if wide.size and (wide.min() < 0 or wide.max() > 65535):
                    raise ValueError(f"cannot read image {path}: {im.mode} pixels outside 0..65535 "
                                     "(save it as an 8- or 16-bit image)")
                grey = ((wide * 255 + 32767) // 65535).astype(np.uint8)
                return np.repeat(grey[..., None], 3, axis=2) if mode == "RGB" else grey
            if im.mode == "F":
                raise ValueError(f"cannot read image {path}: floating-point pixels (mode F) are not "
                                 "supported; save it as an 8- or 16-bit image")
            return np.asarray(im.convert(mode), dtype=np.uint8).copy()
    except FileNotFoundError:
        raise FileNotFoundError(f"image not found: {path}") from None
    except IsADirectoryError:
        raise ValueError(f"cannot read image {path}: it is a folder") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as e:  # truncated/garbage files raise all three
        raise ValueError(f"cannot read image {path}: {e}") from None


def read_image(path: str | Path) -> np.ndarray:
    """An image as (H, W, 3) uint8 RGB (alpha dropped, greyscale expanded, 16-bit scaled to 8)."""
    return _open(path, "RGB")


def read_mask(path: str | Path) -> np.ndarray:
    """A mask image as (H, W) bool, by the rule `z2h bench check` applies (benchmark/masks.py: grey or
    the luma of RGB above 127, alpha ignored); errors name the file."""
    from z2h.benchmark.masks import mask_inside

    return mask_inside(_open(path, "RGB"))


def read_frames(source: str | Path) -> np.ndarray:
    """All frames of a folder of images or of a video file, as (T, H, W, 3) uint8."""
    source = Path(source)
    accepted = (f"a folder of frames ({', '.join(IMAGE_SUFFIXES)}) or a video file "
                f"({', '.join(VIDEO_SUFFIXES)})")
    if source.is_file() and source.suffix.lower() in VIDEO_SUFFIXES:
        import imageio.v3 as iio

        try:
            # extension=".mp4": imageio's own suffix list lacks .m4v & co.; ffmpeg probes the content anyway
            frames = [f[..., :3] for f in iio.imiter(source, plugin="FFMPEG", extension=".mp4")]
        except Exception as e:  # imageio raises several types for broken files
            raise ValueError(f"cannot read video {source}: {e}") from None
        if not frames:
            raise ValueError(f"no frames in video {source}")
        return np.stack(frames).astype(np.uint8)
    if source.is_file():
        kind = "a single image" if source.suffix.lower() in IMAGE_SUFFIXES else "not a supported video file"
        raise ValueError(f"{source} is {kind}: pass {accepted}")
    if not source.exists():
        raise FileNotFoundError(f"video not found: {source} (pass {accepted})")
    paths = frame_paths(source)
    frames = [read_image(p) for p in paths]
    for p, f in zip(paths, frames, strict=True):
        if f.shape != frames[0].shape:
            raise ValueError(
                f"frame {p.name} is {f.shape[1]}x{f.shape[0]}, but {paths[0].name} is "
                f"{frames[0].shape[1]}x{frames[0].shape[0]}: all frames must have one size"
            )
    return np.stack(frames)


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image file from its header (no decoding)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.size
    except FileNotFoundError:
        raise FileNotFoundError(f"image not found: {path}") from None
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"cannot read image {path}: {e}") from None


def decode_video(source: str | Path, folder: str | Path) -> int:
    """Decode a video file frame by frame into ``folder/NNNN.png`` (one frame in memory); returns the count.

    Frames already in ``folder`` from an earlier, complete decode (``folder/.complete`` holds the count)
    are reused.
    """
    import imageio.v3 as iio

    source, folder = Path(source), Path(folder)
    marker = folder / ".complete"
    if marker.is_file():
        return int(marker.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    n = 0
    try:
        for n, frame in enumerate(iio.imiter(source, plugin="FFMPEG", extension=".mp4"), 1):
            write_image(folder / f"{n - 1:04d}.png", frame[..., :3], compress_level=1)
    except Exception as e:  # imageio raises several types for broken files
        raise ValueError(f"cannot read video {source}: {e}") from None
    if not n:
        raise ValueError(f"no frames in video {source}")
    atomic_write_bytes(marker, str(n).encode())
    return n


def video_fps(source: str | Path) -> float | None:
    """Frame rate of a video file (None for a frame folder or when the file does not say)."""
    source = Path(source)
    if not (source.is_file() and source.suffix.lower() in VIDEO_SUFFIXES):
        return None
    import imageio.v3 as iio

    try:
        fps = float(iio.immeta(source, plugin="FFMPEG", extension=".mp4").get("fps") or 0)
    except Exception:  # unreadable metadata: the caller falls back to its default rate
        return None
    return fps if 0 < fps < 1000 else None


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not mkstemp: its files are 0600. O_EXCL with 0666 lets the umask give the usual 0644.
    tmp = path.parent / f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
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


def prepare_out(out: str | Path, overwrite: bool, artefacts: tuple[str, ...] = (),
                inputs: tuple[str | Path, ...] = ()) -> None:
    """Refuse a non-empty output folder unless ``overwrite``; then remove only an earlier run's ``artefacts``.

    ``artefacts`` are glob patterns relative to ``out``, removed in order (files, or folders with their
    contents); put the run record first so a stale "complete" never outlives the files it describes.
    Any of ``inputs`` inside ``out`` (or ``out`` itself) is refused: --overwrite would delete it. The
    folder is created and checked for writing here, before any compute.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a folder")
    real_out = out.resolve()
    for source in inputs:
        real = Path(source).resolve()
        if real == real_out or real_out in real.parents:
            raise ValueError(f"input {source} lies inside --out {out}: the results would replace it; "
                             "pass another --out")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise ValueError(f"--out {out} is not empty; pass --overwrite to replace an earlier run there")
        for pattern in artefacts:
            for path in sorted(out.glob(pattern)):
                shutil.rmtree(path) if path.is_dir() else path.unlink()
    check_writable(out)


def check_writable(folder: str | Path) -> None:
    """Prove a file can be written in ``folder``; ValueError naming it otherwise.

    Folders it had to create are removed again, so a failure later leaves no empty --out behind.
    """
    folder = Path(folder)
    created = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".z2h-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise ValueError(f"--out {folder} is not writable: {e.strerror or e}") from None
    finally:
        for path in created:  # deepest first
            try:
                path.rmdir()
            except OSError:
                break


def write_image(path: str | Path, image: np.ndarray, **options) -> None:
    """Write an (H, W, 3) or (H, W) uint8 image atomically; the format follows the suffix.

    ``options`` go to PIL's save (e.g. ``compress_level=1`` for fast scratch PNGs)."""
    import io

    from PIL import Image

    path = Path(path)
    buf = io.BytesIO()
    fmt = Image.registered_extensions()[path.suffix.lower()]
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format=fmt, **options)
    atomic_write_bytes(path, buf.getvalue())


def write_frames(folder: str | Path, frames: np.ndarray, start: int = 0) -> list[Path]:
    """Write frames as ``0000.png``, ``0001.png``, ... (numbered from ``start``) into ``folder``."""
    folder = Path(folder)
    paths = [folder / f"{start + i:04d}.png" for i in range(len(frames))]
    for p, f in zip(paths, frames, strict=True):
        write_image(p, f)
    return paths


def write_video(path: str | Path, frames, fps: float = 24.0, audio_from: str | Path | None = None,
                progress=None) -> None:
    """Write an H.264 MP4 preview (the ffmpeg binary shipped by imageio-ffmpeg), atomically.

    ``frames``: a (T, H, W, 3) array or any iterable of (H, W, 3) frames (streamed: one in memory;
    ``progress(n)`` after each). ``audio_from``: a video file whose audio track (if any) is copied in, cut
    to the frames' length.
    """
    import imageio.v2 as iio2

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    muxed = path.with_name(f".{path.stem}.audio.tmp{path.suffix}")
    try:
        # macro_block_size=1 stops imageio from rescaling; yuv420p needs even sizes, hence the crop.
        with iio2.get_writer(tmp, format="FFMPEG", fps=fps, codec="libx264", macro_block_size=1) as writer:
            for n, frame in enumerate(frames, 1):
                h, w = frame.shape[:2]
                writer.append_data(np.ascontiguousarray(frame[: h - h % 2, : w - w % 2]))
                if progress is not None:
                    progress(n)
        if audio_from is not None and Path(audio_from).suffix.lower() in VIDEO_SUFFIXES:
            try:
                _add_audio(tmp, Path(audio_from), muxed)
                os.replace(muxed, tmp)
            except (OSError, ValueError) as e:  # a preview without sound beats no preview
                log.warning("%s: written without audio (%s)", path, e)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        muxed.unlink(missing_ok=True)


def _add_audio(video: Path, source: Path, out: Path) -> None:
    """``video``'s picture with ``source``'s first audio track (none: no audio), into ``out``."""
    import subprocess

    import imageio_ffmpeg

    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-i", str(video),
           "-i", str(source), "-map", "0:v:0", "-map", "1:a:0?", "-c:v", "copy", "-c:a", "aac", "-shortest",
           str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["?"])[-1]
        raise ValueError(f"cannot copy the audio of {source} into {video.name}: {last}")
