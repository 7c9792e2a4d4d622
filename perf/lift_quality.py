"""Masked PSNR of z2h at 512² against the same scenes rendered at 1024² (edited at 512, lifted to 1024).

Inputs: the same specs built at both sizes (`z2h bench build SPEC --resolution 512|1024`) and `z2h eval run`
results of the method ``z2h``: at 512 (full size) and at 1024 with ``work_resolution=512`` for each lift.
Adds one more row computed here: the 512 result's PIXELS upsampled (bicubic) to 1024, what lifting without
the original's detail gives. Masked PSNR (RGB, over the ground-truth mask, anchor excluded) is computed here
the same way for every row, from the frames on disk.

    .venv/bin/python perf/lift_quality.py --bench512 B512 --bench1024 B1024 --results512 R512 \
        --results1024 guided=RG bilinear=RB [--videos camera_orbit]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def masked_psnr(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    err = ((pred.astype(np.float64) - truth.astype(np.float64)) ** 2).mean(-1)[mask].mean()
    return float(10 * np.log10(255**2 / max(err, 1e-12)))


def video_scores(frames_dir: Path, bench: Path, video: str, upsample_to: int | None = None) -> list[float]:
    import cv2

    from z2h.io import read_image, read_mask

    meta = json.loads((bench / video / "meta.json").read_text())
    scores = []
    for t in range(meta["frames"]):
        if t == meta["anchor"]:
            continue
        pred = read_image(frames_dir / f"{t:04d}.png")
        if upsample_to:
            pred = cv2.resize(pred, (upsample_to, upsample_to), interpolation=cv2.INTER_CUBIC)
        truth = read_image(bench / video / "edited" / f"{t:04d}.png")
        mask = read_mask(bench / video / "mask" / f"{t:04d}.png")
        scores.append(masked_psnr(pred, truth, mask))
    return scores


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bench512", type=Path, required=True)
    p.add_argument("--bench1024", type=Path, required=True)
    p.add_argument("--results512", type=Path, required=True)
    p.add_argument("--results1024", nargs="+", required=True, metavar="LIFT=RESULTS")
    p.add_argument("--videos", help="comma-separated (default: those in --bench1024)")
    a = p.parse_args()
    videos = a.videos.split(",") if a.videos else [
        v["name"] for v in json.loads((a.bench1024 / "manifest.json").read_text())["videos"]]
    rows = [("512² (z2h at full size)", a.results512 / "z2h", a.bench512, None),
            ("1024², 512 result's pixels upsampled (bicubic)", a.results512 / "z2h", a.bench1024, 1024)]
    for item in a.results1024:
        lift, _, folder = item.partition("=")
        rows.append((f"1024², edited at 512, lift={lift}", Path(folder) / "z2h", a.bench1024, None))
    print("| | " + " | ".join(videos) + " |")
    print("|---|" + "---|" * len(videos))
    for label, results, bench, up in rows:
        cells = [f"{np.mean(video_scores(results / v, bench, v, up)):.2f}" for v in videos]
        print(f"| {label} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
