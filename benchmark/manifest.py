"""BENCH/manifest.json: format, version, settings and the list of videos (docs/architecture.md)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

from .validate import FORMAT, VERSION, read_json, validate_manifest, validate_meta

__all__ = ["FORMAT", "VERSION", "read_manifest", "video_dirs", "write_manifest"]


def video_dirs(bench: str | Path) -> list[Path]:
    """Sub-folders of ``bench`` that hold a finished video (a meta.json), sorted by name."""
    return sorted(p.parent for p in Path(bench).glob("*/meta.json"))


def write_manifest(bench: str | Path, settings: dict, seed: int = 0) -> dict:
    """(Re)write the manifest from the videos' meta.json files; returns it."""
    bench = Path(bench)
    videos = []
    for d in video_dirs(bench):
        meta = validate_meta(read_json(d / "meta.json"), d / "meta.json")  # one line naming a bad file
        videos.append({"name": d.name, "frames": meta["frames"], "anchor": meta["anchor"]})
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "seed": seed,
        "settings": settings,
        "videos": videos,
    }
    tmp = bench / f".manifest.json.tmp{os.getpid()}"
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, bench / "manifest.json")
    return manifest


def read_manifest(bench: str | Path) -> dict:
    """The manifest, validated (format, version, every video entry; see validate.py)."""
    path = Path(bench) / "manifest.json"
    if not Path(bench).is_dir():
        raise FileNotFoundError(f"{bench}: benchmark folder not found")
    if not path.exists():
        raise FileNotFoundError(f"{path}: no manifest (is {bench} a z2h benchmark?)")
    return validate_manifest(read_json(path), path)
