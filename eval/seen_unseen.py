"""Masked PSNR split by whether the edited surface was visible in the anchor (ground-truth motion).

A texture edit is fully determined only on surface the anchor showed; surface that turns into view later
must be invented. A pixel of frame t inside the edit mask counts as SEEN when the ground-truth flows,
chained back to the anchor, land inside the anchor's mask AND the anchor's own flow, chained forward from
there, comes back to within 1.5 px of it (the anchor saw that surface point, not something in front of
it). Everything else in the mask is UNSEEN.

    python -m z2h.eval.seen_unseen BENCH RESULTS [--methods a,b] [--videos x,y | --tag texture_edit]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

BACK_TOLERANCE = 1.5  # px


def _sample(field: np.ndarray, pos: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.remap(np.ascontiguousarray(field, np.float32), pos[..., 0], pos[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def seen_masks(masks: np.ndarray, forward: np.ndarray, backward: np.ndarray, anchor: int) -> np.ndarray:
    """(T, H, W) bool: mask pixels whose surface the anchor frame showed (see the module docstring)."""
    n, h, w = masks.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    grid = np.stack([xs, ys], -1)
    seen = np.zeros_like(masks)
    seen[anchor] = masks[anchor]
    for t in range(n):
        if t == anchor:
            continue
        pos = grid.copy()
        step = -1 if t > anchor else 1
        for s in range(t, anchor, step):  # frame s -> s+step, towards the anchor
            flow = backward[s - 1] if step == -1 else forward[s]
            pos = pos + _sample(flow, pos)
        inside = (pos[..., 0] >= 0) & (pos[..., 0] <= w - 1) & (pos[..., 1] >= 0) & (pos[..., 1] <= h - 1)
        in_anchor_mask = _sample(masks[anchor].astype(np.float32), pos) > 0.5
        back = pos.copy()  # the anchor's visible surface at pos, carried forward to frame t
        for s in range(anchor, t, -step):
            flow = forward[s] if step == -1 else backward[s - 1]
            back = back + _sample(flow, back)
        close = np.linalg.norm(back - grid, axis=-1) < BACK_TOLERANCE
        seen[t] = masks[t] & inside & in_anchor_mask & close
    return seen


def _psnr(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> float:
    if mask.sum() < 20:
        return float("nan")
    d = pred.astype(np.float64)[mask] - gt[mask]
    return float(10 * np.log10(255**2 / max(float((d**2).mean()), 1e-10)))


def select(argv: list[str] | None, description: str, tag: str) -> tuple[str, Path, list[str], list[str]]:
    """The command line of the per-video report scripts: (bench, results folder, methods, videos)."""
    from z2h.eval.data import list_videos, load_video

    p = argparse.ArgumentParser(description=description)
    p.add_argument("bench")
    p.add_argument("results")
    p.add_argument("--methods", help="default: every method folder in RESULTS")
    p.add_argument("--videos", help="comma-separated (default: videos with --tag)")
    p.add_argument("--tag", default=tag)
    args = p.parse_args(argv)
    results = Path(args.results)
    methods = args.methods.split(",") if args.methods else sorted(
        d.name for d in results.iterdir() if d.is_dir() and not d.name.startswith("."))
    tagged = [v for v in list_videos(args.bench)
              if args.tag in load_video(args.bench, v, with_flow=False).meta["tags"]]
    return args.bench, results, methods, args.videos.split(",") if args.videos else tagged


def main(argv: list[str] | None = None) -> int:
    from z2h.eval.data import load_video
    from z2h.io import read_frames

    bench, results, methods, videos = select(argv, __doc__.splitlines()[0], "texture_edit")
    print("| method | video | seen PSNR-m | unseen PSNR-m | seen share |")
    print("|---|---|---|---|---|")
    for v in videos:
        vid = load_video(bench, v)
        seen = seen_masks(vid.masks, vid.flow.forward, vid.flow.backward, vid.anchor)
        frames = [t for t in range(vid.frames) if t != vid.anchor]
        unseen = vid.masks & ~seen
        share = seen[frames].sum() / max(vid.masks[frames].sum(), 1)
        for m in methods:
            folder = results / m / v
            if not folder.is_dir():
                continue
            out = read_frames(folder)
            s = np.nanmean([_psnr(out[t], vid.edited[t], seen[t]) for t in frames])
            u = np.nanmean([_psnr(out[t], vid.edited[t], unseen[t]) for t in frames])
            print(f"| {m} | {v} | {s:.2f} | {u:.2f} | {share:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
