"""``z2h bench check``: validate a benchmark folder against format v1 (docs/architecture.md).

Errors make it invalid (missing/extra/mis-sized frames, wrong pixel format, an empty anchor mask, a
manifest that disagrees with the videos); warnings do not (an empty mask on a non-anchor frame, which
a full occlusion legitimately produces).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from .manifest import read_manifest
from .png import PNGError, png_complete, read_header, read_png

KINDS = {"original": (3, 4), "edited": (3, 4), "mask": (1,)}  # allowed channel counts


def check_video(d: Path, expect: dict | None) -> tuple[list[str], list[str]]:
    """(errors, warnings) for one video folder."""
    errors: list[str] = []
    warnings: list[str] = []
    try:
        meta = json.loads((d / "meta.json").read_text())
    except FileNotFoundError:
        return [f"{d}: no meta.json"], []
    except json.JSONDecodeError as e:
        return [f"{d / 'meta.json'}: not valid JSON ({e})"], []
    missing = [k for k in ("name", "frames", "anchor", "resolution", "edit", "per_frame") if k not in meta]
    if missing:
        return [f"{d / 'meta.json'}: missing field(s) {', '.join(missing)}"], []
    n, anchor, (w, h) = meta["frames"], meta["anchor"], meta["resolution"]
    if expect is not None and (expect.get("frames"), expect.get("anchor")) != (n, anchor):
        errors.append(
            f"{d.name}: manifest says frames={expect.get('frames')} anchor={expect.get('anchor')}, "
            f"meta.json says frames={n} anchor={anchor}"
        )
    if not 0 <= anchor < n:
        errors.append(f"{d / 'meta.json'}: anchor {anchor} outside 0..{n - 1}")
    if len(meta["per_frame"]) != n:
        errors.append(f"{d / 'meta.json'}: per_frame has {len(meta['per_frame'])} entries, expected {n}")
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
                    if not (m > 127).any():
                        (errors if i == anchor else warnings).append(
                            f"{path}: empty mask" + (" at the anchor" if i == anchor else "")
                        )
                    elif not np.isin(m, (0, 255)).all():
                        warnings.append(f"{path}: mask has values other than 0 and 255")
            except (OSError, PNGError) as e:
                errors.append(f"{path}: unreadable ({e})")
    flow = d / "flow.npz"
    if flow.exists():
        try:
            with np.load(flow) as z:
                for key in ("forward", "backward"):
                    if key not in z or z[key].shape != (n - 1, h, w, 2):
                        shape = z[key].shape if key in z else None
                        errors.append(f"{flow}: {key} has shape {shape}, expected {(n - 1, h, w, 2)}")
        except (OSError, ValueError, zipfile.BadZipFile) as e:
            errors.append(f"{flow}: unreadable ({e})")
    return errors, warnings


def check_benchmark(bench: str | Path) -> tuple[list[str], list[str]]:
    """(errors, warnings) for a whole benchmark folder."""
    bench = Path(bench)
    if not bench.is_dir():
        return [f"{bench}: not a folder"], []
    try:
        manifest = read_manifest(bench)
    except (FileNotFoundError, ValueError) as e:
        return [str(e)], []
    errors: list[str] = []
    warnings: list[str] = []
    listed = {v.get("name"): v for v in manifest.get("videos", [])}
    if not listed:
        errors.append(f"{bench / 'manifest.json'}: lists no videos")
    on_disk = {p.parent.name for p in bench.glob("*/meta.json")}
    for name in sorted(on_disk - set(listed)):
        warnings.append(f"{bench / name}: video not listed in manifest.json")
    for name, entry in listed.items():
        if not (bench / str(name)).is_dir():
            errors.append(f"{bench / str(name)}: listed in manifest.json but missing")
            continue
        e, w = check_video(bench / name, entry)
        errors += e
        warnings += w
    return errors, warnings
