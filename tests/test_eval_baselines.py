"""Baselines: flow warps reproduce a known translation, colour mapping a global recolour."""

import numpy as np
import pytest
from eval_fixtures import pan_video, texture

from z2h.eval.baselines.colormap import ColorMap
from z2h.eval.baselines.flow import RAFT, FlowWarp, compose, fb_consistent
from z2h.eval.baselines.simple import NoEdit
from z2h.eval.data import Flow
from z2h.eval.methods import get_method
from z2h.eval.temporal import flow_epe, warp_error


def psnr(a, b):
    return 10 * np.log10(255**2 / np.mean((a.astype(float) - b) ** 2))


def valid_region(t, anchor, step, size, margin=3):
    """Pixels of frame t whose content is inside the anchor frame (plus a margin)."""
    (dx, dy), (h, w), s = step, size, t - anchor
    return (slice(max(0, -dy * s) + margin, h - max(0, dy * s) - margin),
            slice(max(0, -dx * s) + margin, w - max(0, dx * s) - margin))


@pytest.mark.parametrize("estimator", ["dis", "farneback", "tvl1"])
@pytest.mark.parametrize("mode", ["direct", "chained"])
@pytest.mark.parametrize("occlusion", ["none", "fb"])
def test_flow_warp_reproduces_a_translation(estimator, mode, occlusion):
    step, size, anchor = (2, 1), (48, 64), 1
    v = pan_video(5, size, step)
    method = FlowWarp(estimator=estimator, mode=mode, occlusion=occlusion)
    out = method(v["original"], anchor, v["edited"][anchor])
    assert out.shape == v["original"].shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out[anchor], v["edited"][anchor])
    for t in range(5):
        if t != anchor:
            region = valid_region(t, anchor, step, size)
            assert psnr(out[t][region], v["edited"][t][region]) > 35, (method.name, t)
    # the edit is visible: far from the unedited original inside the object
    assert psnr(out[3][v["masks"][3]], v["original"][3][v["masks"][3]]) < 25


def test_fb_fills_out_of_frame_pixels_from_the_original():
    step, anchor = (3, 0), 0
    v = pan_video(3, (48, 64), step)
    out = FlowWarp(estimator="dis", mode="direct", occlusion="fb")(v["original"], anchor, v["edited"][anchor])
    # the right 6 columns of frame 2 were never seen in the anchor: filled from the original frame
    np.testing.assert_array_equal(out[2][:, -5:], v["original"][2][:, -5:])


def test_flow_composition_and_fb_check_on_exact_fields():
    h, w = 20, 30
    a = np.full((h, w, 2), [2.0, 1.0], np.float32)
    b = np.full((h, w, 2), [-1.0, 3.0], np.float32)
    np.testing.assert_allclose(compose(a, b)[5:-5, 5:-5], np.full((10, 20, 2), [1.0, 4.0]), atol=1e-5)
    ok = fb_consistent(a, -a)
    assert ok[5:-5, 5:-5].all() and not ok[:, -2:].any()  # last columns map outside the frame
    assert not fb_consistent(a, a)[5:-5, 5:-5].any()


def test_settings_name_the_source_and_differ_per_variant():
    names = ["flow-dis-direct", "flow-dis-chained-fb", "flow-farneback-chained", "flow-tvl1-direct-fb"]
    methods = [get_method(n) for n in names]
    assert [m.name for m in methods] == names
    assert "DISOpticalFlow preset MEDIUM" in methods[0].settings()["source"]
    assert "forward-backward" in methods[1].settings()["source"]
    assert "optical_flow_tvl1" in methods[3].settings()["source"]
    assert len({str(m.settings()) for m in methods}) == 4


def test_raft_without_fetched_weights_names_the_command(tmp_path, monkeypatch):
    monkeypatch.setenv("Z2H_CACHE", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="z2h weights fetch"):
        get_method("flow-raft-chained")
    with pytest.raises(ValueError, match="unknown RAFT weights 'chairs'"):
        from z2h.raft_weights import raft_weights_path

        raft_weights_path("chairs")


