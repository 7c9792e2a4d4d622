"""``z2h bench check``: validate a benchmark folder against format v1 (docs/architecture.md).

Errors make it invalid (missing/extra/mis-sized frames, wrong pixel format, an empty anchor mask, a
manifest that disagrees with the videos); warnings do not (an empty mask on a non-anchor frame, which
a full occlusion legitimately produces).
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np

from .masks import CHANNELS as MASK_CHANNELS
from .masks import mask_inside
from .png import PNGError, png_complete, read_header, read_png
from .validate import BenchFormatError, inside, manifest_problems, meta_problems, name_problem, read_json

# allowed channel counts; masks as eval reads them (benchmark/masks.py): grey, grey+alpha, RGB or RGBA
KINDS = {"original": (3, 4), "edited": (3, 4), "mask": MASK_CHANNELS}


def check_video(d: Path, expect: dict | None) -> tuple[list[str], list[str]]:
    """(errors, warnings) for one video folder."""
    errors: list[str] = []
    warnings: list[str] = []
    meta_path = d / "meta.json"
    try:
        meta = read_json(meta_path)
    except FileNotFoundError:
        return [f"{d}: no meta.json"], []
    except BenchFormatError as e:
        return [str(e)], []
    problems = meta_problems(meta, meta_path)
    if problems:
        return problems, []
    n, anchor, (w, h) = meta["frames"], meta["anchor"], meta["resolution"]
    if expect is not None and (expect.get("frames"), expect.get("anchor")) != (n, anchor):
        errors.append(
            f"{d.name}: manifest says frames={expect.get('frames')} anchor={expect.get('anchor')}, "
            f"meta.json says frames={n} anchor={anchor}"
        )
    for kind, channels in KINDS.items():
        folder = d / kind
        found = folder.glob("*.png") if folder.is_dir() else []
        names = sorted(p.name for p in found if not p.name.startswith("."))  # skip temporary files
        expected = [f"{i:04d}.png" for i in range(n)]
        for name in sorted(set(expected) - set(names)):
            errors.append(f"{folder / name}: missing")
        for name in sorted(set(names) - set(expected)):
            errors.append(f"{folder / name}: unexpected frame (meta.json says {n} frames)")
        for name in sorted(set(names) & set(expected)):
            path = folder / name
            try:
                pw, ph, ch, depth = read_header(path)
                if (pw, ph) != (w, h):
                    errors.append(f"{path}: size {pw}x{ph}, expected {w}x{h}")
                elif not png_complete(path):
                    errors.append(f"{path}: truncated (no IEND chunk)")
                elif ch not in channels or depth != 8:
                    errors.append(f"{path}: {ch} channel(s) at {depth} bit, expected {channels} at 8 bit")
                elif kind == "mask":
                    m = read_png(path)
                    i = int(name[:4])
                    if not mask_inside(m).any():
                        (errors if i == anchor else warnings).append(
                            f"{path}: empty mask" + (" at the anchor" if i == anchor else "")
                        )
                    elif not np.isin(m, (0, 255)).all():
                        warnings.append(f"{path}: mask has values other than 0 and 255")
            except PNGError as e:  # its message names the file
                errors.append(str(e))
            except OSError as e:
                errors.append(f"{path}: unreadable ({e})")
    flow = d / "flow.npz"
    if flow.exists():
        try:
            with np.load(flow) as z:
                for key in ("forward", "backward"):
                    if key not in z or z[key].shape != (n - 1, h, w, 2):
                        shape = z[key].shape if key in z else None
                        errors.append(f"{flow}: {key} has shape {shape}, expected {(n - 1, h, w, 2)}")
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as e:
            errors.append(f"{flow}: unreadable ({e})")
    return errors, warnings


def check_benchmark(bench: str | Path) -> tuple[list[str], list[str]]:
    """(errors, warnings) for a whole benchmark folder."""
    bench = Path(bench)
    if not bench.is_dir():
        return [f"{bench}: not a folder"], []
    path = bench / "manifest.json"
    try:
        manifest = read_json(path)
    except (FileNotFoundError, BenchFormatError) as e:
        return [str(e)], []
    errors = manifest_problems(manifest, path)
    warnings: list[str] = []
    if errors and not isinstance(manifest.get("videos") if isinstance(manifest, dict) else None, list):
        return errors, []
    # Only entries with a valid name are looked up on disk: a hostile name must never be followed.
    listed = {v["name"]: v for v in manifest["videos"]
              if isinstance(v, dict) and not name_problem(v.get("name"))}
    if not manifest["videos"]:
        errors.append(f"{path}: lists no videos")
    on_disk = {p.parent.name for p in bench.glob("*/meta.json")}
    for name in sorted(on_disk - set(listed)):
        warnings.append(f"{bench / name}: video not listed in manifest.json")
    for name, entry in listed.items():
        try:
            folder = inside(bench, name)
        except BenchFormatError as e:  # e.g. a symlink that leaves the benchmark
            errors.append(str(e))
            continue
        if not folder.is_dir():
            errors.append(f"{folder}: listed in manifest.json but missing")
            continue
        e, w = check_video(folder, entry)
        errors += e
        warnings += w
    return errors, warnings
