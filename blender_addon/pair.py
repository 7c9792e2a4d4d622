"""'Render pair' and "Export scene spec": the benchmark panel's work, as plain functions."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import bpy

from . import bench, rendering, spec_export
from .jobs import output_root, video_name
from .preferences import BackendSettings
from .props import frame_range


def _anchor(scene, start: int, end: int) -> int:
    """The current frame as an output index (0 = first rendered frame); 0 when outside the range."""
    return scene.frame_current - start if start <= scene.frame_current <= end else 0


def render_pair(context: bpy.types.Context, settings: BackendSettings, *, overwrite: bool = False,
                progress: Callable[[int, int], None] | None = None) -> Path:
    """Render the active object's benchmark video (original, edited, mask, meta.json) into
    ``<output>/bench/<video name>`` with the benchmark builder's own code, then (re)write the
    benchmark's manifest.json. Returns the video folder."""
    scene, props = context.scene, context.scene.z2h
    obj = context.view_layer.objects.active
    if obj is None:
        raise ValueError("select the object to edit (make it the active object)")
    start, end = frame_range(scene)
    bench_dir = output_root(scene, settings) / "bench"
    out = bench_dir / video_name(scene, obj)
    if (out / "meta.json").exists() and not overwrite:
        raise FileExistsError(f"{out} already holds a rendered video: change the video name or overwrite")
    resolution = (props.resolution_x, props.resolution_y)
    bench.module("render").render_pair(
        scene, obj.name, rendering.make_edit(obj, props), out, frame_start=start, frame_end=end,
        resolution=resolution, engine=props.engine, samples=props.samples, anchor=_anchor(scene, start, end),
        progress=progress)
    bench.module("manifest").write_manifest(
        bench_dir, {"resolution": list(resolution), "engine": props.engine, "samples": props.samples,
                    "source": "blender-addon"})
    return out


def export_spec(context: bpy.types.Context, path: str | Path) -> tuple[Path, list[str]]:
    """Write the scene and the sidebar's edit as a spec file; returns (path, approximation warnings)."""
    scene, props = context.scene, context.scene.z2h
    obj = context.view_layer.objects.active
    if obj is None:
        raise ValueError("select the object to edit (make it the active object)")
    start, end = frame_range(scene)
    spec, warnings = spec_export.spec_from_scene(
        scene, rendering.make_edit(obj, props), frame_start=start, frame_end=end,
        resolution=(props.resolution_x, props.resolution_y), name=video_name(scene, obj),
        anchor=_anchor(scene, start, end))
    return spec_export.write_spec(spec, warnings, path, source=bpy.data.filepath), warnings
