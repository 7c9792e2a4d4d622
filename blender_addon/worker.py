"""The background render worker: ``blender --background --python worker.py -- job.json`` (or
``python worker.py job.json`` with the bpy module). Started by :mod:`.background`; not imported by the UI.

It opens the saved copy of the scene named in the job and renders one of two tasks, printing a
progress JSON line after every image (the contract of docs/architecture.md, "Progress JSON lines"):

- ``"frames"``: the original frames of a z2h edit into ``out`` (then the cache stamp), and with
  ``reference`` the anchor frame with the object recoloured (or as it is, to paint on);
- ``"pair"``: a benchmark video (original, edited, mask, meta.json) and the benchmark's manifest.

Exit codes: 0 done, 1 error (an ``error`` event says why). A SIGTERM from Cancel ends it at once;
its frames go to a ``.partial`` folder or temporary names, so nothing half-done looks finished.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import os
import shutil
import sys
import traceback
from pathlib import Path


def emit(event: str, **fields) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def import_addon(package: str, folder: str):
    """The add-on package, under its own name when importable, else loaded from its folder."""
    try:
        return importlib.import_module(package)
    except ImportError:
        pass
    spec = importlib.util.spec_from_file_location("z2h_worker_addon", Path(folder) / "__init__.py",
                                                  submodule_search_locations=[folder])
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def show_only_footage(addon, scene, footage: dict) -> None:
    """Make the Video Sequencer show only the footage (this is the worker's copy of the scene): the
    named strip, or a new strip of the named Movie Clip; every other strip is muted."""
    import bpy

    compat = addon.bench.module("blender_compat")
    editor = scene.sequence_editor or scene.sequence_editor_create()
    name = footage.get("strip", "")
    if footage["kind"] == "clip":
        channel = max((s.channel for s in compat.strips(editor)), default=0) + 1
        clip = bpy.data.movieclips[footage["clip"]]
        name = compat.strips(editor).new_clip("z2h footage", clip, channel, footage["frame_start"]).name
    for strip in compat.all_strips(editor):
        strip.mute = strip.name != name


def render_frames(addon, scene, job: dict) -> None:
    rendering = importlib.import_module(".rendering", addon.__name__)
    spec = addon.bench.module("spec")
    frames = list(range(job["frames"][0], job["frames"][1] + 1))
    ref = job.get("reference")
    total = (len(frames) if job.get("render_original", True) else 0) + (ref is not None)
    footage = job.get("footage")
    if footage:
        show_only_footage(addon, scene, footage)
    args = (tuple(job["resolution"]), job["engine"], job["samples"], bool(footage))
    if job.get("render_original", True):
        for done in rendering.render_steps(scene, job["out"], frames, *args):
            emit("progress", stage="render", step=done, total=total, message=f"frame {frames[done - 1]}")
        rendering.write_stamp(job["out"], job["stamp"])
    if ref is not None:  # the anchor frame, recoloured (no "edit": as it is, for painting)
        edited = contextlib.nullcontext()
        if ref.get("edit") is not None:
            edited = rendering.edited_object(scene.objects[ref["object"]], spec.edit_from_dict(ref["edit"]))
        with rendering.overridden(scene, rendering.render_settings(scene, *args)), edited:
            rendering.render_frame(scene, ref["frame"], Path(ref["path"]))
        emit("progress", stage="render", step=total, total=total, message="reference")


def render_pair(addon, scene, job: dict) -> None:
    render, manifest = addon.bench.module("render"), addon.bench.module("manifest")
    out = Path(job["out"])
    tmp = out.with_name(out.name + ".partial")  # an existing video stays until this one is complete
    shutil.rmtree(tmp, ignore_errors=True)
    render.render_pair(
        scene, job["object"], job["edit"], tmp, frame_start=job["frames"][0],
        frame_end=job["frames"][1], resolution=tuple(job["resolution"]), engine=job["engine"],
        samples=job["samples"], anchor=job["anchor"],
        progress=lambda done, total: emit("progress", stage="render", step=done, total=total, message=""))
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    manifest.write_manifest(Path(job["bench"]), job["settings"])


def main(argv: list[str]) -> int:
    job = json.loads(Path(argv[-1]).read_text())
    try:
        import bpy

        addon = import_addon(job["package"], job["package_dir"])
        bpy.ops.wm.open_mainfile(filepath=job["blend"], load_ui=False)
        scene = bpy.data.scenes[job["scene"]]
        {"frames": render_frames, "pair": render_pair}[job["kind"]](addon, scene, job)
    except Exception as exc:  # the add-on shows the message; the log keeps the traceback
        traceback.print_exc()
        emit("error", message=f"{type(exc).__name__}: {exc}")
        return 1
    emit("done", out=job.get("out", ""), partial=False)
    return 0


if __name__ == "__main__":
    # In Blender the job file follows "--"; with the bpy module it is the only argument.
    sys.exit(main(sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]))
