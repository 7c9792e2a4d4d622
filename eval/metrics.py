"""Per-frame PSNR, SSIM and LPIPS, full-frame and inside the object mask.

LPIPS runs in batches of frames; PSNR and SSIM are vectorised over each whole frame and loop over
frames, because frame-sized arrays stay in cache (a whole-batch numpy version measured ~2x slower).

Definitions (both protocols):
- PSNR: 10·log10(255² / MSE), MSE over H, W and RGB (= ``skimage.metrics.peak_signal_noise_ratio``
  with data_range=255). Masked: MSE = Σ m·e² / (3·Σ m).
- SSIM: scikit-image's defaults, reproduced to ~1e-15: 7×7 uniform window, sample covariance
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


def _mse(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> tuple[float, float]:
    """(MSE over the frame, MSE inside ``mask``) of one (H, W, 3) uint8 pair; NaN for an empty mask.

    Sums of squares of integer-valued float64 vectors, hence exact. np.einsum, not ``@``: BLAS dot
    products slowed down ~10x next to torch's OpenMP threads (measured).
    """
    d = pred.astype(np.float64) - gt
    flat = d.reshape(-1)
    masked = np.nan
    if mask is not None and mask.any():
        inside = d[mask].reshape(-1)
        masked = float(np.einsum("i,i->", inside, inside)) / inside.size
    return float(np.einsum("i,i->", flat, flat)) / flat.size, masked


def _psnr(mse: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(DATA_RANGE**2 / mse)  # mse 0 -> inf, NaN stays NaN


def psnr(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """PSNR (dB) per frame of (T, H, W, 3) uint8 batches, MAX=255; identical frames give inf."""
    # frame by frame: the float64 copies stay in cache (a whole-batch version is ~2x slower)
    return _psnr(np.array([_mse(p, g)[0] for p, g in zip(pred, gt, strict=True)]))


def _box_sums(v: np.ndarray) -> np.ndarray:
    """7×7 window sums over the last two axes of an integer array already padded by 3 on each side."""
    c = np.cumsum(v, axis=-2, dtype=v.dtype)
    rows = c[..., SSIM_WIN - 1 :, :].copy()
    rows[..., 1:, :] -= c[..., :-SSIM_WIN, :]
    c = np.cumsum(rows, axis=-1, dtype=v.dtype)
    out = c[..., SSIM_WIN - 1 :].copy()
    out[..., 1:] -= c[..., :-SSIM_WIN]
    return out


def _ssim_frame(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Full SSIM map (3, H, W) of one (H, W, 3) uint8 pair, equal to scikit-image's.

    Every window sum of x, y, x², y², xy is an integer, so they are computed exactly in integer
    arithmetic, and so are N·Σxy − ΣxΣy etc. (no float cancellation); only the final ratio is float64.
    One frame at a time keeps the arrays in cache, which is what makes this faster than skimage.
    """
    h, w, _ = pred.shape
    pad = (SSIM_WIN - 1) // 2
    # scipy's "reflect" mode (skimage's default) mirrors including the edge pixel: c b a | a b c
    rows, cols = (np.r_[pad - 1 : -1 : -1, :n, n - 1 : n - 1 - pad : -1] for n in (h, w))
    # int32 holds every sum below unless a row is ~4700 px long (cumulative sums of 7·255² per pixel)
    dtype = np.int32 if max(h, w) + 2 * pad < 4700 else np.int64
    x = pred.transpose(2, 0, 1)[:, rows][:, :, cols].astype(dtype)
    y = gt.transpose(2, 0, 1)[:, rows][:, :, cols].astype(dtype)
    sx, sy, sxx, syy, sxy = _box_sums(np.stack([x, y, x * x, y * y, x * y]))
    n = SSIM_WIN**2
    p = sx * sy
    q = sx * sx + sy * sy
    cov = n * sxy - p  # n²·covariance / cov_norm, exact
    var = n * (sxx + syy) - q
    cov_norm = n / (n - 1.0)  # sample covariance, as skimage's default
    c1, c2 = (SSIM_K1 * DATA_RANGE * n) ** 2, (SSIM_K2 * DATA_RANGE * n) ** 2  # scaled by n² like the rest
    p, q = p.astype(np.float64), q.astype(np.float64)
    return ((2 * p + c1) * (2 * cov_norm * cov + c2)) / ((q + c1) * (cov_norm * var + c2))


def ssim_map(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """scikit-image's full SSIM map (``full=True``) of (T, H, W, 3) uint8 batches, (T, H, W, 3) float64."""
    return np.stack([_ssim_frame(p, g).transpose(1, 2, 0) for p, g in zip(pred, gt, strict=True)])


def ssim(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """SSIM per frame, equal to skimage ``structural_similarity(p, g, channel_axis=-1, data_range=255)``."""
    pad = (SSIM_WIN - 1) // 2
    return np.array([_ssim_frame(p, g)[:, pad:-pad, pad:-pad].mean() for p, g in zip(pred, gt, strict=True)])


def _masked_mean(values: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Mean of (..., H, W) values over (..., H, W) bool masks; NaN where a mask is empty."""
    area = masks.sum(axis=(-2, -1))
    total = np.einsum("...hw,...hw->...", values, masks.astype(values.dtype))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(area > 0, total / area, np.nan)


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
        raise ValueError(f"{where}pred frames are {pred.shape[1:3]} (H, W), gt frames are {gt.shape[1:3]}")
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
    if protocol == "paper" and lpips_net not in ("alex", "alexnet", None):
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
    pad = (SSIM_WIN - 1) // 2
    progress(0, total)
    for start in range(0, total, batch_size):
        s = slice(start, min(start + batch_size, total))
        p, g, m = pred[s], gt[s], masks[s]
        if protocol == "paper":
            p, g = _resize(p, PAPER_SIZE, "LANCZOS"), _resize(g, PAPER_SIZE, "LANCZOS")
            m = _resize(m.astype(np.uint8) * 255, PAPER_SIZE, "NEAREST") > 127
        for i, (pi, gi, mi) in enumerate(zip(p, g, m, strict=True), start=start):
            out["psnr"][i], out["psnr_masked"][i] = _psnr(np.array(_mse(pi, gi, mi)))
            smap = _ssim_frame(pi, gi)
            out["ssim"][i] = smap[:, pad:-pad, pad:-pad].mean()
            out["ssim_masked"][i] = _masked_mean(smap.mean(axis=0), mi)
        if model is not None:
            dist, dmap = lpips_distance(model, _to_tensor(p), _to_tensor(g))
            out["lpips"][s] = dist.double().numpy()
            out["lpips_masked"][s] = _masked_mean(dmap.double().numpy(), m)
        progress(s.stop, total)
    return pd.DataFrame({c: out[c] for c in COLUMNS})
