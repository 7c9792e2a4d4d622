"""EbSynth: where the binary comes from, and the real tool on a tiny video (CI builds it: `make ebsynth`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from eval_fixtures import pan_video

from z2h.eval.baselines import ebsynth
from z2h.eval.methods import get_method

needs_ebsynth = pytest.mark.skipif(ebsynth.find_binary() is None,
                                   reason="no ebsynth binary: run `make ebsynth` or set Z2H_EBSYNTH")


def fake_binary(folder: Path, name: str = "ebsynth") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


def test_binary_lookup_order_and_clear_errors(tmp_path, monkeypatch):
    monkeypatch.setattr(ebsynth, "BUILT", tmp_path / "nowhere" / "ebsynth")
    monkeypatch.delenv("Z2H_EBSYNTH", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert ebsynth.find_binary() is None
    with pytest.raises(FileNotFoundError, match=r"ebsynth binary not found.*make ebsynth.*g\+\+"):
        ebsynth.require_binary()
    with pytest.raises(FileNotFoundError, match="ebsynth binary not found"):
        get_method("ebsynth")

    on_path = fake_binary(tmp_path / "bin")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    assert ebsynth.find_binary() == on_path
    env = fake_binary(tmp_path / "env", "my-ebsynth")
    monkeypatch.setenv("Z2H_EBSYNTH", str(env))
    assert ebsynth.find_binary() == env  # $Z2H_EBSYNTH before PATH
    explicit = fake_binary(tmp_path / "explicit")
    assert ebsynth.find_binary(explicit) == explicit  # --ebsynth-bin before both

    not_executable = tmp_path / "plain.txt"
    not_executable.write_text("x")
    with pytest.raises(FileNotFoundError, match=r"--ebsynth-bin .*plain\.txt: not an executable file"):
        ebsynth.find_binary(not_executable)
    monkeypatch.setenv("Z2H_EBSYNTH", str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="Z2H_EBSYNTH .*missing: not an executable file"):
        ebsynth.find_binary()


def test_a_failing_tool_is_a_clear_error(tmp_path):
    broken = tmp_path / "ebsynth"
    broken.write_text("#!/bin/sh\necho 'error: cannot load style' >&2\nexit 3\n")
    broken.chmod(0o755)
    v = pan_video(3, (24, 32), (1, 0))
    method = get_method("ebsynth", ebsynth_bin=str(broken))
    with pytest.raises(RuntimeError, match="exited 3: error: cannot load style"):
        method(v["original"], 1, v["edited"][1])


def test_edge_guide_is_grey_around_mid_level():
    flat = np.full((16, 16, 3), 90, np.uint8)
    assert (ebsynth.edge_guide(flat) == 128).all()
    step = flat.copy()
    step[:, 8:] = 200
    edges = ebsynth.edge_guide(step)
    assert edges[:, 7].mean() < 128 < edges[:, 8].mean()


@needs_ebsynth
@pytest.mark.parametrize("name", ["ebsynth", "ebsynth-edge", "ebsynth-temporal", "ebsynth-chained"])
def test_real_ebsynth_carries_the_edit_along_a_pan(name):
    v = pan_video(3, (40, 48), (2, 0))
    anchor = 1
    method = get_method(name)
    assert method.name == name and "ebsynth_sha256" in method.settings()
    out = method(v["original"], anchor, v["edited"][anchor])
    assert out.shape == v["original"].shape and out.dtype == np.uint8
    assert np.array_equal(out[anchor], v["edited"][anchor])
    for t in (0, 2):  # the recoloured disk must come out closer to the edit than to the original
        m = v["masks"][t]
        err_edit = np.abs(out[t][m].astype(float) - v["edited"][t][m]).mean()
        err_orig = np.abs(out[t][m].astype(float) - v["original"][t][m]).mean()
        assert err_edit < 0.6 * err_orig, f"{name} frame {t}: {err_edit:.1f} vs {err_orig:.1f}"


def test_groups_leave_out_peers_that_cannot_run_and_say_why(tmp_path, monkeypatch):
    from z2h.eval.runner import peers_available, resolve_methods

    monkeypatch.setenv("Z2H_CACHE", str(tmp_path / "cache"))  # no RAFT weights there
    monkeypatch.setattr(ebsynth, "BUILT", tmp_path / "nowhere")
    monkeypatch.delenv("Z2H_EBSYNTH", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    why = peers_available()
    assert "run `z2h weights fetch`" in why["raft"] and "make ebsynth" in why["ebsynth"]
    methods = resolve_methods("default", include_raft=why["raft"] is None,
                              include_ebsynth=why["ebsynth"] is None)
    assert not any(m.startswith(("flow-raft", "ebsynth")) for m in methods)
    monkeypatch.setenv("Z2H_EBSYNTH", str(fake_binary(tmp_path / "bin")))
    assert peers_available()["ebsynth"] is None
