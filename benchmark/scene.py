"""Spec -> bpy scene. Shapes are 1 m across at scale 1; spec frame ``i`` is Blender frame ``i``."""

from __future__ import annotations

import math

import bpy
import numpy as np

from .materials import make_material, pin_to_rest_shape, world_nodes
from .spec import Object, Spec


def _torus(major: float = 0.35, minor: float = 0.15, n: int = 48, m: int = 16):
    u, v = np.meshgrid(
        np.linspace(0, 2 * np.pi, n, endpoint=False),
        np.linspace(0, 2 * np.pi, m, endpoint=False),
        indexing="ij",
    )
    r = major + minor * np.cos(v)
    verts = np.stack([r * np.cos(u), r * np.sin(u), minor * np.sin(v)], -1).reshape(-1, 3)
    faces = [
        (i * m + j, ((i + 1) % n) * m + j, ((i + 1) % n) * m + (j + 1) % m, i * m + (j + 1) % m)
        for i in range(n)
        for j in range(m)
    ]
    return verts, faces


def _helix(radius: float = 0.4, tube: float = 0.035, turns: float = 3.0, n: int = 240, m: int = 8):
    """A thin tube wound around the z axis, 1 m tall: the "thin structure" shape."""
    t = np.linspace(0, 1, n)
    a = 2 * np.pi * turns * t
    path = np.stack([radius * np.cos(a), radius * np.sin(a), t - 0.5], -1)
    tangent = np.gradient(path, axis=0)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    normal = np.stack([np.cos(a), np.sin(a), np.zeros_like(a)], -1)
    binormal = np.cross(tangent, normal)
    v = np.linspace(0, 2 * np.pi, m, endpoint=False)
    ring = np.cos(v)[None, :, None] * normal[:, None] + np.sin(v)[None, :, None] * binormal[:, None]
    verts = (path[:, None] + tube * ring).reshape(-1, 3)
    faces = [
        (i * m + j, (i + 1) * m + j, (i + 1) * m + (j + 1) % m, i * m + (j + 1) % m)
        for i in range(n - 1)
        for j in range(m)
    ]
    faces += [tuple(range(m))[::-1], tuple((n - 1) * m + j for j in range(m))]
    return verts, faces


def _star(points: int = 5, outer: float = 0.5, inner: float = 0.22, height: float = 0.3):
    a = np.pi / 2 + np.arange(2 * points) * np.pi / points
    r = np.where(np.arange(2 * points) % 2 == 0, outer, inner)
    ring = np.stack([r * np.cos(a), r * np.sin(a)], -1)
    k = 2 * points
    verts = np.concatenate(
        [
            np.c_[ring, np.full(k, -height / 2)],
            np.c_[ring, np.full(k, height / 2)],
            [[0, 0, -height / 2], [0, 0, height / 2]],
        ]
    )
    faces = [(i, (i + 1) % k, k + (i + 1) % k, k + i) for i in range(k)]
    faces += [(2 * k, (i + 1) % k, i) for i in range(k)] + [
        (2 * k + 1, k + i, k + (i + 1) % k) for i in range(k)
    ]
    return verts, faces


def make_mesh(name: str, shape: str):
    """A mesh datablock of one of :data:`spec.SHAPES`."""
    import bmesh  # only importable once bpy is

    mesh = bpy.data.meshes.new(name)
    if shape in ("torus", "helix", "star"):
        verts, faces = {"torus": _torus, "helix": _helix, "star": _star}[shape]()
        mesh.from_pydata(verts.tolist(), [], faces)
        mesh.update()
        return mesh
    bm = bmesh.new()
    if shape == "cube":
        bmesh.ops.create_cube(bm, size=1.0)
        # A grid on each face: enough vertices for motion statistics and deformations.
        bmesh.ops.subdivide_edges(bm, edges=bm.edges[:], cuts=7, use_grid_fill=True)
    elif shape == "uv_sphere":
        bmesh.ops.create_uvsphere(bm, u_segments=32, v_segments=16, radius=0.5)
    elif shape == "ico_sphere":
        bmesh.ops.create_icosphere(bm, subdivisions=3, radius=0.5)
    elif shape in ("cylinder", "cone"):
        bmesh.ops.create_cone(
            bm,
            cap_ends=True,
            cap_tris=False,
            segments=32,
            radius1=0.5,
            radius2=0.5 if shape == "cylinder" else 0.0,
            depth=1.0,
        )
    elif shape == "plane":  # subdivided so that deformations bend it
        bmesh.ops.create_grid(bm, x_segments=24, y_segments=24, size=0.5)
    elif shape == "monkey":
        bmesh.ops.create_monkey(bm)
        bmesh.ops.scale(bm, vec=(0.5, 0.5, 0.5), verts=bm.verts)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    bm.to_mesh(mesh)
    bm.free()
    return mesh


def _insert_keys(obj, keys, location, rotation, scale=None) -> None:
    """Keyframes of an object or light; ``location``/``rotation``/``scale`` are its rest values."""
    channels = (("location", "location"), ("rotation", "rotation_euler"))
    channels += (("scale", "scale"),) if scale is not None else ()
    for k in keys:
        for channel, attr in channels:
            value = getattr(k, channel)
            if value is not None:
                setattr(obj, attr, [math.radians(a) for a in value] if channel == "rotation" else value)
            # Every key pins all channels, so a key that moves only the location holds the rest.
            obj.keyframe_insert(attr, frame=k.frame)
        obj.location = location
        obj.rotation_euler = [math.radians(a) for a in rotation]
        if scale is not None:
            obj.scale = scale


