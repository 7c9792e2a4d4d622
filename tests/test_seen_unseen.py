"""eval/seen_unseen.py: which mask pixels show surface the anchor saw (from ground-truth flows)."""

import numpy as np

from z2h.eval.seen_unseen import seen_masks


def test_a_sliding_square_is_seen_and_what_a_cover_hid_is_not():
    n, h, w = 4, 32, 48
    masks = np.zeros((n, h, w), bool)
    fwd = np.zeros((n - 1, h, w, 2), np.float32)
    bwd = np.zeros((n - 1, h, w, 2), np.float32)
    for t in range(n):
        masks[t, 8:20, 10 + 3 * t : 22 + 3 * t] = True  # slides right 3 px per frame
    for t in range(n - 1):
        fwd[t][masks[t]] = (3, 0)
        bwd[t][masks[t + 1]] = (-3, 0)
    seen = seen_masks(masks, fwd, bwd, anchor=0)
    assert seen[3][masks[3]].all()  # every pixel of the square was visible in the anchor
    # now the anchor did NOT show the square's left half (say a cover hid it): those pixels are unseen
    hidden = masks.copy()
    hidden[0, 8:20, 10:16] = False
    seen = seen_masks(hidden, fwd, bwd, anchor=0)
    left = np.zeros((h, w), bool)
    left[8:20, 19:25] = True  # where the hidden half is at frame 3
    assert not seen[3][left].any() and seen[3][masks[3] & ~left].mean() > 0.9
