"""End-to-end time of ``z2h edit`` (offline engine, default settings) on a synthetic video, plus quality.

Builds a T-frame video (a shaded, textured disc that moves and turns over a textured background; the
edit recolours the disc, so the ground truth is exact), runs ``z2h edit`` as a subprocess exactly as a
user would, and prints the stage timings from run.json, the child's CPU time (user + sys; on a shared,
loaded machine this is the fairer figure: wall ≈ CPU / cores when the cores are free) and masked /
full PSNR of the Zero-Stage and the final frames (anchor excluded). Needs `z2h weights fetch`.

    .venv/bin/python perf/edit_speed.py [--frames 48] [--size 256] [-- extra z2h edit args]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def synthetic_video(frames: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(original, edited, masks): a disc moving across ~60% of the frame and turning 90 degrees."""
    import cv2

    rng = np.random.default_rng(seed)
    bg = cv2.resize(rng.uniform(30, 220, (12, 12, 3)).astype(np.float32), (size, size),
                    interpolation=cv2.INTER_CUBIC)
    r = size // 6
    tex = cv2.resize(rng.uniform(0.55, 1.0, (8, 8)).astype(np.float32), (2 * r, 2 * r),
                     interpolation=cv2.INTER_CUBIC)
    disc = cv2.circle(np.zeros((2 * r, 2 * r), np.float32), (r, r), r - 1, 1.0, -1)
    old, new = np.array([200.0, 60, 50]), np.array([60, 110, 220.0])
    out = {"orig": [], "edit": [], "mask": []}
    for t in range(frames):
        s = t / max(frames - 1, 1)
        m = cv2.getRotationMatrix2D((r, r), 90 * s, 1.0)
        m[:, 2] += (size * (0.2 + 0.6 * s) - r, size * (0.5 + 0.2 * np.sin(6 * s)) - r)
        a = cv2.warpAffine(disc, m, (size, size))[..., None]
        shade = cv2.warpAffine(tex, m, (size, size))[..., None]
        noise = rng.normal(0, 3, bg.shape)
        for key, col in (("orig", old), ("edit", new)):
            out[key].append(np.clip(bg * (1 - a) + col * shade * a + noise, 0, 255).round().astype(np.uint8))
        out["mask"].append(a[..., 0] > 0.5)
    return np.stack(out["orig"]), np.stack(out["edit"]), np.stack(out["mask"])


def psnr(pred: np.ndarray, gt: np.ndarray, masks: np.ndarray | None, skip: int) -> float:
    vals = []
    for t in range(len(gt)):
        if t == skip:
            continue
        err = ((pred[t].astype(float) - gt[t].astype(float)) ** 2).mean(-1)
        vals.append(10 * np.log10(255**2 / (err[masks[t]] if masks is not None else err).mean()))
    return float(np.mean(vals))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=48)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--anchor", type=int, default=0)
    p.add_argument("extra", nargs="*", help="extra `z2h edit` arguments (after --)")
    args = p.parse_args()
    from z2h.io import read_frames, write_frames, write_image

    orig, edit, masks = synthetic_video(args.frames, args.size)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_frames(root / "video", orig)
        write_image(root / "ref.png", edit[args.anchor])
        cmd = [sys.executable, "-m", "z2h", "edit", "--video", str(root / "video"),
               "--anchor", str(args.anchor), "--reference", str(root / "ref.png"), "--out", str(root / "out"),
               "--progress", "none", *args.extra]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(cmd, check=True)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        run = json.loads((root / "out" / "run.json").read_text())
        final, zero = read_frames(root / "out" / "frames"), read_frames(root / "out" / "zero")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    report = {
        "frames": args.frames, "size": args.size, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
        "timings": run["timings"], "train": run["train"], "extra_args": args.extra,
        "psnr_masked": {"original": round(psnr(orig, edit, masks, args.anchor), 2),
                        "zero": round(psnr(zero, edit, masks, args.anchor), 2),
                        "z2h": round(psnr(final, edit, masks, args.anchor), 2)},
        "psnr": {"zero": round(psnr(zero, edit, None, args.anchor), 2),
                 "z2h": round(psnr(final, edit, None, args.anchor), 2)},
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
