"""``z2h bench`` from the backend environment: generate, a real build through the Blender-side worker
subprocess (.venv-blender), check, and the output-folder guard."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from bench_fixtures import tiny_spec

from z2h.benchmark.png import read_png
from z2h.cli import main

ROOT = Path(__file__).resolve().parent.parent
BLENDER_PY = ROOT / ".venv-blender" / "bin" / "python"

SPEC = tiny_spec()


def test_bench_is_torch_free():
    import subprocess
    import sys

    code = (
        "import sys; from z2h.cli import build_parser; build_parser('bench'); "
        "import z2h.benchmark.build, z2h.benchmark.check, z2h.benchmark.generate; "
        "assert 'torch' not in sys.modules and 'bpy' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_generate_then_guard(tmp_path, capsys):
    assert main(["bench", "generate", "--n", "3", "--seed", "1", "--out", str(tmp_path / "specs")]) == 0
    assert len(list((tmp_path / "specs").glob("*.toml"))) == 3
    out = tmp_path / "bench"
    out.mkdir()
    (out / "keep.txt").write_text("user data")
    # A non-empty output folder is refused before anything renders (no Blender needed for that).
    assert main(["bench", "build", *map(str, (tmp_path / "specs").glob("*.toml")), "--out", str(out)]) == 1
    assert "not empty" in capsys.readouterr().err and (out / "keep.txt").exists()
    bad = tmp_path / "bad.toml"
    bad.write_text(SPEC.replace('"cube"', '"cub"'))
    assert main(["bench", "build", str(bad), "--out", str(tmp_path / "b2")]) == 1
    assert f"{bad}: objects[0].shape" in capsys.readouterr().err
    assert main(["bench", "check", str(tmp_path / "b2")]) == 1


@pytest.mark.skipif(not BLENDER_PY.exists() and not shutil.which("blender"), reason="no Blender-side env")
def test_build_through_worker_then_check(tmp_path, capsys):
    spec = tmp_path / "tiny.toml"
    spec.write_text(SPEC)
    out = tmp_path / "bench"
    args = ["bench", "build", str(spec), "--out", str(out), "--samples", "1", "--engine", "cycles"]
    assert main(args) == 0, capsys.readouterr().err
    assert "tiny: done" in capsys.readouterr().err
    assert main(["bench", "check", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["videos"] == [{"name": "tiny", "frames": 2, "anchor": 0}]
    assert manifest["settings"]["resolution"] == [16, 16] and manifest["settings"]["engine"] == "cycles"
    meta = json.loads((out / "tiny" / "meta.json").read_text())
    assert meta["spec"] == "tiny.toml" and meta["per_frame"][1]["displacement_px"] > 0
    with np.load(out / "tiny" / "flow.npz") as z:  # on by default with Cycles
        assert z["forward"].shape == (1, 16, 16, 2) and z["forward"].dtype == np.float16
    # Second build: refused without a flag; --resume re-renders only the frame we removed.
    assert main(args) == 1
    first = read_png(out / "tiny" / "edited" / "0001.png")
    (out / "tiny" / "edited" / "0001.png").unlink()
    assert main(args + ["--resume"]) == 0
    assert "step 3/3" in capsys.readouterr().err  # 1 render + metadata of 2 frames
    assert np.array_equal(read_png(out / "tiny" / "edited" / "0001.png"), first)  # same pixels, new process
    assert main(["bench", "check", str(out)]) == 0


def test_worker_command_resolution(tmp_path, monkeypatch):
    from z2h.benchmark.build import WORKER, worker_command

    fake = tmp_path / "blender"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    assert worker_command(str(fake)) == [
        str(fake),
        "-b",
        "--factory-startup",
        "--python-exit-code",
        "1",
        "--python",
        str(WORKER),
        "--",
    ]
    monkeypatch.setenv("Z2H_BLENDER", str(BLENDER_PY))
    assert worker_command() == [str(BLENDER_PY), str(WORKER), "--"]
    with pytest.raises(FileNotFoundError, match="nope"):
        worker_command(str(tmp_path / "nope"))
