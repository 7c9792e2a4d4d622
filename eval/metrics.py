"""Per-frame PSNR, SSIM and LPIPS, full-frame and inside the object mask, batched over frames.

Definitions (both protocols):
- PSNR: 10·log10(255² / MSE), MSE over H, W and RGB (= ``skimage.metrics.peak_signal_noise_ratio``
  with data_range=255). Masked: MSE = Σ m·e² / (3·Σ m).
- SSIM: scikit-image's defaults, reproduced exactly: 7×7 uniform window, sample covariance
  (N/(N-1)), K1=0.01, K2=0.03, data_range=255, filter borders mirrored (scipy "reflect"); the frame
  value is the mean of the map without its 3-pixel border, over R, G, B (= ``structural_similarity(...,
  channel_axis=-1, data_range=255)``). Masked: the full map (channel mean) averaged over the mask.
- LPIPS: ``lpips`` v0.1 (AlexNet by default) with the offline weights; masked: the ``spatial=True``
  map averaged over the mask.
Masked values are NaN when a mask is empty. Protocol "paper" (the reference code): frames
LANCZOS-resized to 512×512 and masks NEAREST-resized before scoring, LPIPS AlexNet; "default":
native resolution.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from z2h.progress import ProgressFn, no_progress

if TYPE_CHECKING:
    import pandas as pd

PROTOCOLS = ("default", "paper")
PAPER_SIZE = 512
COLUMNS = ["frame", "psnr", "ssim", "lpips", "psnr_masked", "ssim_masked", "lpips_masked"]
SSIM_WIN, SSIM_K1, SSIM_K2, DATA_RANGE = 7, 0.01, 0.03, 255.0


def protocol_note(protocol: str, lpips_net: str | None = "alex") -> str:
    """One line for table notes saying how the numbers were made."""
    size = "native resolution"
    if protocol == "paper":
        size = f"frames LANCZOS-resized to {PAPER_SIZE}×{PAPER_SIZE} (masks NEAREST)"
    lp = f"LPIPS {lpips_net} v0.1" if lpips_net else "no LPIPS"
    return (
        f"protocol {protocol}: {size}; PSNR MAX=255; SSIM scikit-image defaults (7×7 uniform window), "
        f"mean over RGB; {lp}; masked metrics averaged inside the object mask (MSE = Σm·e²/Σm)"
    )


def _mse(pred: np.ndarray, gt: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    err = ((pred.astype(np.float64) - gt.astype(np.float64)) ** 2).sum(axis=-1)  # (B, H, W)
    area = masks.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        masked = (err * masks).sum(axis=(1, 2)) / (3.0 * area)
    return err.mean(axis=(1, 2)) / 3.0, np.where(area > 0, masked, np.nan)


def _psnr(mse: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(DATA_RANGE**2 / mse)  # mse 0 -> inf, NaN stays NaN


def psnr(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """PSNR (dB) per frame of (T, H, W, 3) uint8 batches, MAX=255; identical frames give inf."""
    return _psnr(_mse(pred, gt, np.ones(pred.shape[:3], bool))[0])


def ssim_map(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """scikit-image's full SSIM map, (T, H, W, 3) float64, computed for all frames and channels at once."""
    from scipy.ndimage import uniform_filter

    x, y = pred.astype(np.float64), gt.astype(np.float64)
    # One filter call over the five local moments; size 1 leaves the stack, frame and channel axes alone.
    moments = uniform_filter(np.stack([x, y, x * x, y * y, x * y]), size=(1, 1, SSIM_WIN, SSIM_WIN, 1))
    ux, uy, uxx, uyy, uxy = moments
    cov_norm = SSIM_WIN**2 / (SSIM_WIN**2 - 1.0)  # sample covariance, as skimage's default
    vx, vy, vxy = cov_norm * (uxx - ux * ux), cov_norm * (uyy - uy * uy), cov_norm * (uxy - ux * uy)
    c1, c2 = (SSIM_K1 * DATA_RANGE) ** 2, (SSIM_K2 * DATA_RANGE) ** 2
    return ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))


