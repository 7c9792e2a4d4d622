"""z2h v2 against the release before it: seconds per video and masked PSNR, side by side in one run.

The reference side is the release's pipeline (Zero-Stage + Hero-Stage with pseudo pairs, no fusion:
every FusionConfig addition off); our side is the default (v2: the same stages plus tracking, colour
lookup, flow fusion, direct anchor matches and temporal smoothing). Both run in this process on the same
T-frame synthetic video (perf/edit_speed.py's moving, turning textured disc with an exact ground truth),
each warmed up once, then ``--repeats`` timed runs interleaved. Prints seconds per video median
(min–max), the ratio v2 / release, and masked PSNR.

    .venv/bin/python perf/v2_speed.py [--frames 24] [--size 256] [--repeats 1] [--md out.md]
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import replace

from edit_speed import psnr, synthetic_video
from timing import add_common, markdown, report, samples, setup_line, spread


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=24)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--repeats", type=int, default=1)
    add_common(p)
    args = p.parse_args()
    options: dict = {}
    if args.quick:
        args.frames, args.size, args.repeats = 4, 64, 1
        options = {"work_size": 64, "hero_steps": 20, "pseudo_pairs": 1, "crop": 32}

    from z2h.pipeline import EditConfig, edit

    orig, edited, masks = synthetic_video(args.frames, args.size)
    no_fusion = EditConfig.from_options(preset="paper").fusion  # every v2 addition off
    release = replace(EditConfig.from_options(**options), fusion=no_fusion)
    configs = {"release (no fusion)": release, "v2 (default)": EditConfig.from_options(**options)}
    outputs: dict[str, object] = {}

    def run(name: str):
        def fn():
            outputs[name] = edit(orig, 0, edited[0], configs[name])
        return fn

    times = samples({name: run(name) for name in configs}, args.repeats, warmup=not args.quick)
    ref, ours = times["release (no fusion)"], times["v2 (default)"]
    rows = []
    for name in configs:
        res = outputs[name]
        rows.append([name, spread(times[name], digits=1), f"{psnr(res.frames, edited, masks, 0):.2f}",
                     ", ".join(f"{k} {v:.1f}" for k, v in res.timings.items())])
    rows.append(["(reference) ratio v2 / release", f"{statistics.median(ours) / statistics.median(ref):.2f}×",
                 "", ""])
    table = markdown(["side", f"s per {args.frames}-frame {args.size}² video", "masked PSNR", "stages (s)"],
                     rows)
    report(args, "z2h v2 against the previous release", table,
           setup_line("perf/v2_speed.py", args.repeats))


if __name__ == "__main__":
    main()
