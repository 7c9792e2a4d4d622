"""Time per frame and quality of the offline Zero-Stage against the fast alternatives a user has.

The video is perf/edit_speed.py's synthetic one (a shaded, textured disc moving and turning over a
textured background, recoloured in the edit), so every frame's ground truth and mask are exact. Sides:
our Zero-Stage (default settings, and any ``--variants``), and the baselines a user would run instead:
the colour map (colormap) and direct DIS flow warping (flow-dis-direct). Each side is warmed up on a
2-frame clip, then timed ``--repeats`` times on the whole video, interleaved; median (min–max) per frame,
and masked / full PSNR against the truth (anchor excluded). Needs the VGG16 weights (`z2h weights fetch`).

    .venv/bin/python perf/zero_speed.py [--frames 48] [--size 256] [--variants full-dim,k4] [--md out.md]
"""

from __future__ import annotations

import argparse

from edit_speed import psnr, synthetic_video
from timing import add_common, markdown, report, samples, setup_line, spread

VARIANTS = {
    "full-dim": {"feature_dim": None},  # correlation over all 768 VGG channels
    "k4": {"k": 4},
    "relu3_3": {"layers": ("relu3_3",)},
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=48)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--variants", default="", help=f"extra Zero-Stage variants: {', '.join(VARIANTS)}")
    p.add_argument("--repeats", type=int, default=3)
    add_common(p)
    a = p.parse_args()
    if a.quick:
        a.frames, a.size, a.repeats = 3, 64, 2
    from z2h.eval.methods import get_method
    from z2h.zero_stage import ZeroStage, ZeroStageConfig

    frames, truth, masks = synthetic_video(a.frames, a.size)
    reference = truth[0]
    work = {"work_size": 64} if a.quick else {}
    sides = {"z2h-zero (ours)": ZeroStage(ZeroStageConfig(**work))}
    for name in filter(None, a.variants.split(",")):
        sides[f"z2h-zero {name} (ours)"] = ZeroStage(ZeroStageConfig(**VARIANTS[name], **work))
    sides["colormap (reference)"] = get_method("colormap")
    sides["flow-dis-direct (reference)"] = get_method("flow-dis-direct")
    for fn in sides.values():  # warm-up: weights, kernels, allocator
        fn(frames[:2], 0, reference)
    outputs = {}

    def call(name):
        return lambda: outputs.__setitem__(name, sides[name](frames, 0, reference))

    t = samples({name: call(name) for name in sides}, a.repeats, warmup=False)
    rows = [[name, spread(t[name], 1 / a.frames, 4), f"{psnr(outputs[name], truth, masks, 0):.2f}",
             f"{psnr(outputs[name], truth, None, 0):.2f}"] for name in sides]
    table = markdown(["method", "s/frame", "masked PSNR", "PSNR"], rows)
    command = f"perf/zero_speed.py --frames {a.frames} --size {a.size} --repeats {a.repeats}" + (
        f" --variants {a.variants}" if a.variants else "")
    setup = (f"{a.frames} frames {a.size}², anchor 0 excluded from PSNR; each side warmed up on a 2-frame "
             "clip. " + setup_line(command, a.repeats))
    report(a, "Zero-Stage vs the colour-map and DIS-flow baselines", table, setup)


if __name__ == "__main__":
    main()
