"""The live scene as a benchmark scene spec (``benchmark.spec.Spec``), for "Export scene spec".

A spec describes procedural shapes, a look-at camera, lights, a world colour and keyframed motion,
so an arbitrary .blend maps onto it only approximately. What is exact: object transforms per frame
(sampled at every frame; spec keys interpolate linearly), the primitive shapes Blender and the spec
share (matched by mesh name, sized by the mesh's bounding box), Principled base colour / roughness /
metallic, lights and the camera at the first frame. Everything else is listed in the returned
warnings (and written as comments at the top of the file).
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

from mathutils import Vector

from . import bench

# Blender's default primitive names -> spec shapes (spec shapes are 1 m across at scale 1).
SHAPE_NAMES = {"cube": "cube", "sphere": "uv_sphere", "icosphere": "ico_sphere", "cylinder": "cylinder",
               "cone": "cone", "torus": "torus", "plane": "plane", "suzanne": "monkey"}
LIGHT_KINDS = {"SUN": "sun", "POINT": "point", "AREA": "area", "SPOT": "point"}


def _round(v, nd: int = 5) -> tuple[float, ...]:
    return tuple(round(float(x), nd) + 0.0 for x in v)  # + 0.0: no "-0.0" in the file


def _shape(obj, warnings: list[str]) -> str:
    base = re.sub(r"[._]\d+$", "", obj.data.name).lower()
    if base in SHAPE_NAMES:
        return SHAPE_NAMES[base]
    warnings.append(f"{obj.name}: mesh {obj.data.name!r} is not a spec shape; exported as a box of its size")
    return "cube"


def _extent(obj) -> Vector:
    """The mesh's bounding-box size in its own coordinates (0 on a flat axis -> 1)."""
    corners = [Vector(c) for c in obj.bound_box]
    size = Vector([max(c[i] for c in corners) - min(c[i] for c in corners) for i in range(3)])
    return Vector([s if s > 1e-6 else 1.0 for s in size])


def _material(obj, spec, warnings: list[str]):
    mat = next((s.material for s in obj.material_slots if s.material is not None), None)
    if mat is None:
        return spec.Material()
    nodes = mat.node_tree.nodes if mat.node_tree else []
    bsdf = next((n for n in nodes if n.type == "BSDF_PRINCIPLED"), None)
    if bsdf is None:
        return spec.Material(base_color=_round(mat.diffuse_color[:3]), roughness=round(mat.roughness, 5),
                             metallic=round(mat.metallic, 5))
    base = bsdf.inputs["Base Color"]
    if base.is_linked:
        warnings.append(f"{obj.name}: textured base colour exported as the material's viewport colour")
    color = mat.diffuse_color[:3] if base.is_linked else base.default_value[:3]
    return spec.Material(base_color=_round(color),
                         roughness=round(float(bsdf.inputs["Roughness"].default_value), 5),
                         metallic=round(float(bsdf.inputs["Metallic"].default_value), 5))


def _world(scene, spec, warnings: list[str]):
    world = scene.world
    if world is None:
        return spec.World(color=(0.0, 0.0, 0.0), strength=0.0)
    bg = next((n for n in world.node_tree.nodes if n.type == "BACKGROUND"), None) if world.node_tree else None
    if bg is None:
        return spec.World(color=_round(world.color))
    if bg.inputs["Color"].is_linked:
        warnings.append("world: a textured background is exported as its colour")
    return spec.World(color=_round(bg.inputs["Color"].default_value[:3]),
                      strength=round(float(bg.inputs["Strength"].default_value), 5))


def _transform(obj, extent: Vector, previous):
    loc, rot, scale = obj.matrix_world.decompose()
    euler = rot.to_euler("XYZ", previous) if previous is not None else rot.to_euler("XYZ")
    return (_round(loc), _round([math.degrees(a) for a in euler], 4),
            _round([s * e for s, e in zip(scale, extent, strict=True)])), euler


