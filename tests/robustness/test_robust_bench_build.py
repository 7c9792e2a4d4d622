"""`z2h bench build`: overrides validated up front, unreadable specs named, --resume never mixes settings."""

import json
import shutil
from pathlib import Path

import pytest
from bench_fixtures import tiny_spec

from z2h.cli import main

ROOT = Path(__file__).resolve().parents[2]
HAVE_BLENDER = (ROOT / ".venv-blender" / "bin" / "python").exists() or shutil.which("blender")

SPEC = tiny_spec()


@pytest.fixture
def spec(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(SPEC)
    return path


@pytest.mark.parametrize("flags, expect", [
    (["--resolution", "0"], "--resolution 0: expected pixels in 8..8192"),
    (["--resolution", "-64"], "--resolution -64"),
    (["--resolution", "64", "4"], "--resolution 4"),
    (["--frames", "1"], "--frames 1: expected 2..10000"),
    (["--frames", "-5"], "--frames -5"),
    (["--samples", "-3"], "--samples -3: expected 1..65536"),
    (["--jobs", "0"], "--jobs 0"),
])
def test_bad_overrides_refused_before_anything(spec, tmp_path, capsys, flags, expect):
    out = tmp_path / "bench"
    assert main(["bench", "build", str(spec), "--out", str(out), *flags]) == 1
    err = capsys.readouterr().err
    assert expect in err and "Traceback" not in err
    assert not out.exists()


def test_unreadable_specs_are_named(tmp_path, capsys):
    folder = tmp_path / "specs.toml"
    folder.mkdir()
    latin = tmp_path / "latin.toml"
    latin.write_bytes(SPEC.replace("hero", "h\xe9ro").encode("latin-1"))
    for path, expect in ((folder, "is a folder"), (latin, "not UTF-8")):
        assert main(["bench", "build", str(path), "--out", str(tmp_path / "bench")]) == 1
        err = capsys.readouterr().err
        assert f"{path}: {expect}" in err, err
        assert len(err.strip().splitlines()) == 1


@pytest.mark.skipif(not HAVE_BLENDER, reason="no Blender-side env")
def test_resume_refuses_other_settings_and_keeps_files(spec, tmp_path, capsys):
    out = tmp_path / "bench"
    base = ["bench", "build", str(spec), "--out", str(out), "--samples", "1"]
    assert main(base) == 0, capsys.readouterr().err
    files = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and ".logs" not in p.parts}
    capsys.readouterr()

    # A resolution change used to keep the 16x16 flow.npz under 24x24 frames (invalid, exit 0).
    assert main([*base, "--resume", "--resolution", "24"]) == 1
    err = capsys.readouterr().err
    assert f"{out / 'tiny'}: rendered with other settings (resolution [16, 16] -> [24, 24])" in err, err
    # A spec edit used to keep the old edited frames under a new meta.json.
    spec.write_text(SPEC.replace("[0.1, 0.2, 0.9]", "[0.9, 0.9, 0.1]"))
    assert main([*base, "--resume"]) == 1
    assert "spec edit" in capsys.readouterr().err
    assert main([*base, "--resume", "--samples", "2"]) == 1
    assert "samples 1 -> 2" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in files} == files  # nothing re-rendered or deleted

    # --overwrite re-renders with the new spec; then --resume with the same settings is accepted.
    assert main([*base, "--overwrite"]) == 0
    record = json.loads((out / "tiny" / ".build.json").read_text())
    assert record["spec"]["edit"]["color"] == [0.9, 0.9, 0.1]
    assert main([*base, "--resume"]) == 0
    # A build made before build records existed is judged by its meta.json.
    (out / "tiny" / ".build.json").unlink()
    assert main([*base, "--resume", "--frames", "3"]) == 1
    assert "frames 2 -> 3" in capsys.readouterr().err
    assert main([*base, "--resume"]) == 0
    assert (out / "tiny" / ".build.json").exists()
    assert main(["bench", "check", str(out)]) == 0


def test_manifest_writer_names_a_corrupt_meta(tmp_path):
    from z2h.benchmark.manifest import write_manifest
    from z2h.benchmark.validate import BenchFormatError

    (tmp_path / "vid").mkdir()
    (tmp_path / "vid" / "meta.json").write_text('{"name": "vid", "frames": ')
    with pytest.raises(BenchFormatError, match=r"vid/meta.json: not valid JSON"):
        write_manifest(tmp_path, {})
