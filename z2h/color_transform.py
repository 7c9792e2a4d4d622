"""The anchor's edit as a colour lookup: original colour -> edited colour, learned on the anchor pair.

A global affine colour fit plus a smoothed 3D table (LUT) of what the affine fit leaves, both fitted by
weighted least squares on the anchor's pixels (the colour-map baseline fits every pixel with weight 1;
the z2h pipeline fits only the tracked edit region and a ring around it, so an unedited look-alike
elsewhere in the anchor cannot pull the map towards "no change").

The table also stores how CONSISTENT the edit is per colour (the weighted spread of the edited colours
that one original colour maps to): a plain recolouring maps each colour to one colour (spread ~ noise),
a texture edit maps one colour to many (large spread). :meth:`ColourTransform.assess` turns that
into a per-pixel weight, so a caller can use the lookup where it is the right model and correspondence
elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class LutConfig:
    nodes: int = 33  # LUT nodes per RGB axis (spacing 255/32 ~ 8 levels)
    sigma: float = 0.5  # Gaussian smoothing of the table, in nodes
    prior: float = 0.01  # pseudo-count pulling colours far from any anchor colour towards the global fit
    affine: bool = True  # global affine colour fit first; the table models what it leaves


def corners(colors: np.ndarray, nodes: int) -> tuple[np.ndarray, np.ndarray]:
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


def fit_affine(original: np.ndarray, edited: np.ndarray, weight: np.ndarray | None = None) -> np.ndarray:
    """(4, 3) weighted least-squares map [r, g, b, 1] -> edited colour."""
    x = np.c_[original.reshape(-1, 3).astype(np.float64), np.ones(original.size // 3)]
    y = edited.reshape(-1, 3).astype(np.float64)
    if weight is not None:
        s = np.sqrt(weight.reshape(-1, 1).astype(np.float64))
        x, y = x * s, y * s
    return np.linalg.lstsq(x, y, rcond=None)[0]


def apply_affine(colors: np.ndarray, affine: np.ndarray | None) -> np.ndarray:
    colors = colors.astype(np.float64)
    return colors if affine is None else colors @ affine[:3] + affine[3]


def fit_lut(
    original: np.ndarray, edited: np.ndarray, config: LutConfig, affine: np.ndarray | None = None,
    weight: np.ndarray | None = None, spread: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """A (nodes, nodes, nodes, 3) table of what the global fit leaves: trilinear splatting, normalised blur.

    Colours far from every anchor colour get (almost) nothing added to the global fit (identity if none).
    ``spread=True`` also returns the per-node weighted RMS deviation of the edited colours from the table
    (nodes, nodes, nodes), in 0..255 units.
    """
    from scipy.ndimage import gaussian_filter

    n = config.nodes
    src = original.reshape(-1, 3)
    delta = edited.reshape(-1, 3).astype(np.float64) - apply_affine(src, affine)
    w_px = np.ones(len(src)) if weight is None else weight.reshape(-1).astype(np.float64)
    keep = w_px > 0
    src, delta, w_px = src[keep], delta[keep], w_px[keep]
    idx, wts = corners(src, n)
    wts = wts * w_px[:, None]
    idx, wts = idx.ravel(), wts.ravel()
    count = np.bincount(idx, wts, minlength=n**3).reshape(n, n, n)
    blur = (lambda a: gaussian_filter(a, config.sigma, mode="nearest")) if config.sigma > 0 else (lambda a: a)
    weight_n = blur(count) + config.prior
    sums = [blur(np.bincount(idx, wts * np.repeat(delta[:, c], 8), minlength=n**3).reshape(n, n, n))
            for c in range(3)]
    lut = np.stack([s / weight_n for s in sums], axis=-1)
    if not spread:
        return lut
    sq = sum(blur(np.bincount(idx, wts * np.repeat(delta[:, c] ** 2, 8), minlength=n**3).reshape(n, n, n))
             for c in range(3))
    # weighted variance sum_c (S2 - S1^2 / W) / (W + prior): nodes without data get ~0 spread
    w_data = np.maximum(weight_n - config.prior, 1e-12)
    var = np.maximum(sq - sum(s**2 for s in sums) / w_data, 0.0) / weight_n
    return lut, np.sqrt(var / 3)


def lookup(frames: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Trilinear lookup of an (n, n, n) or (n, n, n, C) table for every pixel of uint8 frames (..., 3)."""
    from scipy.ndimage import map_coordinates

    pos = frames.reshape(-1, 3).T.astype(np.float64) * ((table.shape[0] - 1) / 255.0)
    channels = table[..., None] if table.ndim == 3 else table
    out = np.stack([map_coordinates(channels[..., c], pos, order=1, mode="nearest")
                    for c in range(channels.shape[-1])], -1)
    return out.reshape(*frames.shape[:-1], *table.shape[3:])


