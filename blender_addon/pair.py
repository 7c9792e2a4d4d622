"""Render Pair (in the background) and Export Scene Spec: the benchmark panel's work as plain functions."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import bpy

from . import background, jobs, rendering, spec_export
from .jobs import Run, output_root, video_name
from .preferences import BackendSettings
from .props import frame_range, render_options


def _anchor(scene, start: int, end: int) -> int:
    """The current frame as an output index (0 = first rendered frame); 0 when outside the range."""
    return scene.frame_current - start if start <= scene.frame_current <= end else 0


def pair_folder(context: bpy.types.Context, settings: BackendSettings) -> Path:
    """Where Render Pair writes the active object's video: ``<output>/bench/<video name>``."""
    scene = context.scene
    return output_root(scene, settings) / "bench" / video_name(scene, context.view_layer.objects.active)


def existing_pair(context: bpy.types.Context, settings: BackendSettings) -> Path | None:
    """The video folder Render Pair would replace, if it holds a finished video."""
    out = pair_folder(context, settings)
    return out if (out / "meta.json").exists() else None


def begin_pair(context: bpy.types.Context, settings: BackendSettings, *, overwrite: bool = False) -> Run:
    """Start rendering the active object's benchmark video (original, edited, mask, meta.json) in the
    background with the benchmark builder's own code, then (re)writing the benchmark's manifest.json.
    The video renders into ``<name>.partial`` and replaces an existing one only when complete, so a
    cancelled overwrite keeps the old video. Returns the :class:`Run` (see :mod:`.jobs`)."""
    if jobs.busy():
        raise ValueError("a z2h task is already running: cancel it first")
    scene, props = context.scene, context.scene.z2h
    obj = context.view_layer.objects.active
    if obj is None:
        raise ValueError("select the object to edit (make it the active object)")
    start, end = frame_range(scene)
    out = pair_folder(context, settings)
    if (out / "meta.json").exists() and not overwrite:
        raise FileExistsError(f"{out} already holds a rendered video: change the video name, or press "
                              f"'Overwrite {out.name}'")
    resolution, engine, samples = render_options(scene)
    resolution = list(resolution)
    edit = {k: v for k, v in dataclasses.asdict(rendering.make_edit(obj, props)).items() if v is not None}
    task = {"kind": "pair", "object": obj.name, "edit": edit, "out": str(out), "bench": str(out.parent),
            "frames": [start, end], "resolution": resolution, "engine": engine,
            "samples": samples, "anchor": _anchor(scene, start, end),
            "settings": {"resolution": resolution, "engine": engine, "samples": samples,
                         "source": "blender-addon"}}
    work = Path(settings.cache_dir) / "pairs" / out.name
    run = jobs.Run("pair", background.start(scene, work / "worker", task, work / "render.log"),
                   render_share=1.0, unit="image", run_dir=out)
    jobs._active.clear()
    jobs._active.update(run=run, scene=scene.name)
    props.job_status, props.job_stage, props.job_progress, props.job_message = "running", "Starting", 0.0, ""
    props.job_log, props.job_eta, props.job_tail = "", -1.0, ""
    return run


def finish_pair(scene: bpy.types.Scene, state) -> tuple[str, str]:
    """Collect a finished Render Pair run. Returns (report type, message)."""
    run = jobs._active.get("run")
    jobs._active.clear()
    if state.status == "done" and run is not None:
        return "INFO", f"Benchmark video written to {run.run_dir}"
    if state.status == "cancelled":
        return "WARNING", "Render pair: cancelled (an existing video was kept)"
    return "ERROR", f"Render pair: {state.message}"


def export_spec(context: bpy.types.Context, path: str | Path) -> tuple[Path, list[str]]:
    """Write the scene and the sidebar's edit as a spec file; returns (path, approximation warnings)."""
    scene, props = context.scene, context.scene.z2h
    obj = context.view_layer.objects.active
    if obj is None:
        raise ValueError("select the object to edit (make it the active object)")
    start, end = frame_range(scene)
    spec, warnings = spec_export.spec_from_scene(
        scene, rendering.make_edit(obj, props), frame_start=start, frame_end=end,
        resolution=render_options(scene)[0], name=video_name(scene, obj),
        anchor=_anchor(scene, start, end))
    return spec_export.write_spec(spec, warnings, path, source=bpy.data.filepath), warnings
