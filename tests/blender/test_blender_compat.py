"""The version guards of benchmark/blender_compat.py against the bpy this env has (4.2, 4.5 or 5.0)."""

from __future__ import annotations

import pytest

bpy = pytest.importorskip("bpy")

from z2h.benchmark import blender_compat as compat  # noqa: E402


def test_engine_ids_are_this_blenders():
    scene = bpy.context.scene
    before = scene.render.engine
    try:
        for name in ("BLENDER_EEVEE", "CYCLES", "BLENDER_WORKBENCH"):
            scene.render.engine = compat.engine_id(name)  # TypeError for an id this Blender lacks
            assert compat.engine_name(scene.render.engine) == name
    finally:
        scene.render.engine = before
    expected = "BLENDER_EEVEE_NEXT" if bpy.app.version < (5, 0, 0) else "BLENDER_EEVEE"
    assert compat.engine_id("BLENDER_EEVEE") == expected


@pytest.mark.parametrize("fmt", ["OPEN_EXR_MULTILAYER", "JPEG", "PNG"])
def test_file_format_is_set_and_restored(fmt):
    settings = bpy.context.scene.render.image_settings
    for attr, value in compat.file_format_values("PNG"):
        setattr(settings, attr, value)
    with compat.file_format(settings, fmt):
        assert settings.file_format == fmt
    assert settings.file_format == "PNG"
    if hasattr(settings, "media_type"):
        assert settings.media_type == "IMAGE"


def test_strips_and_node_trees(tmp_path):
    import numpy as np

    from z2h.benchmark.png import write_png

    write_png(tmp_path / "a.png", np.zeros((4, 4, 3), np.uint8))
    scene = bpy.data.scenes.new("compat")
    try:
        editor = scene.sequence_editor_create()
        strip = compat.strips(editor).new_image("A", str(tmp_path / "a.png"), 2, 1)
        assert strip.channel == 2 and [s.name for s in compat.all_strips(editor)] == ["A"]
        compat.strips(editor).remove(strip)
        assert len(compat.all_strips(editor)) == 0
    finally:
        bpy.data.scenes.remove(scene)
    mat, world = bpy.data.materials.new("compat"), bpy.data.worlds.new("compat")
    try:
        assert any(n.type == "BSDF_PRINCIPLED" for n in compat.node_tree(mat).nodes)
        assert any(n.type == "BACKGROUND" for n in compat.node_tree(world).nodes)
    finally:
        bpy.data.materials.remove(mat)
        bpy.data.worlds.remove(world)


def test_fcurves_of_a_keyed_object():
    obj = bpy.data.objects.new("compat", None)
    bpy.context.scene.collection.objects.link(obj)
    try:
        assert compat.fcurves(obj) == []
        for frame, x in ((1, 0.0), (5, 2.0)):
            obj.location.x = x
            obj.keyframe_insert("location", index=0, frame=frame)
        (curve,) = compat.fcurves(obj)
        assert curve.data_path == "location" and [k.co.y for k in curve.keyframe_points] == [0.0, 2.0]
    finally:
        bpy.data.objects.remove(obj)