def spec_from_scene(scene, edit, *, frame_start: int, frame_end: int, resolution: tuple[int, int],
                    name: str, anchor: int = 0) -> tuple[object, list[str]]:
    """A validated spec of ``scene``'s frames ``frame_start..frame_end`` (spec frame 0 = ``frame_start``)
    with ``edit``; returns (spec, warnings about what the spec cannot express)."""
    spec = bench.module("spec")
    warnings: list[str] = []
    cam = scene.camera
    if cam is None:
        raise ValueError(f"scene {scene.name!r} has no camera")
    frames = list(range(frame_start, frame_end + 1))
    meshes = [o for o in scene.objects if o.type == "MESH" and not o.hide_render]
    if edit.object not in {o.name for o in meshes}:
        raise ValueError(f"the edited object {edit.object!r} is not a rendered mesh of scene {scene.name!r}")
    extents = {o.name: _extent(o) for o in meshes}
    tracks: dict[str, list] = {o.name: [] for o in meshes}
    eulers: dict[str, object] = {}
    cam_poses = []
    current = scene.frame_current
    try:
        for f in frames:
            scene.frame_set(f)
            for o in meshes:
                pose, eulers[o.name] = _transform(o, extents[o.name], eulers.get(o.name))
                tracks[o.name].append(pose)
            mw = cam.matrix_world
            cam_poses.append(_round(mw.translation, 4) + _round(mw.to_quaternion(), 4))
        scene.frame_set(frames[0])
        cam_mw = cam.matrix_world.copy()
    finally:
        scene.frame_set(current)

    if len(set(cam_poses)) > 1:
        warnings.append("camera: its animation is not exported (spec cameras are fixed or orbit)")
    if cam.data.type != "PERSP":
        warnings.append(f"camera: {cam.data.type.lower()} projection exported as perspective")
    edited = next(o for o in meshes if o.name == edit.object)
    forward = -(cam_mw.to_3x3() @ Vector((0.0, 0.0, 1.0))).normalized()
    depth = (edited.matrix_world.translation - cam_mw.translation).dot(forward)
    target = cam_mw.translation + forward * (depth if depth > 0.1 else 10.0)
    camera = spec.Camera(location=_round(cam_mw.translation), target=_round(target),
                         lens=round(cam.data.lens, 4))

    lights = []
    for o in scene.objects:
        if o.type != "LIGHT" or o.hide_render:
            continue
        light = o.data
        if light.type == "SPOT":
            warnings.append(f"{o.name}: spot light exported as a point light")
        size = getattr(light, "size", None) or getattr(light, "shadow_soft_size", 1.0)
        rotation = [math.degrees(a) for a in o.matrix_world.to_euler("XYZ")]
        lights.append(spec.Light(kind=LIGHT_KINDS[light.type], location=_round(o.matrix_world.translation),
                                 rotation=_round(rotation, 4),
                                 energy=round(float(light.energy), 5), color=_round(light.color),
                                 size=round(float(size), 5)))

    objects = []
    for o in meshes:
        if o.modifiers:
            kinds = ", ".join(m.type.lower() for m in o.modifiers)
            warnings.append(f"{o.name}: modifiers ({kinds}) not exported")
        track = tracks[o.name]
        loc, rot, scale = track[0]
        keys = []
        if any(pose != track[0] for pose in track):  # moves: one key per frame reproduces it exactly
            keys = [spec.Key(frame=i, location=p[0], rotation=p[1], scale=p[2]) for i, p in enumerate(track)]
        objects.append(spec.Object(name=o.name, shape=_shape(o, warnings), location=loc, rotation=rot,
                                   scale=scale, smooth=any(p.use_smooth for p in o.data.polygons),
                                   material=_material(o, spec, warnings), keys=keys))

    result = spec.Spec(name=re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_") or "scene", frames=len(frames),
                       fps=scene.render.fps, resolution=tuple(int(r) for r in resolution), anchor=anchor,
                       camera=camera, world=_world(scene, spec, warnings), lights=lights, objects=objects,
                       edit=edit)
    # Round-trip through the validator so the file is exactly what `z2h bench build` accepts.
    return spec.spec_from_dict(spec.spec_to_dict(result), f"<scene {scene.name}>"), warnings


def write_spec(spec_obj, warnings: list[str], path: str | Path, source: str = "") -> Path:
    """Write the spec as TOML with the warnings as leading comments (atomically); never overwrites."""
    spec = bench.module("spec")
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} already exists: choose another file name")
    header = [f"# Exported by the z2h Blender add-on{f' from {source}' if source else ''}."]
    header += [f"# Approximation: {w}" for w in warnings]
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text("\n".join(header) + "\n\n" + spec.dumps_spec(spec_obj))
    os.replace(tmp, path)
    return path
