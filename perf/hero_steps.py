"""Quality and cost of the offline Hero-Stage against its number of training steps (no reference side).

This is a sweep, not a race: it is how the fixed default step count was chosen. On perf/edit_speed.py's
synthetic video the Zero-Stage runs once; then, for each step count, a fresh Hero-Stage trains (pseudo
pairs included, 1 torch thread, no time budget) and restores every frame. Reported per step count: the
training's CPU seconds (what an idle machine's wall time would be: one thread), its wall seconds (which
grow with the machine's load), and masked / full PSNR (anchor excluded). Needs `z2h weights fetch`.

    .venv/bin/python perf/hero_steps.py [--frames 24] [--size 256] [--steps 400,800,1200,1600] [--md out.md]
"""

from __future__ import annotations

import argparse
import time

from edit_speed import psnr, synthetic_video
from timing import add_common, markdown, report, setup_line


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=24)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--steps", default="400,800,1200,1600")
    add_common(p)
    a = p.parse_args()
    if a.quick:
        a.frames, a.size, a.steps = 3, 64, "4,8"
    from z2h.hero_stage import HeroConfig, HeroStage
    from z2h.threads import torch_threads
    from z2h.zero_stage import ZeroStage, ZeroStageConfig

    orig, edit, masks = synthetic_video(a.frames, a.size)
    zero_stage = ZeroStage(ZeroStageConfig(**({"work_size": 64} if a.quick else {})))
    with torch_threads(1):
        zero = zero_stage(orig, 0, edit[0])
    rows = [["Zero-Stage only", "–", "–", f"{psnr(zero, edit, masks, 0):.2f}",
             f"{psnr(zero, edit, None, 0):.2f}"]]
    for steps in (int(s) for s in a.steps.split(",")):
        hero = HeroStage(HeroConfig(steps=steps, time_budget_s=None, threads=1))
        cpu, wall = time.process_time(), time.perf_counter()
        stats = hero.fit(zero[0], orig[0], edit[0], zero_stage=zero_stage)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        out = hero.restore(zero, orig)
        out[0] = edit[0]
        rows.append([f"{stats['steps']} steps", f"{cpu:.1f}", f"{wall:.1f}",
                     f"{psnr(out, edit, masks, 0):.2f}", f"{psnr(out, edit, None, 0):.2f}"])
        print(" | ".join(rows[-1]), flush=True)
    table = markdown(["training", "CPU s", "wall s", "masked PSNR", "PSNR"], rows)
    command = f"perf/hero_steps.py --frames {a.frames} --size {a.size} --steps {a.steps}"
    setup = (f"{a.frames} frames {a.size}², anchor 0; training seconds include the pseudo pairs' Zero-Stage. "
             + setup_line(command, 1, "one run per step count"))
    report(a, "Offline Hero-Stage: quality and cost against training steps", table, setup)


if __name__ == "__main__":
    main()
