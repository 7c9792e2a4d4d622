"""What counts as inside a mask: ONE rule for `z2h bench check`, `z2h eval run` and `z2h bench import`.

A mask may be greyscale, grey+alpha, RGB or RGBA (users' masks often come out of a paint tool as RGB).
Alpha is ignored, colour is reduced to its luma with Pillow's integer ITU-R 601 weights (what
``Image.convert("L")`` computes), and a pixel is inside when that value is above 127.
"""

from __future__ import annotations

import numpy as np

CHANNELS = (1, 2, 3, 4)  # grey, grey+alpha, RGB, RGBA
THRESHOLD = 127


def mask_luma(pixels: np.ndarray) -> np.ndarray:
    """(H, W) uint8 grey level of mask pixels (H, W) or (H, W, C), C in 1..4; alpha is dropped."""
    px = np.asarray(pixels)
    if px.dtype != np.uint8:
        raise ValueError(f"mask pixels must be uint8, got {px.dtype}")
    if px.ndim == 2:
        return px
    if px.ndim != 3 or px.shape[2] not in CHANNELS:
        raise ValueError(f"mask pixels must be (H, W) or (H, W, 1..4), got shape {px.shape}")
    if px.shape[2] <= 2:
        return px[..., 0]
    rgb = px[..., :3].astype(np.uint32)
    return ((rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 + 0x8000) >> 16).astype(np.uint8)


def mask_inside(pixels: np.ndarray) -> np.ndarray:
    """(H, W) bool: the pixels inside the mask."""
    return mask_luma(pixels) > THRESHOLD
