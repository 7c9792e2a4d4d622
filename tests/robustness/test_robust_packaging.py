"""Packaging metadata: PEP 639 license on setuptools>=77, both licenses shipped, ranges + constraints."""

import re
import subprocess
import sys
import tomllib
import zipfile
from email.parser import Parser
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints-ml.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, pinned = line.partition("==")
            pins[name.lower()] = pinned
    return pins


def test_build_system_accepts_a_license_expression():
    req = Requirement(PYPROJECT["build-system"]["requires"][0])
    assert req.name == "setuptools" and "69.5" not in req.specifier and "77.0" in req.specifier


def test_ml_extra_takes_ranges_and_the_constraints_pin_a_member_of_each():
    pins = constraints()
    for line in PYPROJECT["project"]["optional-dependencies"]["ml"] + \
            PYPROJECT["project"]["optional-dependencies"]["dev"]:
        req = Requirement(line)
        exact = [s for s in req.specifier if s.operator == "=="]
        assert not exact or req.name in ("torch", "torchvision"), f"{line}: a range belongs here"
        assert req.name.lower() in pins, f"{req.name} has no known-good version in constraints-ml.txt"
        assert pins[req.name.lower()] in SpecifierSet(str(req.specifier)), (line, pins[req.name.lower()])


def test_constraints_are_what_this_environment_runs():
    for name, pinned in constraints().items():
        assert version(name) == pinned, f"constraints-ml.txt says {name}=={pinned}, installed {version(name)}"


def test_setup_installs_with_the_constraints():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"pip install .*-c constraints-ml\.txt .*\[ml,dev(,ray)?\]", makefile)


@pytest.fixture(scope="module")
def metadata(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    str(ROOT), "-w", str(out)], check=True, capture_output=True)
    wheel = zipfile.ZipFile(next(out.glob("z2h-*.whl")))
    text = wheel.read(next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    return Parser().parsestr(text), wheel.namelist()


def test_wheel_metadata_names_licenses_authors_urls_classifiers(metadata):
    meta, names = metadata
    assert meta["License-Expression"] == "MIT AND GPL-3.0-or-later"
    assert sorted(meta.get_all("License-File")) == ["LICENSE", "blender_addon/LICENSE"]
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    assert meta["Author"] or meta["Author-email"]
    assert any(u.startswith("Paper, https://arxiv.org/abs/2505.23134") for u in meta.get_all("Project-URL"))
    assert "Topic :: Multimedia :: Video" in meta.get_all("Classifier")
