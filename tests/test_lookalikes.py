"""eval/lookalikes.py: PSNR on the pixels that look like the edited part but were not edited."""

import numpy as np

from z2h.eval.lookalikes import lookalike_masks, lookalike_psnr


def test_twin_pixels_are_found_and_a_recoloured_twin_scores_low():
    n, size = 3, 64
    original = np.full((n, size, size, 3), 100, np.uint8)
    original[:, 10:30, 10:30] = (200, 40, 30)  # the edited square
    original[:, 10:30, 40:60] = (200, 40, 30)  # its twin
    edited = original.copy()
    edited[:, 10:30, 10:30] = (40, 90, 200)
    masks = np.zeros((n, size, size), bool)
    masks[:, 10:30, 10:30] = True
    like = lookalike_masks(original, edited[0], masks, 0)
    assert like[1, 10:30, 40:60].all() and like[1].sum() == 400  # the twin, nothing else
    assert lookalike_psnr(edited, edited, like, 0) > 90  # the ground truth leaves the twin as it was
    recoloured = edited.copy()
    recoloured[:, 10:30, 40:60] = (40, 90, 200)
    expected = 10 * np.log10(255**2 / np.mean(np.square([160, 50, 170])))  # the exact error on every pixel
    assert abs(lookalike_psnr(recoloured, edited, like, 0) - expected) < 1e-6
