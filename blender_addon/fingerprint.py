"""A fingerprint of everything a render of the scene depends on, so a cached render is reused only
while the scene is unchanged.

Blender's own .blend writer cannot serve: two writes of the same scene differ (it stores memory
addresses). Instead this walks the RNA of the scene and of every data-block it reaches (objects,
meshes, materials and their node trees, lights, world, images, actions, ...) and hashes the values.
Mesh geometry is read in bulk (``foreach_get``). What a user changes between runs but no render sees
(the current frame, selection, the sidebar's own settings) is left out, so moving the anchor frame
does not invalidate the originals. Image files are hashed by path, size and modification time.
"""

from __future__ import annotations

import array
import hashlib
import os
import warnings

import bpy

# Properties that change without changing a render (or that point back into the UI).
SKIP = frozenset({
    "rna_type", "users", "session_uid", "is_evaluated", "original", "is_runtime_data", "tag", "is_missing",
    "use_fake_user", "use_extra_user", "preview", "name_full", "id_type", "is_editmode", "select",
    "is_dirty", "bl_rna", "z2h", "frame_current", "frame_float", "frame_current_final", "cursor",
    "tool_settings", "statistics", "keying_sets", "keying_sets_all", "timeline_markers", "sequence_editor",
    "active_clip", "hide_select", "show_name", "show_axis", "show_wire", "show_in_front",
    "is_library_indirect", "library_weak_reference", "override_library", "asset_data",
    "use_preview_range", "frame_preview_start", "frame_preview_end", "safe_areas",
    "transform_orientation_slots", "uv_layer_clone", "uv_layer_stencil",
    # Derived from the animated values walked at the first frame (and would differ per frame).
    "matrix_world", "matrix_local", "matrix_basis", "bound_box", "dimensions",
    # Derived mesh data (normals, triangulation): follows from the geometry hashed in bulk.
    "vertex_normals", "polygon_normals", "corner_normals", "loop_triangles", "loop_triangle_polygons",
    "depsgraph",  # evaluated copies of what is walked anyway
})
NODE_LAYOUT = frozenset({"location", "location_absolute", "width", "height", "dimensions", "select",
                         "hide", "show_options", "show_preview", "show_texture", "label", "color",
                         "use_custom_color"})
BULK = {"MeshVertices": ("co", 3, "f"), "MeshPolygons": ("vertices", None, "i"),
        "MeshLoops": ("vertex_index", 1, "i"), "MeshEdges": ("vertices", 2, "i")}
# Attribute values by item type, read in bulk (geometry attributes, UV maps, colours).
BULK_ITEMS = {"FloatAttributeValue": ("value", 1, "f"), "IntAttributeValue": ("value", 1, "i"),
              "BoolAttributeValue": ("value", 1, "b"), "FloatVectorAttributeValue": ("vector", 3, "f"),
              "Float2AttributeValue": ("vector", 2, "f"), "FloatColorAttributeValue": ("color", 4, "f"),
              "ByteColorAttributeValue": ("color", 4, "f"), "MeshUVLoop": ("uv", 2, "f")}
MAX_DEPTH = 10
MAX_ITEMS = 10000  # larger collections (other than mesh geometry) are summarised by their length


