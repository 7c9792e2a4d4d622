"""``z2h bench import``: turn a user's own paired videos into a benchmark (format v1).

SRC is one video folder, or a folder of video folders. A video folder holds three sequences, each a
folder of frames (PNG/JPG, any natural naming: ``1.jpg .. 24.jpg``, ``frame_0001.png``, ...) or a video
file with that stem (``original.mp4``):

    original/  (or originals, orig, source, input)   the unedited video
    edited/    (or edit, target, gt)                  the same video with the appearance edit
    mask/      (or masks, matte)                      the edited object; grey or RGB (benchmark/masks.py)

plus optionally ``flow.npz`` (true motion, as `z2h bench build` writes it). Frames are renumbered
``0000.png ..``; masks become 0/255 greyscale. Without ground-truth flow the object's motion is estimated
from the masks (centroid displacement from the anchor) and meta.json says so (``motion_source``).
The result is checked with `z2h bench check`'s own rules before the command reports success.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ALIASES = {"original": ("original", "originals", "orig", "source", "input"),
           "edited": ("edited", "edit", "target", "gt"),
           "mask": ("mask", "masks", "matte")}


def _find(folder: Path, kind: str) -> Path | None:
    """The folder or video file of ``kind`` in ``folder`` (case-insensitive names), or None."""
    from z2h.io import VIDEO_SUFFIXES

    entries = {p.name.lower(): p for p in folder.iterdir()}
    for alias in ALIASES[kind]:
        if alias in entries and entries[alias].is_dir():
            return entries[alias]
        for suffix in VIDEO_SUFFIXES:
            if f"{alias}{suffix}" in entries:
                return entries[f"{alias}{suffix}"]
    return None


def is_video_folder(folder: Path) -> bool:
    return folder.is_dir() and all(_find(folder, kind) is not None for kind in ALIASES)


def find_videos(src: Path) -> list[Path]:
    """SRC itself if it is a video folder, else its sub-folders that are (sorted naturally)."""
    from z2h.io import _natural_key

    if not src.is_dir():
        raise FileNotFoundError(f"{src}: not a folder (expected original/, edited/ and mask/ inside, "
                                "or folders that hold them)")
    if is_video_folder(src):
        return [src]
    videos = sorted((d for d in src.iterdir() if is_video_folder(d)), key=_natural_key)
    if not videos:
        names = ", ".join(a for v in ALIASES.values() for a in v)
        raise ValueError(f"{src}: no video found: a video folder holds original/, edited/ and mask/ "
                         f"(frame folders or video files; accepted names: {names})")
    return videos


def _read(path: Path, kind: str) -> tuple[np.ndarray, list[str]]:
    """Frames of a sequence and their names (file names, or ``#i`` for a video file's frames)."""
    from z2h.io import frame_paths, read_frames, read_image

    if path.is_file():
        frames = read_frames(path)
        return frames, [f"{path.name}#{i}" for i in range(len(frames))]
    paths = frame_paths(path)
    frames = [read_image(p) for p in paths]
    for p, f in zip(paths, frames, strict=True):
        if f.shape != frames[0].shape:
            raise ValueError(f"{p}: {kind} frame is {f.shape[1]}x{f.shape[0]}, {paths[0].name} is "
                             f"{frames[0].shape[1]}x{frames[0].shape[0]}")
    return np.stack(frames), [p.name for p in paths]


def _masks(path: Path) -> np.ndarray:
    """(T, H, W) bool by the shared mask rule (benchmark/masks.py); RGB masks are welcome."""
    from z2h.benchmark.masks import mask_inside
    from z2h.io import frame_paths, read_frames

    if path.is_file():
        return np.stack([mask_inside(f) for f in read_frames(path)])
    from z2h.io import read_mask

    return np.stack([read_mask(p) for p in frame_paths(path)])


def resolve_anchor(anchor: str | int | None, names: list[str], where: Path) -> int:
    """``anchor``: an index in frame order (0 = first) or a frame's file name; default 0."""
    if anchor is None:
        return 0
    text = str(anchor)
    if text.lstrip("-").isdigit():
        index = int(text)
        if not 0 <= index < len(names):
            raise ValueError(f"{where}: --anchor {index} outside 0..{len(names) - 1} (an index in frame "
                             "order, 0 = first; or pass the anchor frame's file name)")
        return index
    if text in names:
        return names.index(text)
    raise ValueError(f"{where}: --anchor {text!r} is neither an index nor one of the frame names "
                     f"({names[0]} .. {names[-1]})")


def mask_motion(masks: np.ndarray, anchor: int) -> list[dict[str, Any]]:
    """Per frame: the mask centroid's displacement from the anchor's (px) and the mask area."""
    ys, xs = np.mgrid[0:masks.shape[1], 0:masks.shape[2]]
    centroids = [(float(xs[m].mean()), float(ys[m].mean())) if m.any() else None for m in masks]
    ref = centroids[anchor]
    out = []
    for t, (m, c) in enumerate(zip(masks, centroids, strict=True)):
        rec: dict[str, Any] = {"frame": t, "mask_area": int(m.sum())}
        if c is not None and ref is not None:
            rec["displacement_px"] = round(float(np.hypot(c[0] - ref[0], c[1] - ref[1])), 3)
        out.append(rec)
    return out


def import_video(folder: Path, bench: Path, name: str, anchor: str | int | None = None,
                 tags: list[str] | None = None, log=print) -> dict[str, Any]:
    """Read, check and write one video of ``folder`` as ``bench/name``; returns its meta.json."""
    from z2h.benchmark.validate import check_name, inside
    from z2h.io import write_frames, write_image, write_json

    check_name(name, folder)
    seqs = {kind: _find(folder, kind) for kind in ALIASES}
    original, names = _read(seqs["original"], "original")  # type: ignore[arg-type]
    edited, _ = _read(seqs["edited"], "edited")  # type: ignore[arg-type]
    masks = _masks(seqs["mask"])  # type: ignore[arg-type]
    n, (h, w) = len(original), original.shape[1:3]
    for kind, arr in (("edited", edited), ("mask", masks)):
        if len(arr) != n:
            raise ValueError(f"{seqs[kind]}: {len(arr)} {kind} frames, but {seqs['original']} has {n}")
        if arr.shape[1:3] != (h, w):
            raise ValueError(f"{seqs[kind]}: {kind} frames are {arr.shape[2]}x{arr.shape[1]}, original "
                             f"frames are {w}x{h}")
    if n < 2:
        raise ValueError(f"{seqs['original']}: a video needs at least 2 frames, found {n}")
    a = resolve_anchor(anchor, names, folder)
    if not masks[a].any():
        raise ValueError(f"{seqs['mask']}: the mask of the anchor frame ({names[a]}) is empty; the edited "
                         "object must be visible in the anchor frame")
    flow_src = folder / "flow.npz"
    if flow_src.is_file():
        from z2h.eval.data import load_flow

        load_flow(flow_src, name, n, (h, w))  # checked before anything is written
    out = inside(bench, name)
    if out.exists():
        raise FileExistsError(f"{out} already exists: import into a new --out or give another --name")
    write_frames(out / "original", original)
    write_frames(out / "edited", edited)
    for t, m in enumerate(masks):
        write_image(out / "mask" / f"{t:04d}.png", (m * 255).astype(np.uint8))
    if flow_src.is_file():
        (out / "flow.npz").write_bytes(flow_src.read_bytes())
    meta = {
        "name": name, "frames": n, "anchor": a, "resolution": [w, h],
        "edit": {"kind": "imported", "source": str(folder.resolve())},
        "tags": list(tags or []),
        "imported": {"from": str(folder.resolve()), "anchor_file": names[a],
                     "created": datetime.now(UTC).isoformat(timespec="seconds"),
                     "sequences": {k: str(v) for k, v in seqs.items()}},
        "motion_source": "flow.npz (ground truth)" if flow_src.is_file() else
                         "estimated from the masks: displacement_px is the mask centroid's distance from "
                         "the anchor's; no ground-truth flow, so no warping error or flow EPE",
        "per_frame": mask_motion(masks, a),
    }
    write_json(out / "meta.json", meta)
    log(f"{name}: {n} frames {w}x{h}, anchor {a} ({names[a]})"
        + ("" if flow_src.is_file() else ", motion from masks"))
    return meta


def import_bench(src: Path, out: Path, anchor: str | int | None = None, tags: list[str] | None = None,
                 name: str | None = None, log=print) -> Path:
    """Import every video of ``src`` into the benchmark ``out`` (new, or an existing one to extend)."""
    from z2h.benchmark.check import check_benchmark
    from z2h.benchmark.manifest import write_manifest

    videos = find_videos(Path(src))
    if name and len(videos) > 1:
        raise ValueError(f"--name names one video, but {src} holds {len(videos)}")
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not (out / "manifest.json").is_file():
        raise FileExistsError(f"{out} is not empty and holds no manifest.json: pass a new folder or a "
                              "benchmark to add to")
    out.mkdir(parents=True, exist_ok=True)
    for folder in videos:
        import_video(folder, out, name or folder.name, anchor, tags, log)
    write_manifest(out, {"source": "z2h bench import", "imported_from": str(Path(src).resolve())})
    errors, _ = check_benchmark(out)
    if errors:  # the importer's own output must pass the checker; say so loudly if not
        raise ValueError(f"imported benchmark {out} fails `z2h bench check`: {errors[0]}")
    return out


def run(args: argparse.Namespace) -> int:
    """`z2h bench import` (its arguments are declared in benchmark/cli.py)."""
    tags = [t.strip() for t in args.tags.split(",") if t.strip()] if args.tags else []
    out = import_bench(Path(args.src), Path(args.out), args.anchor, tags, args.name,
                       log=lambda m: print(f"z2h bench import: {m}", file=sys.stderr))
    print(f"{out}: ok (`z2h eval run {out} --methods default --out RESULTS`)")
    return 0
