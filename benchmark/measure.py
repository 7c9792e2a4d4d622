"""Measure render engines on a spec: seconds per frame and edit leakage (run with bpy).

    .venv-blender/bin/python -m z2h.benchmark.measure scenes/glossy_metal.toml --frames 4

Prints one JSON line per configuration; the README's engine table comes from it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

CONFIGS = {
    "workbench": dict(engine="workbench", samples=1),
    "eevee-1": dict(engine="eevee", samples=1),
    "eevee-16": dict(engine="eevee", samples=16),
    "cycles-16": dict(engine="cycles", samples=16),
    "cycles-16-full-light": dict(engine="cycles", samples=16, isolate=False),
    "cycles-16-denoise": dict(engine="cycles", samples=16, denoise=True),
    "cycles-64": dict(engine="cycles", samples=64),
}


def measure(spec_path: str, frames: int, resolution: int, configs: list[str], threads: int = 0) -> list[dict]:
    import bpy

    from .render import render_pair
    from .scene import build_scene
    from .spec import load_spec, retime

    results = []
    for name in configs:
        spec = retime(load_spec(spec_path), frames)
        spec.resolution = (resolution, resolution)
        bpy.ops.wm.read_factory_settings(use_empty=True)
        scene, obj = build_scene(spec, bpy.context.scene)
        stamps: list[float] = []
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            meta = render_pair(
                scene,
                obj,
                spec.edit,
                Path(tmp) / spec.name,
                threads=threads,
                progress=lambda d, t, s=stamps: s.append(time.perf_counter()),
                **CONFIGS[name],
            )
        total = time.perf_counter() - t0
        # Steps 1..T are the original frames; the first one carries the engine's start-up cost.
        per_frame = [b - a for a, b in zip(stamps[: frames - 1], stamps[1:frames], strict=True)]
        sec = statistics.median(per_frame)
        results.append(
            {
                "config": name,
                "spec": spec.name,
                "resolution": resolution,
                "frames": frames,
                "sec_per_frame": round(sec, 3),
                "frames_per_sec": round(1 / sec, 2),
                "first_frame_sec": round(stamps[0] - t0, 2),
                "total_sec": round(total, 1),
                "leakage": meta["leakage"],
            }
        )
        print(json.dumps(results[-1]), flush=True)
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("spec")
    p.add_argument("--frames", type=int, default=4)
    p.add_argument("--resolution", type=int, default=256)
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args()
    measure(a.spec, a.frames, a.resolution, a.configs, a.threads)


if __name__ == "__main__":
    main()
