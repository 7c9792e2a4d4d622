"""Rendering the inputs of a z2h edit from the live scene: the original frames and the recoloured anchor.

Render settings are overridden only for the duration of a render and restored afterwards, and an edit
is applied to copies of the object's materials (linked per object, so a mesh shared with a twin keeps
its look), so the user's scene is left as it was.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import bpy

from . import bench


@contextlib.contextmanager
def overridden(scene: bpy.types.Scene, values: Sequence[tuple[str, object]]) -> Iterator[None]:
    """Set dotted attributes of ``scene`` (e.g. ``("render.resolution_x", 64)``) and restore them after."""
    saved = []
    try:
        for path, value in values:
            *owner_path, attr = path.split(".")
            owner = scene
            for part in owner_path:
                owner = getattr(owner, part)
            saved.append((owner, attr, getattr(owner, attr)))
            setattr(owner, attr, value)
        yield
    finally:
        for owner, attr, value in saved:  # forward order: media_type before file_format
            setattr(owner, attr, value)


def render_settings(scene: bpy.types.Scene, resolution: tuple[int, int], engine: str,
                    samples: int, sequencer: bool = False) -> list[tuple[str, object]]:
    """The overrides for an 8-bit RGB PNG render of the 3D scene at ``resolution`` (``sequencer``:
    of the Video Sequencer's output instead, for footage)."""
    compat = bench.module("blender_compat")
    values: list[tuple[str, object]] = [
        ("render.engine", compat.engine_id(engine)),
        ("render.resolution_x", int(resolution[0])),
        ("render.resolution_y", int(resolution[1])),
        ("render.resolution_percentage", 100),
        ("render.use_sequencer", sequencer),  # else strips in this scene would replace the 3D render
    ]
    values += [(f"render.image_settings.{attr}", v) for attr, v in compat.file_format_values("PNG")]
    values += [
        ("render.image_settings.color_mode", "RGB"),
        ("render.image_settings.color_depth", "8"),
        ("render.use_file_extension", True),
    ]
    if engine == "CYCLES":
        values.append(("cycles.samples", int(samples)))
    elif engine == "BLENDER_EEVEE":
        values.append(("eevee.taa_render_samples", int(samples)))
    return values


def render_frame(scene: bpy.types.Scene, frame: int, path: Path) -> None:
    """Render the 3D scene (or the sequencer, when on) at ``frame`` to ``path`` (a .png)."""
    if scene.camera is None and not scene.render.use_sequencer:
        raise ValueError(f"scene {scene.name!r} has no active camera to render from")
    scene.frame_set(frame)
    with overridden(scene, [("render.filepath", str(path.with_suffix("")))]):
        bpy.ops.render.render(write_still=True, scene=scene.name)
    if not path.is_file():
        raise RuntimeError(f"Blender did not write {path}")


def render_steps(scene: bpy.types.Scene, out_dir: str | Path, frames: Sequence[int],
                 resolution: tuple[int, int], engine: str, samples: int,
                 sequencer: bool = False) -> Iterator[int]:
    """Render ``frames`` of the 3D scene as ``out_dir/0000.png ...``, yielding after each frame (so a
    modal operator can keep the UI alive). Between frames the scene's settings and current frame are
    the user's own. Frames go to ``out_dir.partial``, renamed into place when all are done, so an
    interrupted render never looks finished."""
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for i, frame in enumerate(frames):
        current = scene.frame_current
        try:
            with overridden(scene, render_settings(scene, resolution, engine, samples, sequencer)):
                render_frame(scene, frame, tmp / f"{i:04d}.png")
        finally:
            scene.frame_set(current)
        yield i + 1
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)


def cached_sequence(out_dir: str | Path, stamp: dict) -> bool:
    """Whether ``out_dir`` holds a complete render made with exactly ``stamp``'s settings."""
    out_dir = Path(out_dir)
    try:
        saved = json.loads((out_dir / "render.json").read_text())
    except (OSError, ValueError):
        return False
    n = stamp.get("frames", [0, -1])
    count = n[1] - n[0] + 1
    return saved == stamp and all((out_dir / f"{i:04d}.png").is_file() for i in range(count))


def write_stamp(out_dir: str | Path, stamp: dict) -> None:
    path = Path(out_dir) / "render.json"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(stamp, indent=1))
    os.replace(tmp, path)


def make_edit(obj: bpy.types.Object, props) -> object:
    """The benchmark's ``spec.Edit`` for the sidebar settings (``scene.z2h``) applied to ``obj``."""
    spec = bench.module("spec")
    color = tuple(float(c) for c in props.color)
    if props.edit_kind == "MATERIAL":
        return spec.Edit(object=obj.name, kind="material", color=color, roughness=float(props.roughness),
                         metallic=float(props.metallic))
    return spec.Edit(object=obj.name, kind="color", color=color)


@contextlib.contextmanager
def edited_object(obj: bpy.types.Object, edit) -> Iterator[None]:
    """Temporarily give ``obj`` edited copies of its materials (``benchmark.materials.apply_edit``)."""
    if getattr(obj.data, "materials", None) is None:
        raise ValueError(f"object {obj.name!r} ({obj.type.lower()}) has no materials to edit")
    materials = bench.module("materials")
    spec = bench.module("spec")
    added_slot = not obj.material_slots
    if added_slot:  # no material: start from Blender's default grey
        obj.data.materials.append(None)
    saved = [(slot.link, slot.material) for slot in obj.material_slots]
    copies = []
    try:
        for slot, (_, mat) in zip(obj.material_slots, saved, strict=True):
            copy = mat.copy() if mat is not None else materials.make_material("z2h-edit", spec.Material())
            copies.append(copy)
            materials.apply_edit(copy, edit)
            slot.link = "OBJECT"  # only this object changes, not every user of the mesh
            slot.material = copy
        yield
    finally:
        for slot, (link, mat) in zip(obj.material_slots, saved, strict=True):
            slot.material = None  # drop the object-level copy; a mesh-linked material was never touched
            slot.link = link
            if link == "OBJECT":
                slot.material = mat
        if added_slot:
            obj.data.materials.clear()  # pop() leaves the object with a stale slot (bpy 5.0)
        for copy in copies:
            bpy.data.materials.remove(copy)
