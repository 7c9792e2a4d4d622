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


def test_manifest_is_gpl_and_matches_the_package():
    data = tomllib.loads((ROOT / "blender_addon" / "blender_manifest.toml").read_text())
    assert data["schema_version"] == "1.0.0" and data["id"] == "z2h" and data["type"] == "add-on"
    assert data["blender_version_min"] == "4.2.0" and data["version"] == __version__
    assert data["license"] == ["SPDX:GPL-3.0-or-later"]  # it imports bpy (GPL); the backend stays MIT
    license_text = (ROOT / "blender_addon" / "LICENSE").read_text()
    assert "GNU GENERAL PUBLIC LICENSE" in license_text and "Version 3, 29 June 2007" in license_text


@pytest.fixture(scope="module")
def validators():
    found = addon_build.find_validators()
    if not found:
        pytest.skip("no bpy wheel with Blender's blender_ext.py (make setup creates .venv-blender*)")
    return found


def test_blenders_own_validator_accepts_the_zip(tmp_path, validators):
    # Every Blender-side venv's validator (4.2, 4.5 and 5.0 after make setup) runs on the zip.
    assert {v.parts[-6] for v in validators} >= {"5.0"}
    path = addon_build.build(tmp_path, validators)
    assert zipfile.ZipFile(path).read("LICENSE") == (ROOT / "blender_addon" / "LICENSE").read_bytes()


def test_blenders_own_validator_rejects_a_long_tagline(tmp_path, monkeypatch, validators):
    addon = tmp_path / "addon"
    shutil.copytree(ROOT / "blender_addon", addon, ignore=shutil.ignore_patterns("__pycache__"))
    manifest = addon / "blender_manifest.toml"
    text = manifest.read_text()
    tagline = next(line for line in text.splitlines() if line.startswith("tagline"))
    manifest.write_text(text.replace(tagline, 'tagline = "' + "x" * 75 + '"'))
    _use_addon_copy(monkeypatch, addon)
    out = tmp_path / "dist"
    out.mkdir()
    (out / f"z2h-{__version__}.zip").write_bytes(b"the previous build")
    with pytest.raises(ValueError, match=r'validator rejects .*key "tagline" invalid: .*64 characters.*75'):
        addon_build.build(out, validators)
    assert (out / f"z2h-{__version__}.zip").read_bytes() == b"the previous build"  # not replaced
    assert [p.name for p in out.iterdir()] == [f"z2h-{__version__}.zip"]  # no temporary file left


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
    assert names == expected | {"blender_manifest.toml", "LICENSE"}  # at the zip root, as Blender expects
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


def test_cli_writes_then_reports_replacing(tmp_path, capsys, validators):
    assert main(["addon", "build", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"wrote {tmp_path / f'z2h-{__version__}.zip'}") and "validated by Blender " in out
    assert main(["addon", "build", "--out", str(tmp_path), "--no-validate"]) == 0
    assert capsys.readouterr().out.startswith("replaced ")


def test_cli_without_a_validator_says_how_to_get_one(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(addon_build, "find_validators", lambda: [])
    assert main(["addon", "build", "--out", str(tmp_path)]) == 1
    assert "--blender-ext PATH or --no-validate" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_build_from_an_installed_wheel(tmp_path):
    wheel_dir, site = tmp_path / "wheel", tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", str(ROOT), "-w", str(wheel_dir)],
                   check=True, capture_output=True)
    wheel = next(wheel_dir.glob("z2h-*.whl"))
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True,
                   capture_output=True)
    # Outside a checkout no .venv-blender is next to the package: name the validator, or skip it.
    found = addon_build.find_validators()
    check = ["--blender-ext", str(found[-1])] if found else ["--no-validate"]
    cmd = [sys.executable, "-m", "z2h", "addon", "build", "--out", str(tmp_path / "dist"), *check]
    out = subprocess.run(cmd, cwd=tmp_path, env={"PYTHONPATH": str(site)}, capture_output=True, text=True)
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


def test_set_up_backend_pins_the_same_torch_as_the_package():
    """The add-on's Set Up Backend must install the torch the backend is pinned to (pyproject.toml)."""
    import ast

    tree = ast.parse((ROOT / "blender_addon" / "setup_backend.py").read_text())
    pins = next(ast.literal_eval(n.value) for n in tree.body
                if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "TORCH")
    ml = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["ml"]
    assert set(pins) == {r for r in ml if r.startswith(("torch==", "torchvision=="))}
