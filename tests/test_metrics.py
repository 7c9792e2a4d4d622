"""eval.metrics / eval.lpips_net against scikit-image, the lpips package and hand-computed formulas."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from skimage import data, filters
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from z2h import weights
from z2h.eval import metrics
from z2h.eval.metrics import frame_metrics

needs_weights = pytest.mark.skipif(
    not weights.is_fetched(),
    reason=f"no converted weights in {weights.weights_dir()}: run `z2h weights fetch`",
)


def noisy(frames: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(frames + rng.normal(0, sigma, frames.shape), 0, 255).round().astype(np.uint8)


def blurred(image: np.ndarray, sigma: float) -> np.ndarray:
    return (filters.gaussian(image, sigma=sigma, channel_axis=-1) * 255).round().astype(np.uint8)


def real_pairs() -> list[tuple[np.ndarray, np.ndarray]]:
    astro, coffee = data.astronaut()[::2, ::2], data.coffee()[:199, :301]  # odd sizes on purpose
    return [(astro, blurred(astro, 1.5)), (coffee, noisy(coffee, 12)), (astro, np.roll(astro, 3, axis=1))]


def test_psnr_and_ssim_equal_scikit_image_on_random_and_real_images():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (3, 37, 53, 3), dtype=np.uint8)
    wide = rng.integers(0, 256, (9, 4800, 3), dtype=np.uint8)  # long rows: the int64 window sums
    pairs = [(a[i], noisy(a[i], 40, i)) for i in range(3)] + real_pairs() + [(wide, noisy(wide, 20))]
    for pred, gt in pairs:
        ref_ssim = structural_similarity(pred, gt, channel_axis=-1, data_range=255)
        ref_psnr = peak_signal_noise_ratio(gt, pred, data_range=255)
        assert abs(metrics.ssim(pred[None], gt[None])[0] - ref_ssim) < 1e-6
        assert abs(metrics.psnr(pred[None], gt[None])[0] - ref_psnr) < 1e-6
    batch = np.stack([a[0], a[1]]), np.stack([noisy(a[0], 5), a[1]])
    assert metrics.psnr(*batch)[1] == np.inf and metrics.ssim(*batch)[1] == pytest.approx(1.0, abs=1e-12)


def test_ssim_map_equals_scikit_image_full_map():
    pred, gt = real_pairs()[1]
    _, ref = structural_similarity(pred, gt, channel_axis=-1, data_range=255, full=True)
    np.testing.assert_allclose(metrics.ssim_map(pred[None], gt[None])[0], ref, rtol=0, atol=1e-9)


def constant_case(t: int = 3, h: int = 24, w: int = 32):
    gt = np.full((t, h, w, 3), 100, np.uint8)
    masks = np.zeros((t, h, w), bool)
    masks[:, 6:18, 8:24] = True
    return gt, masks


def test_masked_psnr_follows_the_formula():
    gt, masks = constant_case()
    pred = gt.copy()
    pred[0][~masks[0]] = 160  # frame 0: error only outside the mask
    pred[1][masks[1], 0] = 110  # frame 1: constant error 10 on one channel inside the mask only
    pred[2][masks[2]] = 104  # frame 2: error 4 inside, 50 outside
    pred[2][~masks[2]] = 150
    df = frame_metrics(pred, gt, masks, lpips_net=None)
    assert df["psnr_masked"][0] == np.inf and df["psnr"][0] < 20
    assert df["psnr_masked"][1] == pytest.approx(10 * np.log10(255**2 / (10**2 / 3)), abs=1e-9)
    assert df["psnr_masked"][2] == pytest.approx(10 * np.log10(255**2 / 16), abs=1e-9)
    inside = masks[2].mean()
    mse = 16 * inside + 2500 * (1 - inside)
    assert df["psnr"][2] == pytest.approx(10 * np.log10(255**2 / mse), abs=1e-9)
    assert df["lpips"].isna().all() and list(df.columns) == metrics.COLUMNS


def test_masked_ssim_averages_the_map_inside_the_mask():
    rng = np.random.default_rng(2)
    gt = rng.integers(0, 256, (2, 40, 48, 3), dtype=np.uint8)
    masks = np.zeros(gt.shape[:3], bool)
    masks[:, 10:30, 12:36] = True
    pred = gt.copy()
    far = np.ones(gt.shape[:3], bool)
    far[:, 7:33, 9:39] = False  # more than 3 px (half the window) away from the mask
    pred[far] = 255 - pred[far]
    df = frame_metrics(pred, gt, masks, lpips_net=None)
    assert df["ssim_masked"].tolist() == pytest.approx([1.0, 1.0], abs=1e-12)
    assert (df["ssim"] < 0.5).all()
    # a full mask averages the whole (uncropped) skimage map
    _, ref = structural_similarity(pred[0], gt[0], channel_axis=-1, data_range=255, full=True)
    full = frame_metrics(pred[:1], gt[:1], np.ones((1, 40, 48), bool), lpips_net=None)
    assert full["ssim_masked"][0] == pytest.approx(ref.mean(), abs=1e-9)


def test_empty_masks_give_nan_not_a_crash():
    gt, masks = constant_case()
    masks[1] = False
    df = frame_metrics(noisy(gt, 5), gt, masks, lpips_net=None)
    assert df.loc[1, ["psnr_masked", "ssim_masked"]].isna().all()
    assert df.drop(index=1)[["psnr_masked", "ssim_masked"]].notna().all().all()
    assert np.isfinite(df["psnr"]).all()


def test_bad_input_gives_clear_errors():
    gt, masks = constant_case()
    with pytest.raises(ValueError, match="cube: pred has 2 frames, gt has 3"):
        frame_metrics(gt[:2], gt, masks, label="cube")
    with pytest.raises(ValueError, match=r"pred frames are \(24, 30\) \(H, W\), gt frames are \(24, 32\)"):
        frame_metrics(gt[:, :, :30], gt, masks)
    with pytest.raises(ValueError, match=r"masks are \(3, 24, 31\)"):
        frame_metrics(gt, gt, masks[:, :, :31])
    with pytest.raises(ValueError, match="pred must be .* uint8, got float32"):
        frame_metrics(gt.astype(np.float32), gt, masks)
    with pytest.raises(ValueError, match="protocol must be"):
        frame_metrics(gt, gt, masks, protocol="fancy")
    with pytest.raises(ValueError, match="smaller than the 7×7"):
        frame_metrics(gt[:, :5, :5], gt[:, :5, :5], masks[:, :5, :5])
    df = frame_metrics(gt, gt, masks.astype(np.uint8) * 255, lpips_net=None)  # 0/255 masks are fine
    assert (df["psnr_masked"] == np.inf).all()


def test_paper_protocol_resizes_to_512_lanczos():
    from PIL import Image

    astro = data.astronaut()[::4, ::3]  # 128×171, not square
    pred, gt = blurred(astro, 1.0), astro
    mask = np.zeros(astro.shape[:2], np.uint8)
    mask[40:90, 50:120] = 255
    df = frame_metrics(pred[None], gt[None], mask[None] > 0, protocol="paper", lpips_net=None)

    def big(x, mode):
        return np.asarray(Image.fromarray(x).resize((512, 512), mode))

    p, g = big(pred, Image.Resampling.LANCZOS), big(gt, Image.Resampling.LANCZOS)
    m = big(mask, Image.Resampling.NEAREST) > 0
    assert df["psnr"][0] == pytest.approx(peak_signal_noise_ratio(g, p, data_range=255), abs=1e-6)
    ref = np.mean([structural_similarity(p[..., c], g[..., c], data_range=255) for c in range(3)])
    assert df["ssim"][0] == pytest.approx(ref, abs=1e-6)
    e = (p.astype(float) - g) ** 2
    assert df["psnr_masked"][0] == pytest.approx(10 * np.log10(255**2 / e[m].mean()), abs=1e-9)
    with pytest.raises(ValueError, match="LPIPS alex"):
        frame_metrics(pred[None], gt[None], mask[None] > 0, protocol="paper", lpips_net="vgg")


@needs_weights
def test_lpips_distance_and_map_equal_the_lpips_package_forward():
    import torch

    from z2h.eval.lpips_net import lpips_distance, lpips_model

    model = lpips_model("alex")
    assert lpips_model("alexnet") is model  # cached per process
    pairs = real_pairs()
    x0 = metrics._to_tensor(np.stack([p for p, _ in pairs[::2]]))
    x1 = metrics._to_tensor(np.stack([g for _, g in pairs[::2]]))
    dist, dmap = lpips_distance(model, x0, x1)
    spatial = copy.deepcopy(model)
    spatial.spatial = True
    with torch.no_grad():
        torch.testing.assert_close(dist, model(x0, x1).flatten(), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(dmap, spatial(x0, x1)[:, 0], rtol=1e-5, atol=1e-6)


@needs_weights
@pytest.mark.filterwarnings("ignore::UserWarning")  # torchvision's "pretrained" deprecation inside lpips
def test_lpips_is_the_trained_metric_not_a_random_network():
    import lpips
    import torch

    from z2h.eval.lpips_net import lpips_distance, lpips_model

    astro = data.astronaut()[::2, ::2]
    x = metrics._to_tensor(np.stack([astro] * 4))
    y = metrics._to_tensor(np.stack([astro, blurred(astro, 1), blurred(astro, 3), np.roll(astro, 8, axis=1)]))
    ours = lpips_distance(lpips_model("alex"), x, y)[0].numpy()
    torch.manual_seed(0)
    rand = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False).eval()  # wheel's lin layers, random trunk
    with torch.no_grad():
        random = rand(x, y).flatten().numpy()
    assert ours[0] == 0
    assert 0.05 < ours[1] < ours[2] < 0.8  # more blur, further away; plausible LPIPS range
    assert 0.05 < ours[3] < 0.5
    assert (ours[1:] > 3 * random[1:]).all()  # a random trunk barely sees blur or shift


@needs_weights
def test_frame_metrics_lpips_masked_and_batching():
    astro = data.astronaut()[::4, ::4]  # 128×128
    gt = np.stack([astro] * 3)
    pred = gt.copy()
    pred[:, :, 64:] = blurred(astro, 3)[:, 64:]  # right half damaged
    masks = np.zeros(gt.shape[:3], bool)
    masks[:, :, :32] = True  # left quarter: far from the damage
    masks[2] = False
    calls: list[tuple[int, int]] = []
    df = frame_metrics(pred, gt, masks, batch_size=2, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(0, 3), (2, 3), (3, 3)]
    assert df["lpips"].notna().all() and np.isnan(df["lpips_masked"][2])
    assert (df["lpips_masked"][:2] < 0.25 * df["lpips"][:2]).all()
    one = frame_metrics(pred, gt, masks, batch_size=1)
    np.testing.assert_allclose(one.to_numpy(), df.to_numpy(), rtol=1e-5, atol=1e-6)


@needs_weights
@pytest.mark.slow
def test_vgg_lpips_builds_and_scores():
    from z2h.eval.lpips_net import lpips_distance, lpips_model

    astro = data.astronaut()[::2, ::2]
    x = metrics._to_tensor(np.stack([astro, astro]))
    y = metrics._to_tensor(np.stack([astro, blurred(astro, 2)]))
    dist = lpips_distance(lpips_model("vgg"), x, y)[0].numpy()
    assert dist[0] == 0 and 0.1 < dist[1] < 0.9
