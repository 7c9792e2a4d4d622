"""Seconds the offline Zero-Stage takes for a 48-frame 256×256 video (goal: under a minute on 2 cores).

The video is a textured photo panning by 2 px per frame with a recoloured reference; the VGG16 weights
are the real ones (`z2h weights fetch` first). Variants run side by side in one process, so their ratio
holds even when the machine is shared (absolute seconds do not).

    .venv/bin/python perf/zero_speed.py [--frames 48] [--size 256] [--variants default,full-dim,k4]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from z2h.zero_stage import ZeroStage, ZeroStageConfig

VARIANTS = {
    "default": {},
    "full-dim": {"feature_dim": None},  # correlation over all 768 VGG channels
    "k4": {"k": 4},
    "relu3_3": {"layers": ("relu3_3",)},
}


def video(frames: int, size: int) -> np.ndarray:
    from skimage import data

    img = np.tile(data.astronaut(), (2, 2, 1))  # room to pan
    return np.stack([img[2 * t: 2 * t + size, 3 * t: 3 * t + size] for t in range(frames)])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=48)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--variants", default="default,full-dim")
    a = p.parse_args()
    frames = video(a.frames, a.size)
    reference = frames[0][..., ::-1].copy()
    print(f"{a.frames} frames {a.size}x{a.size}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    for name in a.variants.split(","):
        stage = ZeroStage(ZeroStageConfig(**VARIANTS[name]))
        stage(frames[:2], 0, reference)  # load weights, warm up
        t0 = time.perf_counter()
        stage(frames, 0, reference)
        s = time.perf_counter() - t0
        print(f"{name:>10}: {s:6.1f} s  ({s / a.frames:.3f} s/frame)", flush=True)


if __name__ == "__main__":
    main()
