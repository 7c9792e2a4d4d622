"""Time per frame of our batched PSNR / SSIM / LPIPS against scikit-image and ``lpips`` frame by frame.

Both sides run in this one process on the same frames: one untimed warm-up call of each, then
interleaved repeats; medians and ranges (perf/timing.py), so the ratios hold better on a loaded machine
than absolute times do. Needs the offline weights (``z2h weights fetch``) unless ``--no-lpips``.

    .venv/bin/python perf/metrics_speed.py [--frames 24] [--size 256] [--repeats 5] [--md out.md]
"""

from __future__ import annotations

import argparse

import numpy as np
from timing import add_common, markdown, ratio, report, samples, setup_line, spread


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
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--no-lpips", action="store_true", help="PSNR and SSIM only (no weights needed)")
    add_common(parser)
    args = parser.parse_args()
    if args.quick:
        args.frames, args.size, args.repeats = 3, 64, 2

    import torch
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    from z2h.eval import metrics

    pred, gt, masks = make_frames(args.frames, args.size)
    bs = args.batch_size

    def ref_psnr():
        return [peak_signal_noise_ratio(g, p, data_range=255) for p, g in zip(pred, gt, strict=True)]

    def ref_ssim():
        return [structural_similarity(p, g, channel_axis=-1, data_range=255)
                for p, g in zip(pred, gt, strict=True)]

    cases = {"PSNR": (lambda: metrics.psnr(pred, gt), ref_psnr),
             "SSIM": (lambda: metrics.ssim(pred, gt), ref_ssim)}
    if not args.no_lpips:
        from z2h.eval.lpips_net import lpips_distance, lpips_model

        model = lpips_model("alex")
        x0, x1 = metrics._to_tensor(pred), metrics._to_tensor(gt)

        def ours_lpips():
            for s in range(0, len(gt), bs):
                lpips_distance(model, x0[s : s + bs], x1[s : s + bs])

        def ref_lpips():  # the lpips package's own forward, one frame at a time
            with torch.no_grad():
                for i in range(len(gt)):
                    model(x0[i : i + 1], x1[i : i + 1])

        cases["LPIPS alex (ours: distance + map from one pass)"] = (ours_lpips, ref_lpips)
        cases["all: frame_metrics (full + masked) vs skimage + lpips (full only)"] = (
            lambda: metrics.frame_metrics(pred, gt, masks, batch_size=bs),
            lambda: (ref_psnr(), ref_ssim(), ref_lpips()))
    rows = []
    for name, (ours, ref) in cases.items():
        t = samples({"ours": ours, "ref": ref}, args.repeats)
        per_frame = 1000 / args.frames
        rows.append([name, spread(t["ours"], per_frame, 2), spread(t["ref"], per_frame, 2),
                     ratio(t["ref"], t["ours"])])
        print(f"{name}: done", flush=True)
    table = markdown(["metric", "ours ms/frame", "reference ms/frame", "speed-up (ref/ours)"], rows)
    command = (f"perf/metrics_speed.py --frames {args.frames} --size {args.size} --repeats {args.repeats}"
               + (" --no-lpips" if args.no_lpips else ""))
    setup = (f"{args.frames} frames {args.size}², LPIPS batch {bs}; reference: scikit-image and the lpips "
             "package frame by frame. " + setup_line(command, args.repeats))
    report(args, "Metrics: our batched toolkit vs scikit-image and lpips", table, setup)


if __name__ == "__main__":
    main()
