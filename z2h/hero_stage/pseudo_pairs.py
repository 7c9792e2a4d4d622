"""Pseudo training pairs for the offline Hero-Stage, made from the anchor pair alone.

Why: run exactly on the anchor itself, the offline Zero-Stage matches every location to itself and
returns the reference unchanged, so the single paper triplet (zero(anchor), anchor) -> reference
teaches the restorer nothing about the Zero-Stage's errors on other frames. Warping the original
anchor AND the reference with the same random affine transform gives new "frames" whose edited
version is known exactly (the warped reference); running the warped original through the Zero-Stage
against the real anchor then produces the kind of degradation other frames get. This goes beyond
the paper (which trains on the anchor triplet only).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class WarpConfig:
    """Ranges of the random affine transforms (about the image centre)."""

    max_rotation_deg: float = 20.0
    min_scale: float = 0.85
    max_scale: float = 1.2
    max_shift: float = 0.15  # fraction of the image size
    max_shear: float = 0.1


def random_affine(
    rng: np.random.Generator, height: int, width: int, cfg: WarpConfig | None = None
) -> np.ndarray:
    """A random (2, 3) affine matrix mapping source pixel (x, y) to destination pixel coordinates."""
    cfg = cfg or WarpConfig()
    angle = np.deg2rad(rng.uniform(-cfg.max_rotation_deg, cfg.max_rotation_deg))
    scale = np.exp(rng.uniform(np.log(cfg.min_scale), np.log(cfg.max_scale)))
    shear = rng.uniform(-cfg.max_shear, cfg.max_shear)
    shift = rng.uniform(-cfg.max_shift, cfg.max_shift, size=2) * (width, height)
    c, s = np.cos(angle), np.sin(angle)
    linear = scale * np.array([[c, -s], [s, c]]) @ np.array([[1.0, shear], [0.0, 1.0]])
    centre = np.array([(width - 1) / 2, (height - 1) / 2])
    offset = centre + shift - linear @ centre
    return np.concatenate([linear, offset[:, None]], axis=1)


def warp(image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Warp an (H, W, C) uint8 image by an affine matrix (bilinear, mirrored border: no empty pixels)."""
    import cv2

    h, w = image.shape[:2]
    return cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def warped_pairs(
    original: np.ndarray, reference: np.ndarray, count: int, seed: int, cfg: WarpConfig | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``count`` (warped original, warped reference) pairs sharing one random transform each.

    Returns (originals (N, H, W, 3), references (N, H, W, 3), matrices (N, 2, 3)); deterministic in ``seed``.
    """
    if original.shape != reference.shape:
        raise ValueError(f"original anchor {original.shape} and reference {reference.shape} differ in size")
    rng = np.random.default_rng(seed)
    h, w = original.shape[:2]
    mats = np.stack([random_affine(rng, h, w, cfg) for _ in range(count)]) if count else np.zeros((0, 2, 3))
    origs = np.stack([warp(original, m) for m in mats]) if count else original[None][:0]
    refs = np.stack([warp(reference, m) for m in mats]) if count else reference[None][:0]
    return origs, refs, mats
