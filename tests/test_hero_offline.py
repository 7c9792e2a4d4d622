"""Offline Hero-Stage: the restorer learns a degradation, Mode 1 ignores condition 2, exact pseudo pairs."""

import numpy as np
import pytest
import torch
from eval_fixtures import texture

from z2h.hero_stage import HeroConfig, HeroStage
from z2h.hero_stage.offline import OfflineHeroStage
from z2h.hero_stage.pseudo_pairs import random_affine, warp, warped_pairs
from z2h.models.restorer import Restorer, RestorerConfig


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0**2 / np.mean((a.astype(float) - b.astype(float)) ** 2)))


def degraded_pair(seed: int, size: int = 40):
    """(condition 1, condition 2, target): target = a recolour of the original; condition 1 = the target
    with a systematic degradation (blocky 4x4 averaging, i.e. low-res matching, plus a colour cast)."""
    orig = texture(size, size, seed)
    target = orig[..., [2, 0, 1]]
    low = target.reshape(size // 4, 4, size // 4, 4, 3).mean(axis=(1, 3))
    blocky = np.repeat(np.repeat(low, 4, axis=0), 4, axis=1)
    cond1 = np.clip(blocky * 0.85 + 20, 0, 255).astype(np.uint8)
    return cond1, orig, target


def small_config(**kw) -> HeroConfig:
    base = dict(steps=150, time_budget_s=None, threads=1, crop=32, batch=4, width=12, blocks=1,
                pseudo_pairs=0)
    return HeroConfig(**{**base, **kw})


def test_restorer_learns_and_restores_a_degradation():
    train = [degraded_pair(s) for s in (0, 1)]
    stage = OfflineHeroStage(small_config())
    stats = stage.fit_triplets(*(np.stack(x) for x in zip(*train, strict=True)))
    assert stats["steps"] == 150 and not stats["budget_hit"]
    assert stats["loss_last"] < 0.3 * stats["loss_first"]
    cond1, orig, target = degraded_pair(7)  # a texture the restorer never saw
    out = stage.restore(cond1[None], orig[None])[0]
    assert out.dtype == np.uint8 and out.shape == target.shape
    assert psnr(out, target) > psnr(cond1, target) + 5


def test_mode_1_ignores_condition_2_and_mode_2_uses_it():
    torch.manual_seed(0)
    x, c2a, c2b = torch.rand(3, 1, 3, 16, 16)
    mode1 = Restorer(RestorerConfig(conditions=1, width=8))
    assert len(mode1.branches) == 1
    mode2 = Restorer(RestorerConfig(conditions=2, width=8))
    for m in (mode1, mode2):
        torch.nn.init.normal_(m.head.weight, std=0.1)  # the head starts at zero (identity); wake it up
    with torch.no_grad():
        assert torch.equal(mode1(x, c2a), mode1(x, c2b))
        assert torch.equal(mode1(x, c2a), mode1(x))
        assert (mode2(x, c2a) - mode2(x, c2b)).abs().max() > 1e-3
    # the same through the trained stage: changing the original frames leaves Mode 1's output untouched
    cond1, orig, target = degraded_pair(0)
    stage = OfflineHeroStage(small_config(mode=1, steps=20))
    stage.fit_triplets(cond1[None], orig[None], target[None])
    other = 255 - orig
    np.testing.assert_array_equal(stage.restore(cond1[None], orig[None]),
                                  stage.restore(cond1[None], other[None]))


def test_pseudo_pairs_are_geometrically_consistent():
    orig = texture(48, 64, seed=3)
    ref = 255 - orig  # a per-pixel edit: warping commutes with it, so warped ref must be 255 - warped orig
    origs, refs, mats = warped_pairs(orig, ref, 4, seed=5)
    assert origs.shape == refs.shape == (4, 48, 64, 3) and mats.shape == (4, 2, 3)
    for o, r, m in zip(origs, refs, mats, strict=True):
        np.testing.assert_array_equal(r, warp(ref, m))  # the target is exactly the reference's warp
        assert np.abs(r.astype(int) - (255 - o.astype(int))).max() <= 1  # bilinear rounding only
        assert not np.array_equal(o, orig)
    # the matrix maps a source pixel to where it lands: a single bright dot moves to M @ (x, y, 1)
    dot = np.zeros((48, 64, 3), np.uint8)
    dot[20, 30] = 255
    m = random_affine(np.random.default_rng(0), 48, 64)
    m[:2, :2] = np.eye(2)  # pure translation keeps the dot a single pixel
    m[:, 2] = [5, -3]
    y, x = np.unravel_index(warp(dot, m)[..., 0].argmax(), (48, 64))
    assert (x, y) == (35, 17)
    # deterministic in the seed
    np.testing.assert_array_equal(warped_pairs(orig, ref, 2, seed=5)[2], mats[:2])
    assert not np.allclose(warped_pairs(orig, ref, 2, seed=6)[2], mats[:2])


def test_pseudo_pairs_run_through_the_zero_stage_against_the_real_anchor():
    calls = []

    def fake_zero(frames, anchor, reference, progress=None):
        calls.append((frames.shape, anchor))
        return frames // 2

    cond1, orig, target = degraded_pair(0)
    stage = OfflineHeroStage(small_config(pseudo_pairs=3))
    c1, c2, tgt = stage.training_triplets(cond1, orig, target, fake_zero)
    assert calls == [((4, 40, 40, 3), 0)]  # one call: the real anchor at index 0 + three warped copies
    np.testing.assert_array_equal(c1[0], cond1)  # the paper's triplet stays first
    np.testing.assert_array_equal(tgt[0], target)
    np.testing.assert_array_equal(c1[1:], c2[1:] // 2)  # condition 1 of a pair = zero(warped original)
    assert len(c1) == len(c2) == len(tgt) == 4


def test_training_is_deterministic_with_a_seed_and_saves(tmp_path):
    cond1, orig, target = degraded_pair(0)
    outs = []
    for _ in range(2):
        stage = OfflineHeroStage(small_config(steps=15, seed=3))
        stage.fit_triplets(cond1[None], orig[None], target[None])
        outs.append(stage.restore(cond1[None], orig[None]))
    np.testing.assert_array_equal(outs[0], outs[1])
    stage.model.save(str(tmp_path / "r.pt"))
    again = Restorer.load(str(tmp_path / "r.pt"))
    x = torch.rand(1, 3, 16, 16)
    assert torch.equal(again(x, x), stage.model(x, x))


def test_time_budget_stops_training_early():
    cond1, orig, target = degraded_pair(0)
    stats = OfflineHeroStage(small_config(steps=100000, time_budget_s=0.5)).fit_triplets(
        cond1[None], orig[None], target[None])
    assert stats["budget_hit"] and stats["steps"] < 100000


def test_bad_settings_and_inputs_give_clear_errors():
    with pytest.raises(ValueError, match="mode must be 1 or 2"):
        HeroConfig(mode=3)
    with pytest.raises(ValueError, match="engine must be one of"):
        HeroConfig(engine="gan")
    stage = HeroStage(small_config())
    a = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="reference is 9x8"):
        stage.fit(a, a, np.zeros((8, 9, 3), np.uint8))
    with pytest.raises(RuntimeError, match="call fit"):
        stage.restore(a[None], a[None])


def test_engine_defaults_fill_auto_fields_only():
    # Fixed steps by default (results must not depend on machine load); FLUX keeps its own step count.
    assert (HeroConfig().steps, HeroConfig().time_budget_s) == (800, None)
    diffusion = HeroConfig(engine="diffusion")
    assert (diffusion.steps, diffusion.time_budget_s) == (600, None)
    assert HeroConfig(engine="diffusion", steps=5, time_budget_s=9.0).time_budget_s == 9.0
