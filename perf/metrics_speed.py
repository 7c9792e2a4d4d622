"""Time per frame of our batched PSNR / SSIM / LPIPS against scikit-image and ``lpips`` frame by frame.

Both sides run in this one process on the same frames, interleaved, several repeats (median and
minimum), so the ratios hold even on a loaded machine. Needs the offline weights (``z2h weights fetch``).

    .venv/bin/python perf/metrics_speed.py --frames 24 --size 256
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def make_frames(n: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A moving crop of the astronaut as ground truth, a noisy, shifted copy as prediction, and masks."""
    from PIL import Image
    from skimage import data

    big = Image.fromarray(data.astronaut()).resize((size * 2, size * 2), Image.Resampling.BILINEAR)
    big = np.asarray(big)
    gt = np.stack([big[i * 3 : i * 3 + size, i * 2 : i * 2 + size] for i in range(n)])
    rng = np.random.default_rng(0)
    pred = np.clip(np.roll(gt, 2, axis=2) + rng.normal(0, 8, gt.shape), 0, 255).astype(np.uint8)
    masks = np.zeros(gt.shape[:3], bool)
    masks[:, size // 4 : 3 * size // 4, size // 3 : 2 * size // 3] = True
    return pred, gt, masks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()

    import torch
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    from z2h.eval import metrics
    from z2h.eval.lpips_net import lpips_distance, lpips_model

    pred, gt, masks = make_frames(args.frames, args.size)
    model = lpips_model("alex")
    x0, x1 = metrics._to_tensor(pred), metrics._to_tensor(gt)
    bs = args.batch_size

    def ours_lpips():
        for s in range(0, len(gt), bs):
            lpips_distance(model, x0[s : s + bs], x1[s : s + bs])

    def ref_lpips():
        with torch.no_grad():
            for i in range(len(gt)):
                model(x0[i : i + 1], x1[i : i + 1])

    cases = {
        "PSNR": (
            lambda: metrics.psnr(pred, gt),
            lambda: [peak_signal_noise_ratio(g, p, data_range=255) for p, g in zip(pred, gt, strict=True)],
        ),
        "SSIM": (
            lambda: metrics.ssim(pred, gt),
            lambda: [
                structural_similarity(p, g, channel_axis=-1, data_range=255)
                for p, g in zip(pred, gt, strict=True)
            ],
        ),
        "LPIPS alex": (ours_lpips, ref_lpips),
        "all: frame_metrics (full+masked) vs skimage+lpips (full only)": (
            lambda: metrics.frame_metrics(pred, gt, masks, batch_size=bs),
            lambda: (cases["PSNR"][1](), cases["SSIM"][1](), ref_lpips()),
        ),
    }
    ours_lpips(), ref_lpips()  # warm-up (allocator, oneDNN kernels)
    print(
        f"{args.frames} frames {args.size}×{args.size}, LPIPS batch {bs}, torch threads "
        f"{torch.get_num_threads()}, {args.repeats} interleaved repeats, ms per frame (median; min)"
    )
    print(f"{'metric':<64} {'ours':>15} {'reference':>15} {'ref/ours':>13}")
    for name, (ours, ref) in cases.items():
        times: dict[str, list[float]] = {"ours": [], "ref": []}
        for _ in range(args.repeats):
            for side, fn in (("ours", ours), ("ref", ref)):
                start = time.perf_counter()
                fn()
                times[side].append(time.perf_counter() - start)
        o, r = (statistics.median(times[k]) * 1000 / args.frames for k in ("ours", "ref"))
        o_min, r_min = (min(times[k]) * 1000 / args.frames for k in ("ours", "ref"))
        print(f"{name:<64} {o:7.2f};{o_min:7.2f} {r:7.2f};{r_min:7.2f} {r / o:5.2f}x;{r_min / o_min:5.2f}x")


if __name__ == "__main__":
    main()
