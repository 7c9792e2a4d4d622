"""What a valid benchmark (format v1) looks like: ONE set of rules for every reader and writer.

Used by the manifest reader (manifest.py), ``z2h bench check`` (check.py), ``z2h eval run``
(eval/data.py, eval/runner.py) and ``z2h bench import``. Standard library only: this module runs on the
Blender side too (docs/architecture.md).

The rules that matter for safety: a video name is a plain folder name (one path component, no ``..``,
no separators, not absolute, not hidden), and every path built from one must resolve inside its root,
so a hostile manifest can neither read nor write outside the benchmark or the results folder.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

FORMAT, VERSION = "z2h-bench", 1
# A video name: what a spec name may be (letters, digits, '_', '-'), plus '.' inside; never '.' or '..'.
_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")
MAX_NAME = 200


class BenchFormatError(ValueError):
    """A benchmark file breaks format v1; the message names the file and what is wrong."""


def name_problem(name: Any) -> str | None:
    """Why ``name`` is not a valid video name, or None when it is one."""
    if not isinstance(name, str):
        return f"video name must be a string, got {type(name).__name__} {name!r}"
    if not name or len(name) > MAX_NAME:
        return f"video name must have 1..{MAX_NAME} characters, got {name!r}"
    if "/" in name or "\\" in name or name in (".", "..") or Path(name).is_absolute():
        return f"video name {name!r} is not a plain folder name (no path separators, '..' or absolute paths)"
    if not _NAME.fullmatch(name) or name.endswith("."):
        return f"video name {name!r} may only hold letters, digits, '_', '-' and '.' (not first or last)"
    return None


def check_name(name: Any, where: str | Path) -> str:
    """``name`` if it is a valid video name, else :class:`BenchFormatError` naming ``where``."""
    problem = name_problem(name)
    if problem:
        raise BenchFormatError(f"{where}: {problem}")
    return name


def inside(root: str | Path, *parts: str) -> Path:
    """``root / parts...``, refused unless it resolves inside ``root`` (symlinks followed)."""
    root = Path(root)
    path = root.joinpath(*parts)
    real_root = root.resolve()
    real = path.resolve()
    if real != real_root and real_root not in real.parents:
        raise BenchFormatError(f"{path}: resolves to {real}, outside {real_root}")
    return path


def read_json(path: str | Path) -> Any:
    """Parsed JSON of ``path``; FileNotFoundError or :class:`BenchFormatError`, both naming the file."""
    path = Path(path)
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: missing") from None
    except IsADirectoryError:
        raise BenchFormatError(f"{path}: is a folder, expected a JSON file") from None
    except UnicodeDecodeError as e:
        raise BenchFormatError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise BenchFormatError(f"{path}: not valid JSON ({e})") from None


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def manifest_problems(manifest: Any, path: str | Path) -> list[str]:
    """Every problem of a parsed manifest.json, each a line naming ``path``."""
    if not isinstance(manifest, dict):
        return [f"{path}: expected a JSON object, got {type(manifest).__name__}"]
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        return [f"{path}: expected format {FORMAT!r} version {VERSION}, got "
                f"{manifest.get('format')!r} version {manifest.get('version')!r}"]
    videos = manifest.get("videos")
    if not isinstance(videos, list):
        return [f"{path}: 'videos' must be a list, got {type(videos).__name__}"]
    problems: list[str] = []
    seen: set[str] = set()
    for i, entry in enumerate(videos):
        where = f"{path}: videos[{i}]"
        if not isinstance(entry, dict):
            problems.append(f"{where}: expected an object with name, frames and anchor, got {entry!r}")
            continue
        problem = name_problem(entry.get("name"))
        if problem:
            problems.append(f"{where}: {problem}")
            continue
        if entry["name"] in seen:
            problems.append(f"{where}: video {entry['name']!r} is listed twice")
        seen.add(entry["name"])
        problems += entry_problems(entry, where)
    return problems


def entry_problems(entry: dict, where: str) -> list[str]:
    """Type and range problems of ``frames``/``anchor`` in a manifest entry or a meta.json."""
    frames, anchor = entry.get("frames"), entry.get("anchor")
    if not _is_int(frames) or frames < 1:
        return [f"{where}: 'frames' must be a positive integer, got {frames!r}"]
    if not _is_int(anchor):
        return [f"{where}: 'anchor' must be an integer, got {anchor!r}"]
    if not 0 <= anchor < frames:
        return [f"{where}: anchor {anchor} outside 0..{frames - 1}"]
    return []


def meta_problems(meta: Any, path: str | Path) -> list[str]:
    """Type problems of a parsed meta.json (fields, frames/anchor, resolution, per_frame, tags)."""
    if not isinstance(meta, dict):
        return [f"{path}: expected a JSON object, got {type(meta).__name__}"]
    missing = [k for k in ("name", "frames", "anchor", "resolution", "edit", "per_frame") if k not in meta]
    if missing:
        return [f"{path}: missing field(s) {', '.join(missing)}"]
    problems = entry_problems(meta, str(path))
    res = meta["resolution"]
    if not (isinstance(res, list) and len(res) == 2 and all(_is_int(x) and x > 0 for x in res)):
        problems.append(f"{path}: 'resolution' must be [width, height] in pixels, got {res!r}")
    if not isinstance(meta["edit"], dict):
        problems.append(f"{path}: 'edit' must be an object, got {meta['edit']!r}")
    per_frame = meta["per_frame"]
    if not isinstance(per_frame, list) or not all(isinstance(r, dict) for r in per_frame):
        problems.append(f"{path}: 'per_frame' must be a list of objects")
    elif not problems and len(per_frame) != meta["frames"]:
        problems.append(f"{path}: per_frame has {len(per_frame)} entries, expected {meta['frames']}")
    tags = meta.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        problems.append(f"{path}: 'tags' must be a list of strings, got {tags!r}")
    return problems


def validate_manifest(manifest: Any, path: str | Path) -> dict:
    """``manifest`` unchanged if valid, else :class:`BenchFormatError` with its first problem."""
    problems = manifest_problems(manifest, path)
    if problems:
        more = f" (and {len(problems) - 1} more; see `z2h bench check`)" if len(problems) > 1 else ""
        raise BenchFormatError(problems[0] + more)
    return manifest


def validate_meta(meta: Any, path: str | Path) -> dict:
    """``meta`` unchanged if valid, else :class:`BenchFormatError` with its first problem."""
    problems = meta_problems(meta, path)
    if problems:
        raise BenchFormatError(problems[0])
    return meta