def test_raft_runs_with_random_local_weights(tmp_path):
    import torch
    from torchvision.models.optical_flow import raft_small

    torch.manual_seed(0)
    torch.save(raft_small(weights=None).state_dict(), tmp_path / "raft_small.pth")
    est = RAFT(tmp_path / "raft_small.pth", iters=2)
    flow = est(texture(36, 44, 0), texture(36, 44, 1))  # not a multiple of 8: padded inside
    assert flow.shape == (36, 44, 2) and flow.dtype == np.float32 and np.isfinite(flow).all()
    assert est.size == "small"  # read from the file's keys
    weights = str(tmp_path / "raft_small.pth")
    method = get_method("flow-raft-direct-fb", raft_weights=weights, raft_iters=2)
    assert method.settings()["raft_sha256"] == est.sha256 and "raft_small" in method.settings()["source"]
    state = torch.load(tmp_path / "raft_small.pth")
    state.pop(next(iter(state)))
    torch.save(state, tmp_path / "broken.pth")
    with pytest.raises(ValueError, match="broken.pth is not a raft_small state dict"):
        RAFT(tmp_path / "broken.pth").model()
    with pytest.raises(FileNotFoundError, match="RAFT weights file not found"):
        RAFT(tmp_path / "missing.pth")


def test_colormap_reproduces_a_global_recolour():
    frames = pan_video(4, (48, 64), (2, 1))["original"]
    # a global, non-linear colour change (channel swap + squaring), learned from the anchor pair alone
    recoloured = (255 * (frames[..., [2, 0, 1]] / 255.0) ** 2).astype(np.uint8)
    assert psnr(frames[1], recoloured[1]) < 12
    out = ColorMap()(frames, 0, recoloured[0])
    for t in range(4):
        assert psnr(out[t], recoloured[t]) > 40
    # without the affine stage the table alone still holds where the anchor showed the colours
    assert psnr(ColorMap(affine=False)(frames, 0, recoloured[0])[0], recoloured[0]) > 35


def test_colormap_lut_leaves_unseen_colours_unchanged():
    frames = np.zeros((2, 16, 16, 3), np.uint8)
    frames[:, :8] = [200, 30, 30]  # red object
    frames[1, 8:] = [30, 30, 200]  # a blue region seen only in frame 1
    reference = frames[0].copy()
    reference[:8] = [30, 200, 30]  # red -> green
    method = get_method("colormap-lut")
    assert method.name == "colormap-lut" and "affine" not in method.settings()["source"]
    out = method(frames, 0, reference)
    assert np.abs(out[1, :8].astype(int) - [30, 200, 30]).max() <= 2
    assert np.abs(out[1, 8:].astype(int) - [30, 30, 200]).max() <= 2


def test_no_edit_returns_the_original():
    frames = pan_video(3)["original"]
    out = NoEdit()(frames, 0, frames[0] // 2)
    np.testing.assert_array_equal(out, frames)
    assert out is not frames


def test_temporal_metrics_on_a_known_pan():
    v = pan_video(4, (48, 64), (2, 1))
    flow = Flow(v["forward"], v["backward"])
    err = warp_error(v["edited"], flow)
    assert err.shape == (3,) and (err < 1e-6).all()  # integer pan: exact along the true motion
    noisy = v["edited"].copy()
    noisy[2] = 255 - noisy[2]
    assert warp_error(noisy, flow)[1] > 0.05
    epe = flow_epe(FlowWarp(estimator="dis").estimator, v["original"], flow)
    assert (epe < 0.3).all()
    wrong = flow_epe(lambda a, b: np.zeros((48, 64, 2), np.float32), v["original"], flow)
    np.testing.assert_allclose(wrong, np.hypot(2, 1), rtol=1e-3)