def apply_lut(frames: np.ndarray, lut: np.ndarray, affine: np.ndarray | None = None) -> np.ndarray:
    """Global fit plus the table's interpolated correction, for every pixel; uint8 out."""
    change = lookup(frames, lut).reshape(-1, 3)
    out = np.clip(np.rint(apply_affine(frames.reshape(-1, 3), affine) + change), 0, 255)
    return out.astype(np.uint8).reshape(frames.shape)


class ColourTransform:
    """The anchor edit as a global affine colour fit plus a LUT of the rest, fitted on weighted pixels.

    Besides the lookup, it keeps per LUT node how much anchor data it saw and how consistently that data
    was edited (RMS deviation from the table, in 0..255 levels): :meth:`assess` says, per pixel,
    whether "this colour becomes that colour" is the right model there. Colours the anchor never showed
    follow the affine fit, trusted as much as the lookup is trusted over the whole edit region.
    """

    def __init__(self, config: LutConfig | None = None, support: float = 0.5):
        self.config = config or LutConfig()
        self.support = support
        self.affine: np.ndarray | None = None
        self.lut: np.ndarray | None = None
        self.spread: np.ndarray | None = None  # (n, n, n) RMS deviation of edited colours from the table
        self.count: np.ndarray | None = None  # (n, n, n) blurred pixel count
        self.overall = 0.0  # RMS deviation over all fitted pixels

    def fit(
        self, original: np.ndarray, edited: np.ndarray, weight: np.ndarray | None = None
    ) -> ColourTransform:
        """Fit on an (H, W, 3) uint8 anchor pair; ``weight`` (H, W) >= 0 selects/weights the pixels."""
        from scipy.ndimage import gaussian_filter

        cfg, n = self.config, self.config.nodes
        self.affine = fit_affine(original, edited, weight) if cfg.affine else None
        self.lut = fit_lut(original, edited, cfg, self.affine, weight)
        # per-pixel residual of the fitted model, splatted per node (no cross-node blur of the moments,
        # which would count the table's slope as spread)
        src = original.reshape(-1, 3)
        w_px = np.ones(len(src)) if weight is None else weight.reshape(-1).astype(np.float64)
        keep = w_px > 0
        resid = self.apply(original).reshape(-1, 3).astype(np.float64) - edited.reshape(-1, 3)
        sq = (resid**2).mean(-1)[keep]
        idx, wts = corners(src[keep], n)
        wts = wts * w_px[keep, None]
        count = np.bincount(idx.ravel(), wts.ravel(), minlength=n**3).reshape(n, n, n)
        sums = np.bincount(idx.ravel(), (wts * sq[:, None]).ravel(), minlength=n**3).reshape(n, n, n)
        blur = (lambda a: gaussian_filter(a, cfg.sigma, mode="nearest")) if cfg.sigma > 0 else (lambda a: a)
        self.count = blur(count)
        self.spread = np.sqrt(blur(sums) / np.maximum(self.count, 1e-9))
        self.overall = float(np.sqrt((sq * w_px[keep]).sum() / max(w_px[keep].sum(), 1e-9)))
        return self

    def apply(self, frames: np.ndarray) -> np.ndarray:
        if self.lut is None:
            raise RuntimeError("ColourTransform.fit() first")
        return apply_lut(frames, self.lut, self.affine)

    def assess(self, frames: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
        """Per pixel: the lookup's reliability in 0..1, exp(-(spread / scale)²) of its colour's node, and its
        expected error (RMS, 0..255 levels), that spread; both blended towards the overall spread where the
        anchor showed few pixels of that colour."""
        if self.spread is None or self.count is None:
            raise RuntimeError("ColourTransform.fit() first")
        seen = lookup(frames, self.count)
        seen = seen / (seen + self.support)
        spread = lookup(frames, self.spread)
        reliable = seen * np.exp(-(spread / scale) ** 2) + (1 - seen) * np.exp(-(self.overall / scale) ** 2)
        error = seen * spread + (1 - seen) * self.overall
        return reliable.astype(np.float32), error.astype(np.float32)
