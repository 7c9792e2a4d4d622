"""Render a benchmark video pair from ANY live bpy scene (used by ``z2h bench build`` and the add-on).

API (the Blender add-on calls this inside Blender on the user's own scene)::

    from .render import render_pair
    from .spec import Edit
    meta = render_pair(scene, "Cube", Edit(object="Cube", kind="color", color=(0.1, 0.3, 0.9)), out_dir,
                       frame_start=1, frame_end=24, resolution=(256, 256), engine="CYCLES", samples=16,
                       progress=lambda done, total: ...)
    # ``edit`` may also be a dict: {"kind": "color", "color": [r, g, b]} (validated by spec.edit_from_dict)
    # then manifest.write_manifest(bench_dir, settings) to (re)write BENCH/manifest.json

It renders ``out_dir/original/0000.png ...`` (the scene as it is), ``edited/`` (the edit applied to a
per-object copy of the object's materials, so objects sharing a material are untouched), ``mask/``
(8-bit, 255 = visible pixel of the object, from a flat Workbench render in which every other object
is black, so occlusion is respected), optionally ``flow.npz`` (Cycles vector pass), and
``meta.json`` (per-frame motion of the object relative to the anchor: mean image-space displacement
of its visible surface points (400 fixed, area-uniform samples; visibility by ray casts from the
camera), rotation angle in the camera frame, mask area; plus the measured leakage of the edit
outside the dilated mask). Every file is written atomically (temporary name, then rename).
Whatever the function changes (render settings, materials, object colours, frame) is restored
afterwards, also when it fails or is cancelled (``progress`` may raise to cancel).

``isolate=True`` hides the edited object from other objects' diffuse/glossy/transmission rays in
BOTH renders (shadows stay), so the edit cannot leak into the rest of the image through indirect
light; ``isolate=False`` keeps full light transport (reflections of the edit change other pixels).
Frame numbering in the output starts at 0 = ``frame_start``; ``anchor`` is an output index.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path

import bpy
import numpy as np

from . import blender_compat
from .materials import apply_edit, make_material
from .png import PNGError, png_complete, read_header, read_png, write_png
from .spec import Edit, Material, edit_from_dict, spec_to_dict

ENGINES = {"cycles": "CYCLES", "eevee": "BLENDER_EEVEE", "workbench": "BLENDER_WORKBENCH"}
KINDS = ("original", "edited", "mask")


class _Restore:
    """An undo stack: records attribute values as they are changed and puts them back in reverse order."""

    def __init__(self) -> None:
        self._undo: list[Callable[[], object]] = []

    def set(self, obj: object, attr: str, value: object) -> None:
        old = getattr(obj, attr)
        if hasattr(old, "__len__") and not isinstance(old, str):
            old = tuple(old)  # bpy arrays are live views; keep a copy
        self._undo.append(lambda: setattr(obj, attr, old))
        setattr(obj, attr, value)

    def call_later(self, fn: Callable[[], object]) -> None:
        self._undo.append(fn)

    def mark(self) -> int:
        return len(self._undo)

    def restore(self, mark: int = 0) -> None:
        while len(self._undo) > mark:
            self._undo.pop()()


def frame_path(out_dir: Path, kind: str, i: int) -> Path:
    return Path(out_dir) / kind / f"{i:04d}.png"


def _valid(path: Path, size: tuple[int, int]) -> bool:
    """A finished frame: a complete PNG (IEND at the end) of the right size."""
    try:
        return read_header(path)[:2] == tuple(size) and png_complete(path)
    except (OSError, PNGError):
        return False


def read_rendered(path: Path) -> np.ndarray:
    """Pixels of a PNG Blender wrote, as uint8 (H, W, C), decoded by Blender itself.

    png.py decodes them too, but its pure-Python Paeth filter takes ~0.7 s for 256x256; bpy hands
    back the stored 8-bit values (divided by 255) in milliseconds (tests compare the two).
    """
    img = bpy.data.images.load(str(path), check_existing=False)
    try:
        w, h = img.size
        px = np.empty(w * h * img.channels, np.float32)
        img.pixels.foreach_get(px)
        return np.round(px.reshape(h, w, img.channels)[::-1] * 255).astype(np.uint8)
    finally:
        bpy.data.images.remove(img)


def _render_to(scene, path: Path) -> None:
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}.png")
    scene.render.filepath = str(tmp)
    bpy.ops.render.render(write_still=True, scene=scene.name)
    os.replace(tmp, path)


def _set_engine(r: _Restore, scene, engine: str, samples: int, threads: int) -> None:
    r.set(scene.render, "engine", blender_compat.engine_id(engine))
    if engine == "CYCLES":
        r.set(scene.cycles, "samples", samples)
        r.set(scene.cycles, "seed", 0)
        r.set(scene.cycles, "use_animated_seed", False)
    elif engine == "BLENDER_EEVEE":
        r.set(scene.eevee, "taa_render_samples", samples)
    if threads:
        r.set(scene.render, "threads_mode", "FIXED")
        r.set(scene.render, "threads", threads)


def _swap_in_edit(r: _Restore, obj, edit: Edit) -> None:
    """Give ``obj`` object-level edited copies of its materials (restored by ``r``)."""
    if obj.type != "MESH" and not obj.material_slots:
        raise ValueError(f"object {obj.name!r} ({obj.type}) has no material slots to edit")
    if not obj.material_slots:  # no material: start from Blender's default grey
        base = make_material(f"{obj.name}_z2h_base", Material())
        obj.data.materials.append(base)
        r.call_later(lambda: bpy.data.materials.remove(base))
        r.call_later(obj.data.materials.pop)
    for slot in obj.material_slots:
        src = slot.material
        if src is None:  # an empty slot renders Blender's default grey
            src = make_material(f"{obj.name}_z2h_base", Material())
            r.call_later(lambda m=src: bpy.data.materials.remove(m))
        copy = src.copy()
        copy.name = f"{src.name}_z2h_edit"
        apply_edit(copy, edit)
        r.call_later(lambda m=copy: bpy.data.materials.remove(m))
        r.set(slot, "link", "OBJECT")
        r.set(slot, "material", copy)


def _mask_settings(r: _Restore, scene, objs: list) -> None:
    """Flat Workbench render: the objects white, everything else black, no AA (notes/blender-5.0.md)."""
    r.set(scene.render, "engine", "BLENDER_WORKBENCH")
    shading = scene.display.shading
    for attr, value in (
        ("light", "FLAT"),
        ("color_type", "OBJECT"),
        ("show_shadows", False),
        ("show_cavity", False),
        ("show_object_outline", False),
        ("show_xray", False),
        ("show_specular_highlight", False),
        ("use_dof", False),
        ("show_backface_culling", False),
    ):
        r.set(shading, attr, value)
    r.set(scene.display, "render_aa", "OFF")
    r.set(scene.render, "film_transparent", True)
    r.set(scene.render.image_settings, "color_mode", "RGBA")
    for o in scene.objects:
        r.set(o, "color", (1.0, 1.0, 1.0, 1.0) if o in objs else (0.0, 0.0, 0.0, 1.0))


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    out = mask.copy()
    for _ in range(radius):
        grown = out.copy()
        grown[1:] |= out[:-1]
        grown[:-1] |= out[1:]
        grown[:, 1:] |= out[:, :-1]
        grown[:, :-1] |= out[:, 1:]
        out = grown
    return out


def leakage(out_dir: Path, frames: int, dilate_px: int = 3, threshold: int = 2) -> dict:
    """How much the edit changed pixels OUTSIDE the object's mask dilated by ``dilate_px``."""
    changed = total = 0
    max_diff, sum_diff = 0, 0.0
    for i in range(frames):
        a = read_rendered(frame_path(out_dir, "original", i))[..., :3].astype(np.int16)
        b = read_rendered(frame_path(out_dir, "edited", i))[..., :3].astype(np.int16)
        outside = ~_dilate(read_png(frame_path(out_dir, "mask", i)) > 127, dilate_px)
        diff = np.abs(a - b).max(-1)[outside]
        changed += int((diff > threshold).sum())
        total += diff.size
        max_diff = max(max_diff, int(diff.max(initial=0)))
        sum_diff += float(diff.sum())
    return {
        "dilate_px": dilate_px,
        "threshold": threshold,
        "changed_fraction": changed / max(total, 1),
        "max_diff": max_diff,
        "mean_abs_diff": sum_diff / max(total, 1),
    }


