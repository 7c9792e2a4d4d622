"""Lift an edit made at a working resolution to full resolution, keeping the original's full-res detail.

The edit is carried as a colour CHANGE (log gain in linear RGB, as the offline Zero-Stage's ``ratio``
transfer), not as pixels: an edited low-res frame upsampled directly would be blurry, whereas the full-res
original times an upsampled gain keeps every fine texture and edge of the original. The gain itself is
upsampled edge-aware with a guided filter (He, Sun and Tang; the "fast" variant of He and Sun 2015): at
the working resolution the gain is fitted, in each (2r+1)² window, as a linear function of the original's
RGB colour; the coefficients are smoothed, bilinearly upsampled and applied to the FULL-res original, so
the gain's edges follow the object's edges at full resolution. ``bilinear`` (plain upsampling of the gain)
is kept for comparison (docs/scale.md).
"""

from __future__ import annotations

import numpy as np

LIFTS = ("guided", "bilinear")
GAIN_EPS = 0.01  # as the Zero-Stage: the gain of (x + eps) keeps dark pixels editable
LOG_GAIN_LIMIT = 4.0


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0, 1)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055).astype(np.float32)


_TO_LINEAR = srgb_to_linear(np.arange(256, dtype=np.float32) / 255)  # uint8 sRGB -> linear, exact
_LINEAR_STEPS = 65535  # linear -> uint8 sRGB through a table: < 0.03 levels of error even near black
_TO_SRGB = np.clip(np.round(linear_to_srgb(np.arange(_LINEAR_STEPS + 1, dtype=np.float64) / _LINEAR_STEPS)
                            * 255), 0, 255).astype(np.uint8)


def log_gain(edited: np.ndarray, original: np.ndarray) -> np.ndarray:
    """(H, W, 3) float32 log gain in linear RGB that turns ``original`` into ``edited`` (uint8 both)."""
    e, o = _TO_LINEAR[edited], _TO_LINEAR[original]
    return np.clip(np.log((e + GAIN_EPS) / (o + GAIN_EPS)), -LOG_GAIN_LIMIT, LOG_GAIN_LIMIT)


def apply_gain(original: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """``original`` (uint8) with the log gain applied, as uint8 (in place on ``gain``: it is consumed)."""
    y = np.exp(gain, out=gain)
    y *= _TO_LINEAR[original] + GAIN_EPS
    y -= GAIN_EPS
    np.clip(y, 0, 1, out=y)
    y *= _LINEAR_STEPS
    y += 0.5
    return _TO_SRGB[y.astype(np.uint16)]


def _box(x: np.ndarray, r: int) -> np.ndarray:
    import cv2

    return cv2.boxFilter(x, -1, (2 * r + 1, 2 * r + 1), normalize=True, borderType=cv2.BORDER_REFLECT)


def guided_coefficients(guide: np.ndarray, src: np.ndarray, radius: int, eps: float
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Colour guided filter coefficients: ``src ≈ a · guide + b`` per window.

    guide (h, w, 3) and src (h, w, C) float32; returns a (h, w, C, 3) and b (h, w, C), both box-smoothed.
    """
    h, w, c = src.shape
    mean_i = _box(guide, radius)
    mean_p = _box(src, radius)
    # 3x3 covariance of the guide and 3xC cross-covariance with src, per pixel
    ii = np.stack([guide[..., i] * guide[..., j] for i in range(3) for j in range(3)], -1)
    outer = np.einsum("hwi,hwj->hwij", mean_i, mean_i).reshape(h, w, 9)
    cov_i = (_box(ii, radius) - outer).reshape(h, w, 3, 3)
    ip = np.concatenate([guide[..., i:i + 1] * src for i in range(3)], -1)  # (h, w, 3·C), guide-major
    cov_ip = (_box(ip, radius).reshape(h, w, 3, c)
              - np.einsum("hwi,hwc->hwic", mean_i, mean_p))
    a = np.linalg.solve(cov_i + eps * np.eye(3, dtype=np.float32), cov_ip)  # (h, w, 3, C)
    a = np.ascontiguousarray(a.transpose(0, 1, 3, 2))  # (h, w, C, 3)
    b = mean_p - np.einsum("hwci,hwi->hwc", a, mean_i)
    a = _box(a.reshape(h, w, 3 * c), radius).reshape(h, w, c, 3)
    return a, _box(b, radius)


def lift(edited_low: np.ndarray, original_low: np.ndarray, original_full: np.ndarray,
         method: str = "guided", radius: int = 1, eps: float = 1e-4) -> np.ndarray:
    """The edit of ``original_low`` (→ ``edited_low``) applied to ``original_full``, (H, W, 3) uint8.

    ``radius`` is in working-resolution pixels; ``eps`` regularises the fit (guide colours in [0, 1]).
    """
    import cv2

    if method not in LIFTS:
        raise ValueError(f"lift must be one of {', '.join(LIFTS)}, not {method!r}")
    if edited_low.shape != original_low.shape:
        raise ValueError(f"edited {edited_low.shape} and original {original_low.shape} differ in size")
    big_h, big_w = original_full.shape[:2]
    if original_low.shape[:2] == (big_h, big_w):
        return edited_low
    gain = log_gain(edited_low, original_low)
    if method == "bilinear":
        return apply_gain(original_full, cv2.resize(gain, (big_w, big_h), interpolation=cv2.INTER_LINEAR))
    a, b = guided_coefficients(original_low.astype(np.float32) / 255, gain, radius, eps)
    h, w = gain.shape[:2]
    a_up = cv2.resize(a.reshape(h, w, 9), (big_w, big_h), interpolation=cv2.INTER_LINEAR)
    b_up = cv2.resize(b, (big_w, big_h), interpolation=cv2.INTER_LINEAR)
    guide = original_full.astype(np.float32) / 255
    full = b_up
    for c in range(3):  # channel by channel: no (H, W, 3, 3) temporary at full resolution
        for i in range(3):
            full[..., c] += a_up[..., 3 * c + i] * guide[..., i]
    return apply_gain(original_full, full)