def ssim(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """SSIM per frame, equal to skimage ``structural_similarity(p, g, channel_axis=-1, data_range=255)``."""
    pad = (SSIM_WIN - 1) // 2
    return ssim_map(pred, gt)[:, pad:-pad, pad:-pad].mean(axis=(1, 2, 3))


def _masked_mean(values: np.ndarray, masks: np.ndarray) -> np.ndarray:
    area = masks.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(area > 0, (values * masks).sum(axis=(1, 2)) / area, np.nan)


def _to_tensor(frames: np.ndarray):
    import torch

    return torch.from_numpy(frames).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


def _resize(frames: np.ndarray, size: int, resample: str) -> np.ndarray:
    from PIL import Image

    mode = getattr(Image.Resampling, resample)
    return np.stack([np.asarray(Image.fromarray(f).resize((size, size), mode)) for f in frames])


def _check(pred: np.ndarray, gt: np.ndarray, masks: np.ndarray, label: str) -> np.ndarray:
    where = f"{label}: " if label else ""
    for name, a in (("pred", pred), ("gt", gt)):
        if not isinstance(a, np.ndarray) or a.dtype != np.uint8 or a.ndim != 4 or a.shape[-1] != 3:
            got = f"{a.dtype} {a.shape}" if isinstance(a, np.ndarray) else type(a).__name__
            raise ValueError(f"{where}{name} must be (T, H, W, 3) uint8, got {got}")
    if len(pred) != len(gt):
        raise ValueError(f"{where}pred has {len(pred)} frames, gt has {len(gt)}")
    if pred.shape != gt.shape:
        bad = next((i for i in range(len(pred)) if pred[i].shape != gt[i].shape), 0)
        raise ValueError(f"{where}frame {bad}: pred is {pred.shape[1:3]} (H, W), gt is {gt.shape[1:3]}")
    masks = np.asarray(masks)
    if masks.shape != gt.shape[:3]:
        raise ValueError(f"{where}masks are {masks.shape}, frames need {gt.shape[:3]} (T, H, W)")
    if masks.dtype != bool:
        if not np.issubdtype(masks.dtype, np.integer):
            raise ValueError(f"{where}masks must be bool (or 0/255 integers), got {masks.dtype}")
        masks = masks > 0
    if min(gt.shape[1:3]) < SSIM_WIN:
        win = f"{SSIM_WIN}×{SSIM_WIN}"
        raise ValueError(f"{where}frames of {gt.shape[1:3]} (H, W) are smaller than the {win} SSIM window")
    return masks


def frame_metrics(
    pred: np.ndarray,
    gt: np.ndarray,
    masks: np.ndarray,
    *,
    protocol: str = "default",
    lpips_net: str | None = "alex",
    batch_size: int = 8,
    progress: ProgressFn | None = None,
    label: str = "",
) -> pd.DataFrame:
    """Per-frame metrics of ``pred`` against ``gt``: one row per frame with :data:`COLUMNS`.

    pred, gt: (T, H, W, 3) uint8; masks: (T, H, W) bool (integers: non-zero = inside). Frames are
    scored ``batch_size`` at a time. ``lpips_net=None`` skips LPIPS (NaN columns). ``label`` (e.g. the
    video name) prefixes error messages. Masked values are NaN where a mask is empty.
    """
    import pandas as pd

    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, not {protocol!r}")
    if protocol == "paper" and lpips_net not in ("alex", None):
        raise ValueError(f"protocol 'paper' uses LPIPS alex, not {lpips_net!r}")
    masks = _check(pred, gt, masks, label)
    model = None
    if lpips_net is not None:
        from z2h.eval.lpips_net import lpips_distance, lpips_model

        model = lpips_model(lpips_net)
    progress = progress or no_progress
    total = len(gt)
    out = {c: np.full(total, np.nan) for c in COLUMNS}
    out["frame"] = np.arange(total)
    progress(0, total)
    for start in range(0, total, batch_size):
        s = slice(start, min(start + batch_size, total))
        p, g, m = pred[s], gt[s], masks[s]
        if protocol == "paper":
            p, g = _resize(p, PAPER_SIZE, "LANCZOS"), _resize(g, PAPER_SIZE, "LANCZOS")
            m = _resize(m.astype(np.uint8) * 255, PAPER_SIZE, "NEAREST") > 127
        mse, mse_masked = _mse(p, g, m)
        out["psnr"][s], out["psnr_masked"][s] = _psnr(mse), _psnr(mse_masked)
        smap = ssim_map(p, g)
        pad = (SSIM_WIN - 1) // 2
        out["ssim"][s] = smap[:, pad:-pad, pad:-pad].mean(axis=(1, 2, 3))
        out["ssim_masked"][s] = _masked_mean(smap.mean(axis=-1), m)
        if model is not None:
            dist, dmap = lpips_distance(model, _to_tensor(p), _to_tensor(g))
            out["lpips"][s] = dist.double().numpy()
            out["lpips_masked"][s] = _masked_mean(dmap.double().numpy(), m)
        progress(s.stop, total)
    return pd.DataFrame({c: out[c] for c in COLUMNS})
