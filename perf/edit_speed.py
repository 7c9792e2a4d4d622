"""End-to-end time and quality of ``z2h edit`` (offline engine, default settings) against the baselines.

Builds a T-frame video (a shaded, textured disc that moves and turns over a textured background; the
edit recolours the disc, so the ground truth is exact) and runs ``z2h edit`` as a subprocess exactly as
a user would: one untimed warm-up run (fills the file cache: weights, modules), then ``--repeats`` timed
runs. The reference side is what a user would run instead on the same video, in this process: the colour
map (colormap) and direct DIS flow warping (flow-dis-direct), each warmed up, then timed ``--repeats``
times. Prints s/frame median (min–max), masked / full PSNR (anchor excluded) of z2h, of its Zero-Stage
output and of each baseline, and the stage timings of the last z2h run. Needs `z2h weights fetch`.

    .venv/bin/python perf/edit_speed.py [--frames 48] [--size 256] [--repeats 2] [--md out.md] [-- EDIT_ARGS]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from timing import add_common, markdown, report, samples, setup_line, spread


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
    p.add_argument("--repeats", type=int, default=2)
    add_common(p)
    p.add_argument("extra", nargs="*", help="extra `z2h edit` arguments (after --)")
    args = p.parse_args()
    if args.quick:
        args.frames, args.size, args.repeats = 3, 64, 1
        args.extra = ["--steps", "5", "--pseudo-pairs", "1", "--work-size", "64", *args.extra]
    from z2h.eval.methods import get_method
    from z2h.io import read_frames, write_frames, write_image

    orig, edit, masks = synthetic_video(args.frames, args.size)
    a = args.anchor
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_frames(root / "video", orig)
        write_image(root / "ref.png", edit[a])

        def run_edit() -> None:
            cmd = [sys.executable, "-m", "z2h", "edit", "--video", str(root / "video"), "--anchor", str(a),
                   "--reference", str(root / "ref.png"), "--out", str(root / "out"), "--progress", "none",
                   "--overwrite", *args.extra]
            subprocess.run(cmd, check=True)

        t = samples({"z2h": run_edit}, args.repeats, warmup=not args.quick)["z2h"]
        run = json.loads((root / "out" / "run.json").read_text())
        final, zero = read_frames(root / "out" / "frames"), read_frames(root / "out" / "zero")
    quality = {"z2h edit (ours)": final, "its Zero-Stage output": zero}
    rows.append(["z2h edit (ours)", spread(t, 1 / args.frames, 3), f"{np.median(t):.1f}"])
    rows.append(["its Zero-Stage output", "–", "–"])
    refs = {name: get_method(name) for name in ("colormap", "flow-dis-direct")}
    outputs: dict[str, np.ndarray] = {}

    def call(name):
        return lambda: outputs.__setitem__(name, refs[name](orig, a, edit[a]))

    tr = samples({name: call(name) for name in refs}, args.repeats)
    for name in refs:
        per_frame = spread(tr[name], 1 / args.frames, 4)
        rows.append([f"{name} (reference)", per_frame, f"{np.median(tr[name]):.1f}"])
        quality[f"{name} (reference)"] = outputs[name]
    for row in rows:
        pred = quality[row[0]]
        row += [f"{psnr(pred, edit, masks, a):.2f}", f"{psnr(pred, edit, None, a):.2f}"]
    rows.append(["original video (no edit)", "–", "–", f"{psnr(orig, edit, masks, a):.2f}",
                 f"{psnr(orig, edit, None, a):.2f}"])
    table = markdown(["method", "s/frame", "wall s", "masked PSNR", "PSNR"], rows)
    stages = ", ".join(f"{k} {v} s" for k, v in run["timings"].items())
    train = run.get("train", {})
    command = f"perf/edit_speed.py --frames {args.frames} --size {args.size} --repeats {args.repeats}" + (
        f" -- {' '.join(args.extra)}" if args.extra else "")
    setup = (f"{args.frames} frames {args.size}², anchor {a}. Stages of the last z2h run: {stages}; "
             f"Hero-Stage {train.get('steps')} steps, budget hit: {train.get('budget_hit')}. "
             + setup_line(command, args.repeats))
    report(args, "z2h edit end to end vs the colour-map and DIS-flow baselines", table, setup)
    print(json.dumps({"timings": run["timings"], "train": train}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
