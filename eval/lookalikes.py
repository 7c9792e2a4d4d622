"""Masked PSNR on the unedited look-alikes: does a method leave what the user did NOT edit as it was?

A look-alike pixel of frame t lies outside the edited object (the edit mask grown by 2 px) and looks like
the edited part: the colour map fitted on the anchor pair (the ``colormap`` baseline's model, on every
anchor pixel) changes it by more than 6 levels. The ground truth there is the original frame; a method
that recolours a twin scores low. Frames with fewer than 50 such pixels are skipped.

    python -m z2h.eval.lookalikes BENCH RESULTS [--methods a,b] [--videos x,y | --tag distractor]
"""

from __future__ import annotations

import numpy as np

CHANGED_LEVELS = 6
MIN_PIXELS = 50


def lookalike_masks(
    original: np.ndarray, reference: np.ndarray, masks: np.ndarray, anchor: int,
) -> np.ndarray:
    """(T, H, W) bool: pixels outside the edited object that the anchor's colour map would change."""
    import cv2

    from z2h.eval.baselines.colormap import ColorMap

    mapped = ColorMap()(original, anchor, reference).astype(int)
    changed = np.abs(mapped - original).max(-1) > CHANGED_LEVELS
    grown = np.stack([cv2.dilate(m.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0 for m in masks])
    return changed & ~grown


def lookalike_psnr(pred: np.ndarray, gt: np.ndarray, like: np.ndarray, anchor: int) -> float:
    """Mean over frames (anchor and frames with < MIN_PIXELS look-alike pixels left out) of the PSNR there."""
    vals = []
    for t in range(len(pred)):
        if t == anchor or like[t].sum() < MIN_PIXELS:
            continue
        d = pred[t].astype(np.float64)[like[t]] - gt[t][like[t]]
        vals.append(10 * np.log10(255**2 / max(float((d**2).mean()), 1e-10)))
    return float(np.mean(vals)) if vals else float("nan")


def main(argv: list[str] | None = None) -> int:
    from z2h.eval.data import load_video
    from z2h.eval.seen_unseen import select
    from z2h.io import read_frames

    bench, results, methods, videos = select(argv, __doc__.splitlines()[0], "distractor")
    print("| method | video | look-alike PSNR ↑ |")
    print("|---|---|---|")
    for v in videos:
        vid = load_video(bench, v, with_flow=False)
        like = lookalike_masks(vid.original, vid.reference, vid.masks, vid.anchor)
        for m in methods:
            folder = results / m / v
            if folder.is_dir():
                score = lookalike_psnr(read_frames(folder), vid.edited, like, vid.anchor)
                print(f"| {m} | {v} | {score:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
