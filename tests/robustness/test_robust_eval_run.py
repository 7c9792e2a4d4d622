"""`z2h eval run`: one writer per --out, corrupt records refused, failures exit non-zero, no stray --out."""

import json
import re

import numpy as np
import pytest
from eval_fixtures import make_bench

from z2h.cli import main
from z2h.eval import methods as registry
from z2h.outlock import locked


class Failing:
    name = "failing"

    def settings(self):
        return {"source": "test"}

    def __call__(self, frames, anchor, reference, progress=None):
        raise RuntimeError("deliberate failure")


@pytest.fixture
def bench(tmp_path):
    return make_bench(tmp_path / "bench")


def _args(bench, out, methods="no-edit"):
    return ["eval", "run", str(bench), "--methods", methods, "--lpips", "none", "--out", str(out),
            "--progress", "none"]


def test_second_run_on_one_out_fails_fast_and_names_the_holder(bench, tmp_path, capsys):
    out = tmp_path / "results"
    out.mkdir()
    with locked(out, command="z2h eval run (the first one)"):
        assert main(_args(bench, out)) == 1
        err = capsys.readouterr().err
        assert re.search(r"in use by process \d+ on .*the first one", err), err
        assert not (out / "run.json").exists()
    assert main(_args(bench, out)) == 0  # released with the holder
    assert main(_args(bench, out)) == 0  # the lock file does not make --out "foreign"


@pytest.mark.parametrize("content", [b"{\"methods\": {", b"\xff\xfe garbage", b"[1, 2]",
                                     b"{\"format\": \"z2h-eval-run\", \"bench\": 3, \"methods\": {}}"])
def test_corrupt_run_json_is_refused_not_replaced(bench, tmp_path, capsys, content):
    out = tmp_path / "results"
    assert main(_args(bench, out)) == 0
    (out / "run.json").write_bytes(content)
    capsys.readouterr()
    assert main(_args(bench, out, "no-edit,colormap")) == 1
    err = capsys.readouterr().err
    assert f"{out / 'run.json'}:" in err
    assert (out / "run.json").read_bytes() == content  # untouched
    assert not (out / "colormap").exists()


def test_failed_method_exits_non_zero_and_says_which(bench, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(registry.REGISTRY, "failing", f"{__name__}:Failing")
    out = tmp_path / "results"
    assert main(_args(bench, out, "failing")) == 1
    err = capsys.readouterr().err
    assert "FAILED failing on pan-left: RuntimeError: deliberate failure" in err
    assert main(_args(bench, out, "no-edit,failing")) == 1
    assert (out / "no-edit" / "pan-left" / "0000.png").exists()  # the others still complete


def test_unknown_video_leaves_no_out_behind(bench, tmp_path, capsys):
    out = tmp_path / "results"
    assert main([*_args(bench, out), "--videos", "pan-rihgt"]) == 1
    assert "pan-rihgt" in capsys.readouterr().err
    assert not out.exists()


def test_out_inside_the_benchmark_is_refused(bench, capsys):
    assert main(_args(bench, bench / "results")) == 1
    assert "overlap" in capsys.readouterr().err
    assert not (bench / "results").exists()


def test_written_files_get_the_umask_mode(bench, tmp_path):
    import os

    old = os.umask(0o022)
    try:
        assert main(_args(bench, tmp_path / "results")) == 0
    finally:
        os.umask(old)
    out = tmp_path / "results"
    for path in [out / "run.json", out / "no-edit" / "pan-left" / "0000.png"]:
        assert oct(path.stat().st_mode & 0o777) == oct(0o644), path
    assert np.isfinite(json.loads((tmp_path / "results" / "run.json").read_text())["methods"]["no-edit"]
                       ["videos"]["pan-left"]["seconds"])


def test_a_run_in_another_process_holds_the_folder(bench, tmp_path, capsys):
    """The issue's case: two processes on one --out. The second stops at once and names the first."""
    import subprocess
    import sys

    out = tmp_path / "results"
    out.mkdir()
    code = ("import sys, time; from z2h.outlock import locked\n"
            "with locked(sys.argv[1], command='z2h eval run (first)'):\n"
            "    print('held', flush=True); time.sleep(60)")
    first = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert first.stdout.readline().strip() == "held"
        assert main(_args(bench, out)) == 1
        assert f"in use by process {first.pid} on" in capsys.readouterr().err
    finally:
        first.kill()
        first.wait()
    assert main(_args(bench, out)) == 0  # a killed holder leaves no stale lock
