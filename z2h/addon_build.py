"""`z2h addon build`: the Blender extension zip (blender_addon/ + benchmark/ as its subpackage `benchmark`).

Blender installs an extension from a zip with ``blender_manifest.toml`` at its root. The add-on runs
the benchmark builder inside Blender, so ``benchmark/`` (relative imports only) is copied in as
``benchmark/``. Sources are found through the import system (``z2h.blender_addon``, ``z2h.benchmark``)
without importing them (the add-on imports bpy), so this works from a checkout and an installed wheel.
The zip is reproducible: sorted entries, fixed timestamps.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tomllib
import zipfile
from pathlib import Path

REQUIRED = {"schema_version": str, "id": str, "version": str, "name": str, "tagline": str, "maintainer": str,
            "type": str, "blender_version_min": str, "license": list}
SKIP_DIRS = {"__pycache__"}
SKIP_SUFFIXES = {".pyc", ".pyo", ".tmp"}
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def package_dir(name: str) -> Path:
    """The folder of package ``name`` without importing it (only its parent package gets imported)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {name} not found: is z2h installed (pip install -e .)?")
    return Path(next(iter(spec.submodule_search_locations)))


def validate_manifest(data: dict, source: str = "blender_manifest.toml") -> None:
    """Check the fields Blender requires of an extension manifest; ValueError names the field."""
    for key, kind in REQUIRED.items():
        if key not in data:
            raise ValueError(f"{source}: missing field {key!r}")
        if not isinstance(data[key], kind):
            raise ValueError(f"{source}: {key}: expected {kind.__name__}, got {type(data[key]).__name__}")
    if data["schema_version"] != "1.0.0":
        raise ValueError(f"{source}: schema_version: expected '1.0.0', got {data['schema_version']!r}")
    if data["type"] != "add-on":
        raise ValueError(f"{source}: type: expected 'add-on', got {data['type']!r}")
    if not data["id"].isidentifier():
        raise ValueError(f"{source}: id: {data['id']!r} is not a valid Python identifier")
    for key in ("version", "blender_version_min"):
        parts = data[key].split(".")
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            raise ValueError(f"{source}: {key}: expected MAJOR.MINOR.PATCH, got {data[key]!r}")
    if not data["license"] or not all(isinstance(x, str) and x.startswith("SPDX:") for x in data["license"]):
        raise ValueError(f"{source}: license: expected a list of 'SPDX:...' strings, got {data['license']!r}")
    permissions = data.get("permissions", {})
    for key, reason in permissions.items():
        if not isinstance(reason, str) or not reason.strip():
            raise ValueError(f"{source}: permissions.{key}: expected the reason as a non-empty string")


def _files(root: Path) -> list[Path]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
        out += [Path(dirpath) / f for f in sorted(filenames)
                if not f.startswith(".") and Path(f).suffix not in SKIP_SUFFIXES]
    return out


def build(out_dir: str | Path) -> Path:
    """Write ``out_dir/z2h-<version>.zip`` (atomically) and return its path."""
    addon, benchmark = package_dir("z2h.blender_addon"), package_dir("z2h.benchmark")
    manifest_path = addon / "blender_manifest.toml"
    try:
        manifest = tomllib.loads(manifest_path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{manifest_path}: cannot read: {exc}") from exc
    validate_manifest(manifest, str(manifest_path))
    entries = [(f, f.relative_to(addon).as_posix()) for f in _files(addon)]
    if any(name.split("/")[0] == "benchmark" for _, name in entries):
        raise ValueError(f"{addon} has its own benchmark/ folder; it would clash with the bundled copy")
    entries += [(f, "benchmark/" + f.relative_to(benchmark).as_posix()) for f in _files(benchmark)]

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{manifest['id']}-{manifest['version']}.zip"
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            for src, name in sorted(entries, key=lambda e: e[1]):
                info = zipfile.ZipInfo(name, ZIP_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                zf.writestr(info, src.read_bytes())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="addon_command", metavar="ACTION", required=True)
    p = sub.add_parser("build", help="zip the add-on for Blender's 'Install from Disk'")
    p.add_argument("--out", default="dist", help="folder for z2h-<version>.zip (default: dist)")


def run(args: argparse.Namespace) -> int:
    try:
        existed = {p.name for p in Path(args.out).glob("*.zip")}
        path = build(args.out)
    except (ValueError, FileNotFoundError) as exc:
        print(f"z2h addon build: {exc}", file=sys.stderr)
        return 1
    verb = "replaced" if path.name in existed else "wrote"
    print(f"{verb} {path} ({path.stat().st_size / 1024:.0f} KiB); install it in Blender 4.2+ with "
          "Edit > Preferences > Get Extensions > Install from Disk")
    return 0
