"""BENCH/manifest.json: format, version, settings and the list of videos (docs/architecture.md)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

FORMAT, VERSION = "z2h-bench", 1


def video_dirs(bench: str | Path) -> list[Path]:
    """Sub-folders of ``bench`` that hold a finished video (a meta.json), sorted by name."""
    return sorted(p.parent for p in Path(bench).glob("*/meta.json"))


def write_manifest(bench: str | Path, settings: dict, seed: int = 0) -> dict:
    """(Re)write the manifest from the videos' meta.json files; returns it."""
    bench = Path(bench)
    videos = []
    for d in video_dirs(bench):
        meta = json.loads((d / "meta.json").read_text())
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
    """The manifest, checked for format and version."""
    path = Path(bench) / "manifest.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no manifest (is {bench} a z2h benchmark?)")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise ValueError(
            f"{path}: expected format {FORMAT!r} version {VERSION}, got "
            f"{manifest.get('format')!r} version {manifest.get('version')!r}"
        )
    return manifest
