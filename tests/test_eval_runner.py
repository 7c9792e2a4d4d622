"""`z2h eval run`: outputs, metrics.csv, run.json, caching, failures recorded, clear errors."""

import json

import numpy as np
import pandas as pd
import pytest
from eval_fixtures import make_bench

from z2h.eval import methods as registry
from z2h.eval.data import list_videos, load_video
from z2h.eval.runner import RunConfig, resolve_methods, run
from z2h.io import read_frames, write_image

CALLS: list[str] = []


class Counting:
    """A method that records its calls; ``offset`` is its setting (changing it must invalidate the cache)."""

    def __init__(self, offset: int = 0, frames_out: int | None = None, fail_on: str | None = None):
        self.name, self.offset, self.frames_out, self.fail_on = "counting", offset, frames_out, fail_on

    def settings(self):
        return {"offset": self.offset, "source": "test method"}

    def __call__(self, frames, anchor, reference, progress=None):
        CALLS.append(f"{self.offset}")
        if self.fail_on is not None and np.array_equal(reference, self.fail_on):
            raise RuntimeError("boom")
        if self.offset < 0:
            raise RuntimeError("boom")
        out = np.clip(frames.astype(int) + self.offset, 0, 255).astype(np.uint8)
        return out[: self.frames_out] if self.frames_out else out


@pytest.fixture
def bench(tmp_path):
    return make_bench(tmp_path / "bench")


@pytest.fixture
def counting(monkeypatch):
    CALLS.clear()
    monkeypatch.setitem(registry.REGISTRY, "counting", f"{__name__}:Counting")
    monkeypatch.setitem(registry.REGISTRY, "broken", f"{__name__}:NoSuchFactory")
    return CALLS


def config(bench, out, methods, **kw):
    return RunConfig(bench=bench, out=out, methods=methods, lpips=None, **kw)


def test_data_loading_and_clear_errors(bench):
    assert list_videos(bench) == ["pan-right", "pan-left"]
    v = load_video(bench, "pan-right")
    assert v.original.shape == (5, 48, 64, 3) and v.masks.dtype == bool
    assert v.flow.forward.shape == (4, 48, 64, 2)
    np.testing.assert_array_equal(v.reference, v.edited[1])
    (bench / "pan-left" / "edited" / "0003.png").unlink()
    with pytest.raises(FileNotFoundError, match="'pan-left': missing edited frame 3"):
        load_video(bench, "pan-left")
    write_image(bench / "pan-right" / "mask" / "0002.png", np.zeros((10, 64), np.uint8))
    with pytest.raises(ValueError, match="'pan-right': mask frame 2 is 64x10"):
        load_video(bench, "pan-right")
    flow = bench / "pan-right" / "flow.npz"
    np.savez(flow, forward=np.zeros((4, 48, 60, 2)), backward=np.zeros((4, 48, 64, 2)))
    write_image(bench / "pan-right" / "mask" / "0002.png", np.zeros((48, 64), np.uint8))
    with pytest.raises(ValueError, match=r"'pan-right': .*flow.npz 'forward' has shape \(4, 48, 60, 2\)"):
        load_video(bench, "pan-right")
    assert load_video(bench, "pan-right", with_flow=False).flow is None
    (bench / "manifest.json").write_text(json.dumps({"format": "other", "version": 1, "videos": []}))
    with pytest.raises(ValueError, match="expected format 'z2h-bench' version 1"):
        list_videos(bench)


def test_run_writes_frames_csv_record_and_scores_the_baselines(bench, tmp_path):
    out = tmp_path / "results"
    record = run(config(bench, out, ["no-edit", "colormap", "flow-dis-chained"]))
    df = pd.read_csv(out / "metrics.csv")
    assert len(df) == 3 * 2 * 5  # methods x videos x frames
    assert set(df.columns) >= {"method", "video", "frame", "anchor", "distance", "displacement_px", "tags",
                               "psnr", "ssim", "psnr_masked", "warp_error", "warp_error_gt", "flow_epe"}
    assert read_frames(out / "flow-dis-chained" / "pan-left").shape == (5, 48, 64, 3)
    targets = df[~df["anchor"]].groupby("method")["psnr_masked"].mean()
    assert targets["flow-dis-chained"] > targets["no-edit"] + 10  # the warp carries the edit
    # metrics are the real ones: no-edit's PSNR equals the formula on the files
    v = load_video(bench, "pan-left")
    row = df[(df["method"] == "no-edit") & (df["video"] == "pan-left") & (df["frame"] == 3)].iloc[0]
    mse = np.mean((v.original[3].astype(float) - v.edited[3]) ** 2)
    assert row["psnr"] == pytest.approx(10 * np.log10(255**2 / mse), abs=1e-6)
    assert row["distance"] == 2 and row["displacement_px"] == pytest.approx(6.0)
    # the ground truth pans exactly: its own warping error is ~0; EPE only for flow baselines
    assert df["warp_error_gt"].max() < 1e-6
    assert df[df["method"] == "flow-dis-chained"]["flow_epe"].max() < 0.5
    assert df[df["method"] == "no-edit"]["flow_epe"].isna().all()
    saved = json.loads((out / "run.json").read_text())
    assert saved == json.loads(json.dumps(record, default=str))
    assert saved["methods"]["flow-dis-chained"]["source"].startswith("OpenCV")
    assert saved["versions"]["numpy"] == np.__version__
    assert saved["methods"]["colormap"]["videos"]["pan-left"]["status"] == "done"


