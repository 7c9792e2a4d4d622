"""`z2h addon build`: the manifest Blender requires and the zip's contents, from a checkout and a wheel."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from z2h import __version__, addon_build
from z2h.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _sources(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*.py") if "__pycache__" not in p.parts}


def _use_addon_copy(monkeypatch, addon: Path) -> None:
    real = addon_build.package_dir
    monkeypatch.setattr(addon_build, "package_dir",
                        lambda name: addon if name == "z2h.blender_addon" else real(name))


def test_manifest_has_the_fields_blender_requires():
    data = tomllib.loads((ROOT / "blender_addon" / "blender_manifest.toml").read_text())
    addon_build.validate_manifest(data)
    assert data["schema_version"] == "1.0.0" and data["id"] == "z2h" and data["type"] == "add-on"
    assert data["blender_version_min"] == "4.2.0" and data["license"] == ["SPDX:MIT"]
    assert data["version"] == __version__
    assert set(data["permissions"]) == {"files"} and len(data["permissions"]["files"]) > 10


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"id": None}, "missing field 'id'"),
        ({"version": 1}, "version: expected str, got int"),
        ({"version": "0.1"}, "version: expected MAJOR.MINOR.PATCH"),
        ({"license": ["MIT"]}, "license: expected a list of 'SPDX:"),
        ({"type": "theme"}, "type: expected 'add-on'"),
        ({"id": "z2h-addon"}, "not a valid Python identifier"),
        ({"permissions": {"files": ""}}, "permissions.files: expected the reason"),
    ],
)
def test_validate_manifest_names_the_bad_field(change, message):
    data = tomllib.loads((ROOT / "blender_addon" / "blender_manifest.toml").read_text())
    for key, value in change.items():
        if value is None:
            del data[key]
        else:
            data[key] = value
    with pytest.raises(ValueError, match=message):
        addon_build.validate_manifest(data, "M.toml")


def test_zip_layout_skips_caches_and_is_reproducible(tmp_path, monkeypatch):
    # A copy of the add-on with the clutter a working tree accumulates.
    addon = tmp_path / "addon"
    shutil.copytree(ROOT / "blender_addon", addon, ignore=shutil.ignore_patterns("__pycache__"))
    (addon / "__pycache__").mkdir()
    (addon / "__pycache__" / "client.cpython-311.pyc").write_bytes(b"x")
    (addon / ".client.py.swp").write_bytes(b"x")
    _use_addon_copy(monkeypatch, addon)

    first = addon_build.build(tmp_path / "a")
    assert first.name == f"z2h-{__version__}.zip"
    names = set(zipfile.ZipFile(first).namelist())
    expected = _sources(ROOT / "blender_addon") | {f"benchmark/{n}" for n in _sources(ROOT / "benchmark")}
    assert names == expected | {"blender_manifest.toml"}  # manifest at the zip root, as Blender expects
    assert {"__init__.py", "client.py", "benchmark/__init__.py", "benchmark/render.py"} <= names
    assert not any("__pycache__" in n or n.endswith(".pyc") or "/." in n or n.startswith(".") for n in names)
    second = addon_build.build(tmp_path / "b")
    assert first.read_bytes() == second.read_bytes()
    assert not list((tmp_path / "a").glob(".*tmp*"))  # no temporary file left behind


def test_addon_with_its_own_benchmark_folder_is_refused(tmp_path, monkeypatch):
    addon = tmp_path / "addon"
    shutil.copytree(ROOT / "blender_addon", addon, ignore=shutil.ignore_patterns("__pycache__"))
    (addon / "benchmark").mkdir()
    (addon / "benchmark" / "x.py").write_text("")
    _use_addon_copy(monkeypatch, addon)
    with pytest.raises(ValueError, match="own benchmark/ folder"):
        addon_build.build(tmp_path / "out")


def test_cli_writes_then_reports_replacing(tmp_path, capsys):
    assert main(["addon", "build", "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith(f"wrote {tmp_path / f'z2h-{__version__}.zip'}")
    assert main(["addon", "build", "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith("replaced ")


def test_build_from_an_installed_wheel(tmp_path):
    wheel_dir, site = tmp_path / "wheel", tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", str(ROOT), "-w", str(wheel_dir)],
                   check=True, capture_output=True)
    wheel = next(wheel_dir.glob("z2h-*.whl"))
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True,
                   capture_output=True)
    out = subprocess.run([sys.executable, "-m", "z2h", "addon", "build", "--out", str(tmp_path / "dist")],
                         cwd=tmp_path, env={"PYTHONPATH": str(site)}, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    from_wheel = set(zipfile.ZipFile(tmp_path / "dist" / f"z2h-{__version__}.zip").namelist())
    from_checkout = set(zipfile.ZipFile(addon_build.build(tmp_path / "checkout")).namelist())
    assert from_wheel == from_checkout


def test_bundled_code_imports_nothing_from_the_z2h_package():
    """Inside the zip there is no z2h package: the add-on and the benchmark copy import relatively
    (bench.py's fallback to z2h.benchmark for a checkout is a guarded importlib call)."""
    import ast

    for folder in ("blender_addon", "benchmark"):
        for src in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(src.read_text())):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                if isinstance(node, ast.ImportFrom) and node.level == 0:
                    names = [node.module or ""]
                assert not any(n == "z2h" or n.startswith("z2h.") for n in names), f"{src}: imports {names}"
