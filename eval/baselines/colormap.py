"""Per-video colour mapping learned on the anchor pair alone: original colour -> edited colour.

No correspondence at all: a smoothed 3D lookup table of the colour CHANGE (edited - original) is fitted
on the anchor frame and applied to every frame. Very strong on plain recolouring of a distinct object,
useless when an unedited twin shares the object's colour; every correspondence method must be shown
against it.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np

from z2h.color_transform import LutConfig, apply_lut, fit_affine, fit_lut
from z2h.progress import ProgressFn

# The lookup itself lives in z2h/color_transform.py (the z2h pipeline fits the same model on the tracked
# edit region); this baseline fits it on every anchor pixel with weight 1.
ColorMapConfig = LutConfig


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