def test_cache_reused_and_invalidated_by_settings(bench, tmp_path, counting):
    out = tmp_path / "results"
    run(config(bench, out, ["counting"]))
    assert counting == ["0", "0"]
    first = (out / "counting" / "pan-right" / "0002.png").stat().st_mtime_ns
    record = run(config(bench, out, ["counting"]))
    assert counting == ["0", "0"]  # nothing recomputed
    assert record["methods"]["counting"]["videos"]["pan-right"]["status"] == "cached"
    assert (out / "counting" / "pan-right" / "0002.png").stat().st_mtime_ns == first
    run(config(bench, out, ["counting"], method_options={"counting": {"offset": 7}}))
    assert counting == ["0", "0", "7", "7"]  # settings changed: recomputed
    df = pd.read_csv(out / "metrics.csv")
    v = load_video(bench, "pan-right")
    np.testing.assert_array_equal(read_frames(out / "counting" / "pan-right"),
                                  np.clip(v.original.astype(int) + 7, 0, 255))
    assert len(df) == 10
    # an interrupted write (a frame missing) is not trusted
    (out / "counting" / "pan-left" / "0004.png").unlink()
    run(config(bench, out, ["counting"], method_options={"counting": {"offset": 7}}))
    assert counting[-1:] == ["7"] and len(counting) == 5


def test_a_failing_method_is_recorded_and_the_others_complete(bench, tmp_path, counting):
    out = tmp_path / "results"
    ref = load_video(bench, "pan-left").reference
    record = run(config(bench, out, ["no-edit", "broken", "counting"],
                        method_options={"counting": {"fail_on": ref}}))
    assert record["methods"]["broken"]["videos"]["pan-right"]["status"] == "error"
    assert "NoSuchFactory" in record["methods"]["broken"]["videos"]["pan-left"]["error"]
    assert record["methods"]["counting"]["videos"]["pan-left"]["error"] == "RuntimeError: boom"
    assert record["methods"]["counting"]["videos"]["pan-right"]["status"] == "done"
    df = pd.read_csv(out / "metrics.csv")
    assert sorted(set(zip(df["method"], df["video"], strict=True))) == [
        ("counting", "pan-right"), ("no-edit", "pan-left"), ("no-edit", "pan-right")]


def test_wrong_number_of_frames_names_method_and_video(bench, tmp_path, counting):
    record = run(config(bench, tmp_path / "r", ["counting"], videos=["pan-left"],
                        method_options={"counting": {"frames_out": 3}}))
    err = record["methods"]["counting"]["videos"]["pan-left"]["error"]
    assert "method 'counting' returned 3 frames for video 'pan-left', expected 5" in err
    assert "pan-right" not in record["methods"]["counting"]["videos"]


def test_method_groups_and_bad_output_folder(bench, tmp_path):
    base = resolve_methods("baselines")
    assert {"no-edit", "colormap", "colormap-lut", "flow-dis-chained-fb", "flow-tvl1-direct"} <= set(base)
    assert not any(m.startswith(("flow-raft", "ebsynth")) for m in base)
    assert any(m.startswith("flow-raft") for m in resolve_methods("baselines", include_raft=True))
    peers = resolve_methods("default", include_ebsynth=True)
    assert {"ebsynth", "ebsynth-temporal"} <= set(peers) and "ebsynth-edge" not in peers
    assert resolve_methods("default")[-2:] == ["z2h-zero", "z2h"]
    with pytest.raises(ValueError, match="unknown method 'nope'"):
        resolve_methods("no-edit,nope")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "thesis.tex").write_text("x")
    with pytest.raises(FileExistsError, match="holds no run.json"):
        run(config(bench, tmp_path / "busy", ["no-edit"]))
    with pytest.raises(ValueError, match="videos not in"):
        run(config(bench, tmp_path / "r", ["no-edit"], videos=["nope"]))
    run(config(bench, tmp_path / "r", ["no-edit"], videos=["pan-left"]))
    other = make_bench(tmp_path / "other")
    with pytest.raises(ValueError, match="holds results of .*bench, not .*other"):
        run(config(other, tmp_path / "r", ["no-edit"]))


@pytest.mark.slow
def test_every_flow_baseline_and_lpips_end_to_end(bench, tmp_path):
    out = tmp_path / "results"
    run(RunConfig(bench=bench, out=out, methods=resolve_methods("baselines"), jobs=2, lpips="alex"))
    df = pd.read_csv(out / "metrics.csv")
    assert df["lpips"].notna().all() and set(df["method"]) == set(resolve_methods("baselines"))
