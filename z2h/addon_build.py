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
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

SKIP_DIRS = {"__pycache__"}
SKIP_SUFFIXES = {".pyc", ".pyo", ".tmp"}
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
# Inside a bpy wheel: bpy/<version>/scripts/addons_core/bl_pkg/cli/blender_ext.py
VALIDATOR_GLOB = "*/scripts/addons_core/bl_pkg/cli/blender_ext.py"
FIND_BPY = "import importlib.util as u; s = u.find_spec('bpy'); print(s.origin if s else '')"


def package_dir(name: str) -> Path:
    """The folder of package ``name`` without importing it (only its parent package gets imported)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {name} not found: is z2h installed (pip install -e .)?")
    return Path(next(iter(spec.submodule_search_locations)))


def _blender_pythons(roots: list[Path]) -> list[Path]:
    return sorted({p for root in roots for p in root.glob(".venv-blender*/bin/python")})


def find_validators(roots: list[Path] | None = None) -> list[Path]:
    """Blender's extension CLI (``blender_ext.py``, standard library only) from every bpy wheel this
    interpreter and the Blender-side venvs next to the checkout (``.venv-blender*``) have, oldest
    Blender first. ``Z2H_BLENDER_EXT`` names one explicitly."""
    if os.environ.get("Z2H_BLENDER_EXT"):
        return [Path(os.environ["Z2H_BLENDER_EXT"])]
    origins = []
    spec = importlib.util.find_spec("bpy")
    if spec is not None and spec.origin:
        origins.append(Path(spec.origin))
    if roots is None:
        roots = [Path(__file__).resolve().parents[1], Path.cwd()]
    for python in _blender_pythons(roots):
        # Asks the venv where its bpy is without importing it (light venvs borrow another's packages).
        out = subprocess.run([str(python), "-c", FIND_BPY], capture_output=True, text=True, timeout=60)
        if out.returncode == 0 and out.stdout.strip():
            origins.append(Path(out.stdout.strip()))
    found = {p for origin in origins for p in origin.parent.glob(VALIDATOR_GLOB)}
    return sorted(found, key=lambda p: tuple(int(x) for x in p.parts[-6].split(".")))


def validate(zip_path: Path, validators: list[Path]) -> None:
    """Run each Blender's own ``blender_ext.py validate`` on the zip; ValueError with its messages."""
    for validator in validators:
        out = subprocess.run([sys.executable, str(validator), "validate", str(zip_path)], capture_output=True,
                             text=True, timeout=120)
        if out.returncode != 0:
            blender = validator.parts[-6]
            lines = [ln.removeprefix("FATAL_ERROR: ") for ln in (out.stdout + out.stderr).splitlines()
                     if ln.strip() and not ln.startswith(("FATAL_ERROR: Error parsing", "Error parsing"))]
            raise ValueError(f"Blender {blender}'s extension validator rejects {zip_path.name}: "
                             + "; ".join(lines or [f"exit code {out.returncode}"]))


def _files(root: Path) -> list[Path]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
        out += [Path(dirpath) / f for f in sorted(filenames)
                if not f.startswith(".") and Path(f).suffix not in SKIP_SUFFIXES]
    return out


def build(out_dir: str | Path, validators: list[Path] | None = None) -> Path:
    """Write ``out_dir/z2h-<version>.zip`` (atomically) and return its path. With ``validators`` (see
    :func:`find_validators`) the zip must pass each before it replaces an existing one."""
    addon, benchmark = package_dir("z2h.blender_addon"), package_dir("z2h.benchmark")
    manifest_path = addon / "blender_manifest.toml"
    try:
        manifest = tomllib.loads(manifest_path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{manifest_path}: cannot read: {exc}") from exc
    entries = [(f, f.relative_to(addon).as_posix()) for f in _files(addon)]
    if any(name.split("/")[0] == "benchmark" for _, name in entries):
        raise ValueError(f"{addon} has its own benchmark/ folder; it would clash with the bundled copy")
    entries += [(f, "benchmark/" + f.relative_to(benchmark).as_posix()) for f in _files(benchmark)]

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{manifest['id']}-{manifest['version']}.zip"
    tmp = target.with_name(f".{target.stem}.tmp{os.getpid()}.zip")
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            for src, name in sorted(entries, key=lambda e: e[1]):
                info = zipfile.ZipInfo(name, ZIP_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                zf.writestr(info, src.read_bytes())
        if validators:
            validate(tmp, validators)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="addon_command", metavar="ACTION", required=True)
    p = sub.add_parser("build", help="zip the add-on for Blender's 'Install from Disk'")
    p.add_argument("--out", default="dist", help="folder for z2h-<version>.zip (default: dist)")
    p.add_argument("--blender-ext", type=Path, action="append", default=None, metavar="PATH",
                   help="Blender's extension CLI to validate the zip with (a bpy wheel's "
                        "bpy/<version>/scripts/addons_core/bl_pkg/cli/blender_ext.py); repeatable "
                        "(default: the one of every bpy in .venv-blender*)")
    p.add_argument("--no-validate", action="store_true",
                   help="skip Blender's validator (when no bpy or Blender is at hand)")


def run(args: argparse.Namespace) -> int:
    validators = [] if args.no_validate else (args.blender_ext or find_validators())
    if not args.no_validate and not validators:
        print("z2h addon build: Blender's extension validator (blender_ext.py from a bpy wheel) not found: "
              "set up .venv-blender (make setup), pass --blender-ext PATH or --no-validate", file=sys.stderr)
        return 1
    try:
        existed = {p.name for p in Path(args.out).glob("*.zip")}
        path = build(args.out, validators)
    except (ValueError, FileNotFoundError) as exc:
        print(f"z2h addon build: {exc}", file=sys.stderr)
        return 1
    verb = "replaced" if path.name in existed else "wrote"
    checked = ", ".join(f"Blender {v.parts[-6]}" for v in validators) or "nothing (--no-validate)"
    print(f"{verb} {path} ({path.stat().st_size / 1024:.0f} KiB), validated by {checked}; install it in "
          "Blender 4.2+ with Edit > Preferences > Get Extensions > Install from Disk")
    return 0
