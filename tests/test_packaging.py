"""The wheel maps eval/ and benchmark/ to z2h.eval / z2h.benchmark and installs no other top-level module."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(ROOT),
         "-w", str(out)],
        check=True,
        capture_output=True,
    )
    return next(out.glob("z2h-*.whl"))


def test_wheel_has_only_the_z2h_top_level_package(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"z2h"}
    for module in ("z2h/benchmark/__init__.py", "z2h/eval/__init__.py", "z2h/eval/methods.py"):
        assert module in names
    # every .py under the mapped source folders made it into the wheel
    for folder, package in (("benchmark", "z2h/benchmark"), ("eval", "z2h/eval"), ("z2h", "z2h")):
        for src in (ROOT / folder).rglob("*.py"):
            if "__pycache__" not in src.parts:
                assert f"{package}/{src.relative_to(ROOT / folder).as_posix()}" in names, src


def test_installed_wheel_imports_mapped_packages(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    code = "import z2h.eval.methods, z2h.benchmark, z2h.cli; print(z2h.eval.methods.__file__)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(target)},
        capture_output=True, text=True,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith(str(target))