def _add_object(scene, o: Object, frames: int):
    mesh = make_mesh(o.name, o.shape)
    mesh.polygons.foreach_set("use_smooth", [o.smooth] * len(mesh.polygons))
    mesh.materials.append(make_material(o.name, o.material))
    obj = bpy.data.objects.new(o.name, mesh)
    scene.collection.objects.link(obj)
    obj.location, obj.scale = o.location, o.scale
    obj.rotation_euler = [math.radians(a) for a in o.rotation]
    _insert_keys(obj, o.keys, o.location, o.rotation, o.scale)
    if o.deform is not None:
        pin_to_rest_shape(mesh.materials[0], mesh)
        sub = obj.modifiers.new("Subdivide", "SUBSURF")
        sub.subdivision_type, sub.levels, sub.render_levels = "SIMPLE", 3, 3
        if o.deform.kind == "wave":
            mod = obj.modifiers.new("Deform", "WAVE")
            # Travelling waves along local x, displacing along local z (peak about 0.4 x amount).
            mod.use_x, mod.use_y = True, False
            mod.height, mod.width, mod.narrowness, mod.speed = o.deform.amount, 0.5, 1.5, 0.06
        else:
            mod = obj.modifiers.new("Deform", "SIMPLE_DEFORM")
            mod.deform_method, mod.deform_axis = o.deform.kind.upper(), o.deform.axis
            prop = "factor" if o.deform.kind == "taper" else "angle"
            amount = o.deform.amount if prop == "factor" else math.radians(o.deform.amount)
            for frame, value in ((0, 0.0), (frames - 1, amount)):
                setattr(mod, prop, value)
                obj.keyframe_insert(f'modifiers["Deform"].{prop}', frame=frame)
    return obj


def _make_linear(obj) -> None:
    """Linear interpolation on all of ``obj``'s keys (Blender 4.4+ layered actions, or legacy ones)."""
    ad = obj.animation_data
    if ad is None or ad.action is None:
        return
    try:
        from bpy_extras.anim_utils import action_get_channelbag_for_slot

        bag = action_get_channelbag_for_slot(ad.action, ad.action_slot)
        curves = bag.fcurves if bag else []
    except ImportError:
        curves = ad.action.fcurves
    for fc in curves:
        for kp in fc.keyframe_points:
            kp.interpolation = "LINEAR"


def build_scene(spec: Spec, scene=None) -> tuple[object, str]:
    """Build ``spec`` into ``scene`` (default: a new empty scene); returns (scene, edited object name).

    Keyframes are linear, so motion is even between keys.
    """
    scene = scene or bpy.data.scenes.new(spec.name)
    scene.frame_start, scene.frame_end = 0, spec.frames - 1
    scene.render.fps = spec.fps
    scene.render.resolution_x, scene.render.resolution_y = spec.resolution
    scene.render.resolution_percentage = 100
    scene.view_settings.view_transform = "Standard"  # colours as specified, no filmic desaturation
    # Short light paths: 2 diffuse/glossy bounces look the same on these scenes and render faster.
    cycles = scene.cycles
    cycles.device = "CPU"  # pixels are reproducible on the CPU
    cycles.max_bounces, cycles.diffuse_bounces, cycles.glossy_bounces = 4, 2, 2
    cycles.transmission_bounces, cycles.volume_bounces, cycles.transparent_max_bounces = 2, 0, 4
    cycles.caustics_reflective = cycles.caustics_refractive = False
    scene.world = bpy.data.worlds.new(spec.name)
    world_nodes(scene.world, spec.world.color, spec.world.strength, spec.world.texture)

    target = bpy.data.objects.new("CameraTarget", None)
    scene.collection.objects.link(target)
    target.location = spec.camera.target
    cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    cam.data.lens = spec.camera.lens
    scene.collection.objects.link(cam)
    scene.camera = cam
    track = cam.constraints.new("TRACK_TO")
    track.target, track.track_axis, track.up_axis = target, "TRACK_NEGATIVE_Z", "UP_Y"
    offset = np.subtract(spec.camera.location, spec.camera.target)
    orbit_frames = range(spec.frames) if spec.camera.orbit else [0]
    for f in orbit_frames:
        a = math.radians(spec.camera.orbit) * f / (spec.frames - 1)
        x = offset[0] * math.cos(a) - offset[1] * math.sin(a)
        y = offset[0] * math.sin(a) + offset[1] * math.cos(a)
        cam.location = (spec.camera.target[0] + x, spec.camera.target[1] + y, spec.camera.location[2])
        if spec.camera.orbit:
            cam.keyframe_insert("location", frame=f)

    for i, light in enumerate(spec.lights):
        data = bpy.data.lights.new(f"Light{i}", light.kind.upper())
        data.energy, data.color = light.energy, light.color[:3]
        if light.kind == "sun":
            data.angle = math.radians(2.0)
        elif light.kind == "area":
            data.size = light.size
        else:
            data.shadow_soft_size = light.size * 0.1
        obj = bpy.data.objects.new(f"Light{i}", data)
        obj.location = light.location
        obj.rotation_euler = [math.radians(a) for a in light.rotation]
        scene.collection.objects.link(obj)
        _insert_keys(obj, light.keys, light.location, light.rotation)

    names = {o.name: _add_object(scene, o, spec.frames).name for o in spec.objects}
    for obj in scene.objects:
        _make_linear(obj)
    scene.frame_set(spec.anchor)
    return scene, names[spec.edit.object]  # Blender renames on a clash with existing data
