"""Video names from a manifest are plain folder names; nothing is read or written outside its root."""

import json

import numpy as np
import pytest
from eval_fixtures import make_bench

from z2h.benchmark.check import check_benchmark
from z2h.benchmark.manifest import read_manifest
from z2h.benchmark.validate import BenchFormatError, inside, name_problem
from z2h.cli import main
from z2h.eval.data import load_video
from z2h.io import write_image


@pytest.mark.parametrize("bad", ["../../x/victim", "/tmp/victim", "a/b", "..", ".", "", ".hidden", "a\\b", 3])
def test_name_rules(bad):
    assert name_problem(bad)


@pytest.mark.parametrize("good", ["pan-right", "cube_01", "v1.2", "A"])
def test_plain_names_pass(good):
    assert name_problem(good) is None


def _hostile_bench(tmp_path, name):
    bench = make_bench(tmp_path / "bench")
    manifest = json.loads((bench / "manifest.json").read_text())
    manifest["videos"][0]["name"] = name
    (bench / "manifest.json").write_text(json.dumps(manifest))
    return bench


@pytest.mark.parametrize("name", ["../victim", "ABS"])
def test_traversal_refused_by_reader_checker_and_runner(tmp_path, capsys, name):
    # A victim video outside the benchmark, and a victim PNG where the runner would have written.
    victim = make_bench(tmp_path / "elsewhere", videos={"victim": {"step": (1, 0), "seed": 3}}) / "victim"
    name = str(victim) if name == "ABS" else "../elsewhere/victim"
    bench = _hostile_bench(tmp_path, name)
    out = tmp_path / "results"
    precious = tmp_path / "elsewhere" / "victim" / "keep.png"
    write_image(precious, np.zeros((4, 4, 3), np.uint8))
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))

    with pytest.raises(BenchFormatError, match=r"manifest.json: videos\[0\]: video name .* not a plain"):
        read_manifest(bench)
    errors, _ = check_benchmark(bench)
    assert any("videos[0]" in e and "not a plain folder name" in e for e in errors)
    assert main(["bench", "check", str(bench)]) == 1
    assert main(["eval", "run", str(bench), "--methods", "no-edit", "--lpips", "none", "--out", str(out),
                 "--progress", "none"]) == 1
    assert "not a plain folder name" in capsys.readouterr().err
    assert precious.exists()
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert [p for p in after if p not in before] == []  # not even an empty --out


def test_symlinked_video_folder_cannot_lead_outside(tmp_path):
    bench = make_bench(tmp_path / "bench")
    other = make_bench(tmp_path / "other", videos={"pan-right": {"step": (1, 0), "seed": 5}})
    import shutil

    shutil.rmtree(bench / "pan-right")
    (bench / "pan-right").symlink_to(other / "pan-right")
    with pytest.raises(BenchFormatError, match="outside"):
        load_video(bench, "pan-right")
    errors, _ = check_benchmark(bench)
    assert any("outside" in e for e in errors)


def test_inside_refuses_escapes(tmp_path):
    assert inside(tmp_path, "a", "b") == tmp_path / "a" / "b"
    with pytest.raises(BenchFormatError, match="outside"):
        inside(tmp_path / "out", "..", "x")


def test_run_record_with_hostile_names_is_refused(tmp_path, capsys):
    bench = make_bench(tmp_path / "bench")
    out = tmp_path / "results"
    args = ["eval", "run", str(bench), "--methods", "no-edit", "--lpips", "none", "--out", str(out),
            "--progress", "none"]
    assert main(args) == 0
    record = json.loads((out / "run.json").read_text())
    record["methods"]["no-edit"]["videos"]["../../escape"] = {"status": "done"}
    (out / "run.json").write_text(json.dumps(record))
    capsys.readouterr()
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "run.json" in err and "not a plain folder name" in err
    assert not (tmp_path / "escape").exists()
