"""Reading a benchmark folder (format v1, docs/architecture.md) on the backend side.

``load_video`` checks what it reads: every frame present, one size for all frames, masks and flow
fields; errors name the video and the frame so a broken render is easy to find.
"""

from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class Flow:
    """True motion in px (dx, dy), (T-1, H, W, 2): ``forward[t]`` is t -> t+1, ``backward[t]`` t+1 -> t."""

    forward: np.ndarray
    backward: np.ndarray


@dataclass
class Video:
    """One benchmark video: original and edited frames (T, H, W, 3) uint8, masks (T, H, W) bool."""

    name: str
    original: np.ndarray
    edited: np.ndarray
    masks: np.ndarray
    anchor: int
    meta: dict[str, Any]
    flow: Flow | None = None

    @property
    def reference(self) -> np.ndarray:
        """The edited anchor frame: the only edited frame a method may see."""
        return self.edited[self.anchor]

    @property
    def frames(self) -> int:
        return len(self.original)


def read_manifest(bench: str | Path) -> dict[str, Any]:
    """The benchmark's manifest.json, validated by the same rules as `z2h bench check`."""
    from z2h.benchmark.manifest import read_manifest as read

    return read(bench)


def list_videos(bench: str | Path) -> list[str]:
    """Names of the benchmark's videos, in manifest order."""
    return [v["name"] for v in read_manifest(bench)["videos"]]


def select_videos(bench: str | Path, names: list[str] | None = None) -> list[str]:
    """``names`` checked against the manifest before any work starts (None: all), in manifest order."""
    videos = list_videos(bench)
    if not names:
        return videos
    unknown = sorted(set(names) - set(videos))
    if unknown:
        raise ValueError(f"videos not in {bench}/manifest.json: {', '.join(unknown)} "
                         f"(available: {', '.join(videos)})")
    return [n for n in videos if n in names]


def _read_sequence(folder: Path, video: str, kind: str, frames: int, mask: bool = False) -> np.ndarray:
    from z2h.io import read_image, read_mask

    out = []
    for i in range(frames):
        path = folder / f"{i:04d}.png"
        if not path.is_file():
            raise FileNotFoundError(f"video {video!r}: missing {kind} frame {i} ({path})")
        out.append(read_mask(path) if mask else read_image(path))
        if out[-1].shape[:2] != out[0].shape[:2]:
            raise ValueError(f"video {video!r}: {kind} frame {i} is {out[-1].shape[1]}x{out[-1].shape[0]}, "
                             f"frame 0 is {out[0].shape[1]}x{out[0].shape[0]}")
    return np.stack(out)


def load_flow(path: str | Path, video: str, frames: int, size: tuple[int, int]) -> Flow:
    """Read flow.npz; ``size`` is (H, W). Arrays come back as float32."""
    h, w = size
    try:
        with np.load(path) as npz:
            missing = {"forward", "backward"} - set(npz.files)
            if missing:
                raise ValueError(f"video {video!r}: {path} lacks {sorted(missing)}")
            fwd, bwd = (npz[k].astype(np.float32) for k in ("forward", "backward"))
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise ValueError(f"video {video!r}: {path}: unreadable flow ({e or type(e).__name__})") from None
    except ValueError as e:
        if str(e).startswith("video "):
            raise
        raise ValueError(f"video {video!r}: {path}: unreadable flow ({e})") from None
    for key, arr in (("forward", fwd), ("backward", bwd)):
        if arr.shape != (frames - 1, h, w, 2):
            raise ValueError(f"video {video!r}: {path} '{key}' has shape {arr.shape}, "
                             f"expected {(frames - 1, h, w, 2)}")
    return Flow(fwd, bwd)


def load_video(bench: str | Path, name: str, with_flow: bool = True) -> Video:
    """Load one video of a benchmark; errors name the video, the sequence and the frame."""
    from z2h.benchmark.validate import check_name, inside, read_json, validate_meta

    check_name(name, Path(bench) / "manifest.json")
    folder = inside(bench, name)  # a symlinked video folder must not lead out of the benchmark
    if not folder.is_dir():
        raise FileNotFoundError(f"video {name!r} not found in {bench}")
    meta_path = folder / "meta.json"
    meta = validate_meta(read_json(meta_path), meta_path)
    frames, anchor = meta["frames"], meta["anchor"]
    original = _read_sequence(folder / "original", name, "original", frames)
    edited = _read_sequence(folder / "edited", name, "edited", frames)
    masks = _read_sequence(folder / "mask", name, "mask", frames, mask=True)
    size = original.shape[1:3]
    for kind, seq in (("edited", edited), ("mask", masks)):
        if seq.shape[1:3] != size:
            raise ValueError(f"video {name!r}: {kind} frames are {seq.shape[2]}x{seq.shape[1]}, "
                             f"original frames are {size[1]}x{size[0]}")
    if not masks[anchor].any():  # `z2h bench check` calls this an error too (same mask rule)
        raise ValueError(f"video {name!r}: {folder / 'mask' / f'{anchor:04d}.png'}: empty mask at the anchor")
    if list(meta["resolution"]) != [size[1], size[0]]:
        raise ValueError(f"video {name!r}: meta.json resolution {meta['resolution']} but frames are "
                         f"{size[1]}x{size[0]}")
    flow_path = folder / "flow.npz"
    flow = load_flow(flow_path, name, frames, size) if with_flow and flow_path.is_file() else None
    return Video(name, original, edited, masks, anchor, meta, flow)


def per_frame_meta(video: Video) -> list[dict[str, Any]]:
    """meta.json's per_frame records indexed by frame (missing entries become empty dicts)."""
    records: list[dict[str, Any]] = [{} for _ in range(video.frames)]
    for rec in video.meta.get("per_frame", []) or []:
        i = rec.get("frame")
        if isinstance(i, int) and 0 <= i < video.frames:
            records[i] = rec
    return records
