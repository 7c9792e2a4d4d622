"""Per-video colour mapping learned on the anchor pair alone: original colour -> edited colour.

No correspondence at all: a smoothed 3D lookup table of the colour CHANGE (edited - original) is fitted
on the anchor frame and applied to every frame. Very strong on plain recolouring of a distinct object,
useless when an unedited twin shares the object's colour; every correspondence method must be shown
against it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from z2h.progress import ProgressFn


@dataclass
class ColorMapConfig:
    nodes: int = 33  # LUT nodes per RGB axis (spacing 255/32 ~ 8 levels)
    sigma: float = 0.5  # Gaussian smoothing of the table, in nodes
    prior: float = 0.01  # pseudo-count pulling colours far from any anchor colour towards the global fit
    affine: bool = True  # global affine colour fit first; the table models what it leaves


def _corners(colors: np.ndarray, nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat LUT indices (N, 8) and trilinear weights (N, 8) of uint8 colours (N, 3)."""
    pos = colors.astype(np.float64) * ((nodes - 1) / 255.0)
    lo = np.minimum(np.floor(pos).astype(np.int64), nodes - 2)
    frac = pos - lo
    idx, wts = [], []
    for corner in range(8):
        bits = np.array([(corner >> k) & 1 for k in range(3)])
        c = lo + bits
        idx.append((c[:, 0] * nodes + c[:, 1]) * nodes + c[:, 2])
        wts.append(np.prod(np.where(bits, frac, 1.0 - frac), axis=1))
    return np.stack(idx, 1), np.stack(wts, 1)


def fit_affine(original: np.ndarray, edited: np.ndarray) -> np.ndarray:
    """(4, 3) least-squares map [r, g, b, 1] -> edited colour."""
    x = np.c_[original.reshape(-1, 3).astype(np.float64), np.ones(original.size // 3)]
    return np.linalg.lstsq(x, edited.reshape(-1, 3).astype(np.float64), rcond=None)[0]


def _apply_affine(colors: np.ndarray, affine: np.ndarray | None) -> np.ndarray:
    colors = colors.astype(np.float64)
    return colors if affine is None else colors @ affine[:3] + affine[3]


def fit_lut(original: np.ndarray, edited: np.ndarray, config: ColorMapConfig,
            affine: np.ndarray | None = None) -> np.ndarray:
    """A (nodes, nodes, nodes, 3) table of what the global fit leaves: trilinear splatting, normalised blur.

    Colours far from every anchor colour get (almost) nothing added to the global fit (identity if none).
    """
    from scipy.ndimage import gaussian_filter

    n = config.nodes
    src = original.reshape(-1, 3)
    delta = edited.reshape(-1, 3).astype(np.float64) - _apply_affine(src, affine)
    idx, wts = _corners(src, n)
    idx, wts = idx.ravel(), wts.ravel()
    count = np.bincount(idx, wts, minlength=n**3).reshape(n, n, n)
    sums = [np.bincount(idx, wts * np.repeat(delta[:, c], 8), minlength=n**3).reshape(n, n, n)
            for c in range(3)]
    blur = (lambda a: gaussian_filter(a, config.sigma, mode="nearest")) if config.sigma > 0 else (lambda a: a)
    weight = blur(count) + config.prior
    return np.stack([blur(s) / weight for s in sums], axis=-1)


def apply_lut(frames: np.ndarray, lut: np.ndarray, affine: np.ndarray | None = None) -> np.ndarray:
    """Global fit plus the table's interpolated correction, for every pixel; uint8 out."""
    flat = frames.reshape(-1, 3)
    idx, wts = _corners(flat, lut.shape[0])
    change = np.einsum("nk,nkc->nc", wts, lut.reshape(-1, 3)[idx])
    out = np.clip(np.rint(_apply_affine(flat, affine) + change), 0, 255)
    return out.astype(np.uint8).reshape(frames.shape)


class ColorMap:
    """Colour mapping baseline: ``colormap`` (affine + table) or ``colormap-lut`` (table only).

    Colours the anchor never showed follow the global affine fit in ``colormap`` and stay unchanged in
    ``colormap-lut``; which is better depends on the scene, so both are reported.
    """

    def __init__(self, **options: Any):
        self.config = ColorMapConfig(**options)
        self.name = "colormap" if self.config.affine else "colormap-lut"

    def settings(self) -> dict[str, Any]:
        c = self.config
        fit = "global affine colour fit + " if c.affine else ""
        source = (f"{fit}3D RGB LUT of the remaining colour change, {c.nodes}^3 nodes, trilinear, "
                  f"Gaussian sigma {c.sigma} nodes, fitted on the anchor pair")
        return {**asdict(c), "source": source}

    def __call__(
        self, frames: np.ndarray, anchor: int, reference: np.ndarray, progress: ProgressFn | None = None
    ) -> np.ndarray:
        affine = fit_affine(frames[anchor], reference) if self.config.affine else None
        lut = fit_lut(frames[anchor], reference, self.config, affine)
        out = np.empty_like(frames)
        for t in range(len(frames)):
            out[t] = apply_lut(frames[t], lut, affine)
            if progress:
                progress(t + 1, len(frames))
        return out


def lut_only(**options: Any) -> ColorMap:
    """The ``colormap-lut`` variant: no global affine fit."""
    return ColorMap(affine=False, **options)