class _Walker:
    def __init__(self) -> None:
        self.h = hashlib.sha256()
        self.seen: set[int] = set()
        self.queue: list[bpy.types.ID] = []
        self.ids_seen: set[int] = set()

    def add(self, *parts: object) -> None:
        self.h.update(repr(parts).encode())
        self.h.update(b"\n")

    def follow(self, value: bpy.types.ID) -> None:
        key = value.as_pointer()
        if key not in self.ids_seen and not isinstance(value, (bpy.types.Scene, bpy.types.Screen,
                                                              bpy.types.WindowManager, bpy.types.Library)):
            self.ids_seen.add(key)
            self.queue.append(value)

    def walk(self, struct, depth: int = 0) -> None:
        key = struct.as_pointer()
        if key in self.seen or depth > MAX_DEPTH:
            return
        self.seen.add(key)
        skip = NODE_LAYOUT if isinstance(struct, bpy.types.Node) else ()
        for prop in struct.bl_rna.properties:
            name = prop.identifier
            if name in SKIP or name in skip:
                continue
            try:
                value = getattr(struct, name)
            except (AttributeError, RuntimeError, TypeError):
                continue
            self.value(name, prop, value, depth)

    def value(self, name: str, prop, value, depth: int) -> None:
        if prop.type == "POINTER":
            if value is None:
                self.add(name, None)
            elif isinstance(value, bpy.types.ID):
                self.add(name, type(value).__name__, value.name_full)
                self.follow(value)
            else:
                self.add(name, "{")
                self.walk(value, depth + 1)
                self.add("}")
        elif prop.type == "COLLECTION":
            self.collection(name, value, depth)
        elif getattr(prop, "is_array", False) or (prop.type in ("INT", "FLOAT", "BOOLEAN")
                                                   and getattr(prop, "array_length", 0) > 0):
            self.add(name, tuple(value) if not hasattr(value, "__len__") or len(value) < 4096 else len(value))
        elif isinstance(value, set):  # enum flags: a set prints in hash order
            self.add(name, tuple(sorted(value)))
        else:
            self.add(name, value)

    def collection(self, name: str, items, depth: int) -> None:
        kind = type(items).__name__ if hasattr(items, "rna_type") else ""
        rna = getattr(getattr(items, "rna_type", None), "identifier", kind)
        n = len(items)
        self.add(name, n)
        first = next(iter(items), None)
        bulk = BULK.get(rna) or BULK_ITEMS.get(type(first).__name__)
        if bulk is not None and n:
            attr, width, code = bulk
            if width is None:  # polygons: their corner counts stand in for the index lists
                attr, width = "loop_total", 1
            data = array.array(code, [0]) * (n * width)
            try:
                items.foreach_get(attr, data)
                self.h.update(data.tobytes())
                return
            except (TypeError, RuntimeError, AttributeError):
                pass  # an unexpected layout: walk the items instead
        if n > MAX_ITEMS:
            return
        for item in items:
            if isinstance(item, bpy.types.ID):
                self.add(type(item).__name__, item.name_full)
                self.follow(item)
            elif not getattr(item, "is_internal", False):  # internal attributes: selection, UI state
                self.walk(item, depth + 1)

    def image_file(self, image: bpy.types.Image) -> None:
        if image.packed_file is not None or image.source not in ("FILE", "SEQUENCE", "MOVIE"):
            return
        path = bpy.path.abspath(image.filepath, library=image.library)
        try:
            st = os.stat(path)
            self.add("file", path, st.st_size, st.st_mtime_ns)
        except OSError:
            self.add("file", path, None)


def scene_fingerprint(scene: bpy.types.Scene, frame: int | None = None) -> str:
    """A hex digest of what rendering ``scene`` depends on (changes when the render could change).
    Animated values are read at ``frame`` (default: the scene's first), so the current frame does not
    matter; the scene is put back on its current frame afterwards."""
    current = scene.frame_current
    scene.frame_set(scene.frame_start if frame is None else frame)
    try:
        return _digest(scene)
    finally:
        scene.frame_set(current)


def _digest(scene: bpy.types.Scene) -> str:
    w = _Walker()
    with warnings.catch_warnings():  # reading deprecated properties (use_nodes in 5.0) warns
        warnings.simplefilter("ignore", DeprecationWarning)
        w.walk(scene)
        while w.queue:
            data = w.queue.pop(0)
            w.add("ID", type(data).__name__, data.name_full)
            w.walk(data)
            if isinstance(data, bpy.types.Image):
                w.image_file(data)
    return w.h.hexdigest()
