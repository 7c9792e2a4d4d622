"""The end-to-end pipeline (Zero-Stage -> Hero-Stage) and the eval method ``z2h``.

VGG16 weights are random (seeded) and saved into a private Z2H_CACHE by the fixture, so the real
loading path runs without `z2h weights fetch` (the Zero-Stage's colour term still matches).
"""

import numpy as np
import pytest
from eval_fixtures import pan_video

from z2h.eval.methods import check_output, get_method
from z2h.pipeline import EditConfig, edit
from z2h.progress import Cancelled, Reporter

FAST = dict(work_size=64, hero_steps=40, pseudo_pairs=2, time_budget_s=None, threads=1, crop=32)


pytestmark = pytest.mark.usefixtures("random_vgg_cache")


def masked_psnr(pred, gt, masks, skip):
    frames = [t for t in range(len(gt)) if t != skip]
    err = [((pred[t].astype(float) - gt[t].astype(float)) ** 2).mean(-1)[masks[t]].mean() for t in frames]
    return float(np.mean([10 * np.log10(255**2 / e) for e in err]))


def test_options_split_between_the_stages():
    cfg = EditConfig.from_options(engine="offline", seed=4, k=3, mode=1, hero_steps=7, zero_steps=11,
                                  work_size=64, pseudo_pairs=0, keep_reference=False)
    assert (cfg.zero.k, cfg.zero.work_size, cfg.zero.steps, cfg.zero.seed) == (3, 64, 11, 4)
    assert (cfg.hero.mode, cfg.hero.steps, cfg.hero.pseudo_pairs, cfg.hero.seed) == (1, 7, 0, 4)
    assert not cfg.keep_reference
    s = cfg.settings()
    assert s["engine"] == "offline" and s["hero"]["mode"] == 1 and "lora_rank" not in s["hero"]
    cfg = EditConfig.from_options(engine="diffusion", zero_model="/sd", hero_model="/flux")
    assert (cfg.zero.zero_model, cfg.hero.hero_model, cfg.engine) == ("/sd", "/flux", "diffusion")
    with pytest.raises(ValueError, match="unknown z2h option 'colours'"):
        EditConfig.from_options(colours=1)


def test_z2h_method_end_to_end_on_a_tiny_video():
    v = pan_video(frames=5, size=(48, 48), step=(2, 1))
    method = get_method("z2h", **FAST)
    assert method.name == "z2h" and method.settings()["engine"] == "offline"
    seen = []
    out = method(v["original"], 1, v["edited"][1], progress=lambda d, t: seen.append((d, t)))
    out = check_output("z2h", v["original"], out)
    np.testing.assert_array_equal(out[1], v["edited"][1])  # the anchor's output is the reference itself
    assert seen and all(d <= t for d, t in seen)
    before = masked_psnr(v["original"], v["edited"], v["masks"], 1)
    assert masked_psnr(out, v["edited"], v["masks"], 1) > before


def test_edit_reports_stages_and_hands_over_zero_frames_first():
    v = pan_video(frames=4, size=(48, 48), step=(1, 1))
    rep, got = Reporter("none"), {}
    stages = []
    real_stage = rep.stage
    rep.stage = lambda name, message="": stages.append(name) or real_stage(name, message)
    res = edit(v["original"], 0, v["edited"][0], EditConfig.from_options(**FAST), rep,
               on_zero=lambda z: got.setdefault("zero", z.copy()))
    np.testing.assert_array_equal(got["zero"], res.zero_frames)
    assert stages == ["zero", "hero-train", "hero-pairs", "hero"]
    assert set(res.timings) == {"zero", "hero_train", "hero"} and res.train["steps"] == 40
    assert res.frames.shape == v["original"].shape and res.frames.dtype == np.uint8


def test_cancel_stops_the_pipeline():
    v = pan_video(frames=4, size=(48, 48), step=(1, 1))
    rep = Reporter("none")
    with pytest.raises(Cancelled, match="cancelled during hero"):  # the first step after the zero stage
        edit(v["original"], 0, v["edited"][0], EditConfig.from_options(**FAST), rep,
             on_zero=lambda z: rep.cancel())


def test_bad_inputs_name_the_problem():
    v = pan_video(frames=3, size=(48, 48))
    cfg = EditConfig.from_options(**FAST)
    with pytest.raises(ValueError, match="anchor frame 5 is out of range"):
        edit(v["original"], 5, v["edited"][0], cfg)
    with pytest.raises(ValueError, match="reference image is 40x48"):
        edit(v["original"], 0, v["edited"][0][:, :40], cfg)