def _surface_samples(verts: np.ndarray, tris: np.ndarray, n: int) -> tuple:
    """``n`` fixed surface points (triangle index, barycentric weights), uniform by area, seeded.

    The same (triangle, weights) pairs are used on every frame, so each point follows the surface
    through rigid motion and deformation alike.
    """
    rng = np.random.default_rng(0)
    if len(tris) == 0:
        return np.zeros(0, int), np.zeros((0, 3)), tris.shape
    a, b, c = (verts[tris[:, k]] for k in range(3))
    area = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1) + 1e-12
    idx = rng.choice(len(tris), size=n, p=area / area.sum())
    r1, r2 = np.sqrt(rng.random(n)), rng.random(n)
    bary = np.stack([1 - r1, r1 * (1 - r2), r1 * r2], 1)
    return idx, bary, tris.shape


def _motion(scene, obj, frames: list[int], anchor: int, size: tuple[int, int], max_points: int = 400) -> list:
    """Per frame: mean pixel displacement of visible surface points w.r.t. the anchor, rotation angle."""
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Vector

    cam = scene.camera
    w, h = size
    proj, vis, rots, origins = [], [], [], []
    samples, topology_changed = None, False
    for f in frames:
        scene.frame_set(f)
        depsgraph = bpy.context.evaluated_depsgraph_get()
        ev = obj.evaluated_get(depsgraph)
        mesh = ev.to_mesh()
        verts = np.empty(len(mesh.vertices) * 3, np.float32)
        mesh.vertices.foreach_get("co", verts)
        mesh.calc_loop_triangles()
        tris = np.empty(len(mesh.loop_triangles) * 3, np.int32)
        mesh.loop_triangles.foreach_get("vertices", tris)
        ev.to_mesh_clear()
        verts, tris = verts.reshape(-1, 3), tris.reshape(-1, 3)
        if samples is None:
            samples = _surface_samples(verts, tris, max_points)
        elif samples[2] != tris.shape:  # topology changes (e.g. geometry nodes): follow the origin
            topology_changed = True
            samples = _surface_samples(verts, tris, max_points)
        idx, bary, _ = samples
        co = (verts[tris[idx]] * bary[..., None]).sum(1) if len(idx) else verts[:1]
        mw = ev.matrix_world.copy()
        cam_mw = cam.evaluated_get(depsgraph).matrix_world.copy()
        cam_loc = cam_mw.translation
        view_dir = -(cam_mw.to_3x3() @ Vector((0, 0, 1))).normalized()
        p, v = np.zeros((len(co), 2)), np.zeros(len(co), bool)
        for j, c in enumerate(co):
            world = mw @ Vector(c)
            x, y, z = world_to_camera_view(scene, cam, world)
            p[j] = (x * w, (1 - y) * h)
            if z <= 0 or not (0 <= x <= 1 and 0 <= y <= 1):
                continue
            if cam.data.type == "ORTHO":
                origin = world - view_dir * (z + 1.0)
                dist = z + 1.0
            else:
                origin, dist = cam_loc, (world - cam_loc).length
            direction = (world - origin).normalized()
            hit, loc, _, _, hit_obj, _ = scene.ray_cast(depsgraph, origin, direction, distance=dist * 1.01)
            # Visible: the first surface on the ray is the object itself, at (about) the vertex.
            v[j] = hit and hit_obj.original == obj and (loc - origin).length >= dist * 0.99 - 1e-4
        ox, oy, _ = world_to_camera_view(scene, cam, mw.translation)
        origins.append(np.array([[ox * w, (1 - oy) * h]]))
        proj.append(p)
        vis.append(v)
        rots.append((cam_mw.inverted() @ mw).decompose()[1])
    a = frames.index(anchor)
    if topology_changed:
        proj, vis = origins, [np.ones(1, bool)] * len(frames)
    out = []
    for i in range(len(frames)):
        d = np.linalg.norm(proj[i] - proj[a], axis=1)[vis[i]]
        angle = math.degrees(rots[a].rotation_difference(rots[i]).angle)
        out.append(
            {
                "displacement_px": round(float(d.mean()) if d.size else 0.0, 3),
                "rotation_deg": round(min(angle, 360 - angle), 3),
                "visible_points": int(vis[i].sum()),
            }
        )
    return out


