"""``z2h experiment k-sweep`` on a tiny synthetic benchmark: files, table, and the blur/leakage trend."""

import argparse
import json

import numpy as np
import pandas as pd
import pytest
from conftest import write_random_vgg_cache
from skimage import data

from z2h.experiments import k_sweep
from z2h.experiments.k_sweep import parse_ks


def main(argv):
    """``z2h experiment k-sweep ARGS`` without the other experiments' modules."""
    parser = argparse.ArgumentParser()
    k_sweep.add_arguments(parser)
    return k_sweep.run(parser.parse_args(argv))


@pytest.fixture
def weights(tmp_path, monkeypatch):
    monkeypatch.setenv("Z2H_CACHE", str(tmp_path / "cache"))
    return write_random_vgg_cache(tmp_path / "cache")


def make_bench(root, frames=4, anchor=1, size=64, step=(6, 4)):
    """Benchmark format v1: a photo panning by ``step`` (dx, dy) px/frame; the edit is a gain on a disk."""
    from z2h.io import write_frames, write_image

    canvas = data.astronaut()[100:100 + size + 40, 150:150 + size + 40]
    yy, xx = np.mgrid[: canvas.shape[0], : canvas.shape[1]]
    disk = (yy - canvas.shape[0] / 2) ** 2 + (xx - canvas.shape[1] / 2) ** 2 < (size / 4) ** 2
    edited = canvas.copy()
    edited[disk] = (canvas[disk] * [0.3, 0.6, 1.0] + [0, 0, 60]).clip(0, 255).astype(np.uint8)
    names = []
    for name, sign in (("pan-a", 1), ("pan-b", -1)):
        crops = [(20 + sign * step[1] * (t - anchor), 20 + sign * step[0] * (t - anchor))
                 for t in range(frames)]
        for kind, img in (("original", canvas), ("edited", edited), ("mask", disk.astype(np.uint8) * 255)):
            write_frames(root / name / kind, np.stack([img[y:y + size, x:x + size] for y, x in crops]))
        meta = {"name": name, "frames": frames, "anchor": anchor, "resolution": [size, size],
                "edit": {"object": "disk", "kind": "color"},
                "per_frame": [{"frame": t} for t in range(frames)]}
        (root / name / "meta.json").write_text(json.dumps(meta))
        names.append(name)
    write_image(root / "unused.png", canvas)  # a stray file must not disturb listing the videos
    manifest = {"format": "z2h-bench", "version": 1, "created": "2026-11-25T00:00:00", "seed": 0,
                "settings": {"resolution": [size, size]},
                "videos": [{"name": n, "frames": frames, "anchor": anchor} for n in names]}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def test_parse_ks():
    assert parse_ks("1, 4,all,16") == [1, 4, "all", 16]
    for bad in ("0", "x", ",", "-3"):
        with pytest.raises(ValueError, match="--ks"):
            parse_ks(bad)


def test_k_sweep_end_to_end(weights, tmp_path, capsys):
    bench = make_bench(tmp_path / "bench")
    out = tmp_path / "sweep"
    argv = [str(bench), "--ks", "1,8,all", "--out", str(out),
            "--work-size", "64", "--lpips", "none", "--progress", "none"]
    assert main(argv) == 0, capsys.readouterr().err
    rows = pd.read_csv(out / "k_sweep.csv")
    # 64x64 frames at work size 64 -> a 16x16 token grid: 'all' is k = 256.
    assert sorted(rows["k"].unique()) == [1, 8, 256]
    assert sorted(rows["video"].unique()) == ["pan-a", "pan-b"]
    assert rows[["psnr_masked", "ssim_masked", "psnr"]].notna().all().all()
    assert rows["lpips_masked"].isna().all()  # --lpips none
    mean = rows.groupby("k")["psnr_masked"].mean()
    # Every token attending to the whole anchor washes the edit out (leakage): clearly worse than k=1.
    assert mean[1] > mean[256] + 3, mean.to_dict()
    md = (out / "k_sweep.md").read_text()
    assert "| k | psnr_masked" in md and "\n| 256 |" in md
    for name in ("k_sweep.png", "k_grid_pan-a.png", "k_grid_pan-b.png"):
        assert (out / name).stat().st_size > 1000
    assert json.loads((out / "run.json").read_text())["ks"] == ["1", "8", "all"]
    assert main(argv) == 1  # refuses to overwrite
    assert "not empty" in capsys.readouterr().err


def test_unknown_video_fails_before_any_work(weights, tmp_path, capsys):
    bench = make_bench(tmp_path / "bench")
    out = tmp_path / "sweep"
    argv = [str(bench), "--videos", "pan-a,nope", "--out", str(out), "--work-size", "64",
            "--lpips", "none", "--progress", "none"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "videos not in" in err and "nope" in err
    assert not out.exists()  # pan-a was not swept first