class DegradingZeroStage:
    """A stand-in Zero-Stage whose output is the right edit, degraded: 4x4 blocks (coarse matching) and a
    colour cast. Only a working Hero-Stage, trained on the anchor, can undo it on the other frames."""

    def __init__(self, config=None):
        self.config = config

    def __call__(self, frames, anchor, reference, progress=None):
        edit = frames[..., [2, 0, 1]].astype(float)  # the true edit of `recolour_video`
        t, h, w, _ = edit.shape
        blocks = edit.reshape(t, h // 4, 4, w // 4, 4, 3).mean(axis=(2, 4))
        blocky = np.repeat(np.repeat(blocks, 4, axis=1), 4, axis=2)
        return np.clip(blocky * 0.8 + 30, 0, 255).astype(np.uint8)


def recolour_video(frames=5, size=48, seed=3):
    """A pan over a texture whose every pixel is recoloured (masks: the whole frame)."""
    v = pan_video(frames=frames, size=(size, size), step=(3, 2), seed=seed)
    return v["original"], v["original"][..., [2, 0, 1]], np.ones(v["masks"].shape, bool)


def test_the_hero_stage_output_is_the_result_and_beats_the_zero_stage(monkeypatch):
    """Kills "Hero-Stage output thrown away" (out = zero.copy()): the edit beats its Zero-Stage clearly."""
    import z2h.zero_stage

    monkeypatch.setattr(z2h.zero_stage, "ZeroStage", DegradingZeroStage)
    orig, edited, masks = recolour_video()
    cfg = EditConfig.from_options(**{**FAST, "hero_steps": 150, "pseudo_pairs": 2})
    if hasattr(cfg, "fusion"):  # steps after the Hero-Stage (z2h v2) would hide what it did: all off here
        from dataclasses import fields, replace

        cfg.fusion = replace(cfg.fusion, **{f.name: False for f in fields(cfg.fusion)
                                            if isinstance(getattr(cfg.fusion, f.name), bool)})
    res = edit(orig, 1, edited[1], cfg)
    zero, full = masked_psnr(res.zero_frames, edited, masks, 1), masked_psnr(res.frames, edited, masks, 1)
    assert full > zero + 4, (zero, full)
    assert res.train["steps"] == 150 and not res.train["budget_hit"] and res.train["pairs"] == 3


def test_training_statistics_reach_the_eval_record_and_the_cache(tmp_path):
    """The eval run.json holds each video's training statistics, also when the result is cached."""
    from eval_fixtures import make_bench

    from z2h.eval.runner import RunConfig, run

    bench = make_bench(tmp_path / "bench", videos={"pan": {"step": (2, 1), "seed": 0}}, frames=3,
                       size=(48, 48))
    config = RunConfig(bench=bench, out=tmp_path / "r", methods=["z2h"], lpips=None,
                       method_options={"z2h": {**FAST, "hero_steps": 5}})
    for status in ("done", "cached"):
        entry = run(config)["methods"]["z2h"]["videos"]["pan"]
        assert entry["status"] == status
        train = entry["stats"]["train"]
        assert (train["steps"], train["steps_planned"], train["budget_hit"]) == (5, 5, False)
        assert (train["mode"], train["pseudo_pairs"], train["pairs"]) == (2, 2, 3)
        assert "loss_last" in train and entry["seconds_per_frame"] > 0


@pytest.mark.slow
def test_hero_stage_beats_the_zero_stage_and_pseudo_pairs_help():
    """The Hero-Stage must earn its place: masked PSNR above the Zero-Stage's, more with pseudo pairs."""
    v = pan_video(frames=6, size=(64, 64), step=(4, 2), seed=2)
    scores = {}
    for name, pairs in (("plain", 0), ("pseudo", 6)):
        cfg = EditConfig.from_options(**{**FAST, "work_size": 64, "hero_steps": 400, "pseudo_pairs": pairs})
        res = edit(v["original"], 0, v["edited"][0], cfg)
        scores["zero"] = masked_psnr(res.zero_frames, v["edited"], v["masks"], 0)
        scores[name] = masked_psnr(res.frames, v["edited"], v["masks"], 0)
    assert scores["pseudo"] > scores["zero"] + 1, scores
    assert scores["pseudo"] > scores["plain"], scores