def render_pair(
    scene,
    object_name: str,
    edit: Edit | dict,
    out_dir: str | Path,
    *,
    frame_start: int | None = None,
    frame_end: int | None = None,
    resolution: tuple[int, int] | None = None,
    engine: str = "CYCLES",
    samples: int = 16,
    anchor: int = 0,
    isolate: bool = True,
    denoise: bool = False,
    flow: bool = False,
    resume: bool = False,
    threads: int = 0,
    meta_extra: dict | None = None,
    progress: Callable[[int, int], None] | None = None,
    more_edits: list[tuple[str, Edit]] = (),
) -> dict:
    """Render original, edited and mask frames of ``scene`` into ``out_dir``; returns (and writes) meta.

    ``resume=True`` keeps frames that are already complete; otherwise existing frames are replaced
    (the caller guards against overwriting). ``more_edits`` (object name, edit) pairs are applied in the
    same edited pass (several objects edited in one anchor); the mask is then their union, and the
    motion statistics stay those of ``object_name``. See the module docstring for everything else.
    """
    engine = ENGINES.get(engine.lower(), engine)
    if isinstance(edit, dict):
        edit = edit_from_dict(edit)
    obj = scene.objects.get(object_name)
    if obj is None:
        raise ValueError(f"scene {scene.name!r} has no object {object_name!r}")
    more = []
    for name, e in more_edits:
        if scene.objects.get(name) is None:
            raise ValueError(f"scene {scene.name!r} has no object {name!r}")
        more.append((scene.objects[name], edit_from_dict(e) if isinstance(e, dict) else e))
    if scene.camera is None:
        raise ValueError(f"scene {scene.name!r} has no camera")
    fs = scene.frame_start if frame_start is None else frame_start
    fe = scene.frame_end if frame_end is None else frame_end
    frames = list(range(fs, fe + 1))
    if len(frames) < 2:
        raise ValueError(f"need at least 2 frames, got {fs}..{fe}")
    if not 0 <= anchor < len(frames):
        raise ValueError(f"anchor {anchor} is outside 0..{len(frames) - 1}")
    if resolution is None:
        pct = scene.render.resolution_percentage / 100
        resolution = (round(scene.render.resolution_x * pct), round(scene.render.resolution_y * pct))
    out_dir = Path(out_dir)
    for kind in KINDS:
        (out_dir / kind).mkdir(parents=True, exist_ok=True)
        for stale in (out_dir / kind).glob(".*.tmp*"):  # left by an interrupted run (ours by name)
            stale.unlink()
    flow_path = out_dir / "flow.npz"
    if flow and engine != "CYCLES":
        raise ValueError("the ground-truth flow needs the CYCLES engine (vector pass)")
    todo = {
        k: [i for i in range(len(frames)) if not (resume and _valid(frame_path(out_dir, k, i), resolution))]
        for k in KINDS
    }
    need_flow = flow and not (resume and flow_path.exists())
    if need_flow:  # the vector pass comes with the original render
        todo["original"] = list(range(len(frames)))
    total = sum(len(v) for v in todo.values()) + len(frames)
    done = 0

    def step() -> None:
        nonlocal done
        done += 1
        if progress:
            progress(done, total)

    r = _Restore()
    old_frame = scene.frame_current
    try:
        render = scene.render
        r.set(render, "resolution_x", resolution[0])
        r.set(render, "resolution_y", resolution[1])
        r.set(render, "resolution_percentage", 100)
        r.set(render, "use_file_extension", False)
        r.set(render, "use_motion_blur", False)  # masks and flow are of the instant; so must the frames be
        r.set(render, "dither_intensity", 0.0)
        r.set(render, "filepath", render.filepath)  # frames set it; put the user's back afterwards
        r.set(render, "use_persistent_data", True)  # measured: ~2x faster per frame, same pixels
        r.set(render, "film_transparent", False)
        settings = render.image_settings
        for attr, value in blender_compat.file_format_values("PNG"):
            r.set(settings, attr, value)
        r.set(settings, "color_mode", "RGB")
        r.set(settings, "color_depth", "8")
        _set_engine(r, scene, engine, samples, threads)
        if engine == "CYCLES":
            r.set(scene.cycles, "use_denoising", denoise)
        if isolate:
            for o in [obj, *(m for m, _ in more)]:
                for attr in ("visible_diffuse", "visible_glossy", "visible_transmission"):
                    r.set(o, attr, False)
        vectors = []
        if need_flow:
            from .flow import VectorPass

            vp = VectorPass(r, scene)
        for kind in ("original", "edited"):
            mark = r.mark()
            if kind == "edited":
                _swap_in_edit(r, obj, edit)
                for o, e in more:
                    _swap_in_edit(r, o, e)
            for i in todo[kind]:
                scene.frame_set(frames[i])
                if kind == "original" and need_flow:
                    vectors.append(vp.render(frame_path(out_dir, kind, i)))
                else:
                    _render_to(scene, frame_path(out_dir, kind, i))
                step()
            r.restore(mark)  # undo the edit before the next pass
        if need_flow:
            from .flow import save_flow

            save_flow(flow_path, vectors)
        if todo["mask"]:
            _mask_settings(r, scene, [obj, *(m for m, _ in more)])
            for i in todo["mask"]:
                scene.frame_set(frames[i])
                tmp = frame_path(out_dir, "mask", i).with_suffix(".rgba.png")
                _render_to(scene, tmp)
                rgba = read_rendered(tmp)
                write_png(
                    frame_path(out_dir, "mask", i),
                    np.where((rgba[..., 0] > 127) & (rgba[..., 3] > 127), 255, 0).astype(np.uint8),
                )
                tmp.unlink()
                step()
        motion = _motion(scene, obj, frames, frames[anchor], resolution)
        per_frame = []
        for i, m in enumerate(motion):
            area = int((read_png(frame_path(out_dir, "mask", i)) > 127).sum())
            per_frame.append({"frame": i, **m, "mask_area": area})
            step()
    finally:
        r.restore()
        scene.frame_set(old_frame)
    edit_d = spec_to_dict(edit)
    edit_d["object"] = object_name
    if more:
        edit_d["more"] = [{**spec_to_dict(e), "object": o.name} for o, e in more]
    meta = {
        "name": out_dir.name,
        "spec": None,
        "frames": len(frames),
        "anchor": anchor,
        "resolution": list(resolution),
        "fps": scene.render.fps,
        "edit": edit_d,
        "tags": [],
        "render": {
            "engine": engine,
            "samples": samples,
            "isolate": isolate,
            "denoise": denoise,
            "frame_start": fs,
            "frame_end": fe,
            "flow": flow_path.exists(),
        },
        **(meta_extra or {}),
        "per_frame": per_frame,
        "leakage": leakage(out_dir, len(frames)),
    }
    tmp = out_dir / f".meta.json.tmp{os.getpid()}"
    tmp.write_text(json.dumps(meta, indent=1))
    os.replace(tmp, out_dir / "meta.json")
    return meta
