"""Blender-side worker: renders one spec into BENCH/<name>/. Started by build.py as

    python worker.py -- --spec S --out BENCH [options]                 (bpy as a module)
    blender -b --factory-startup --python worker.py -- --spec S ...   (a Blender binary)

It reports on stdout with lines that start with ``Z2H `` followed by JSON, which build.py parses
(Blender prints its own chatter there too): ``{"event": "progress", "video", "step", "total"}``,
``{"event": "done", "video", "seconds"}`` or ``{"event": "error", "video", "message"}``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import traceback
from pathlib import Path

PREFIX = "Z2H "


def _package():
    """This folder as a package, whatever it is called (benchmark/, or inside the add-on zip)."""
    here = Path(__file__).resolve().parent
    sys.path.insert(0, str(here.parent))
    return here.name


def _emit(**event) -> None:
    print(PREFIX + json.dumps(event), flush=True)


def parse_event(line: str) -> dict | None:
    """The event a worker output ``line`` carries (see :func:`_emit`), or None for any other line."""
    if line.startswith(PREFIX):
        try:
            return json.loads(line[len(PREFIX) :])
        except json.JSONDecodeError:
            pass
    return None


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="worker.py")
    p.add_argument("--spec", required=True)
    p.add_argument("--out", required=True, help="benchmark folder; the video goes to OUT/<spec name>")
    p.add_argument("--resolution", type=int, nargs="+")
    p.add_argument("--frames", type=int)
    p.add_argument("--engine", default="cycles")
    p.add_argument("--samples", type=int, default=16)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--flow", action="store_true")
    p.add_argument("--full-light", action="store_true", help="keep the edited object in indirect light")
    p.add_argument("--denoise", action="store_true")
    p.add_argument("--resume", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv[argv.index("--") + 1 :] if "--" in argv else argv[1:])
    pkg = _package()
    spec_mod = importlib.import_module(f"{pkg}.spec")
    name = Path(args.spec).stem
    t0 = time.time()
    try:
        spec = spec_mod.load_spec(args.spec)
        name = spec.name
        spec = spec_mod.effective_spec(spec, args.frames, args.resolution)
        import bpy

        scene_mod = importlib.import_module(f"{pkg}.scene")
        render_mod = importlib.import_module(f"{pkg}.render")
        bpy.ops.wm.read_factory_settings(use_empty=True)
        scene, obj = scene_mod.build_scene(spec, bpy.context.scene)

        def progress(done: int, total: int) -> None:
            _emit(event="progress", video=name, step=done, total=total)

        render_mod.render_pair(
            scene,
            obj,
            spec.edit,
            Path(args.out) / spec.name,
            resolution=spec.resolution,
            engine=args.engine,
            samples=args.samples,
            anchor=spec.anchor,
            isolate=not args.full_light,
            denoise=args.denoise,
            flow=args.flow,
            resume=args.resume,
            threads=args.threads,
            meta_extra={"name": spec.name, "spec": Path(args.spec).name, "tags": spec.tags},
            progress=progress,
            # a fresh empty scene: Blender kept the spec's object names
            more_edits=[(e.object, e) for e in spec.more_edits],
        )
    except Exception as e:  # report, do not die silently: build.py shows the message
        traceback.print_exc()
        _emit(event="error", video=name, message=f"{type(e).__name__}: {e}")
        return 1
    _emit(event="done", video=name, seconds=round(time.time() - t0, 2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
