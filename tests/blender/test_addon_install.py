"""The zip from `z2h addon build` installs and enables in Blender as an extension (a fresh process,
because BLENDER_USER_RESOURCES must be set before bpy starts)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("bpy")

from z2h.addon_build import build  # noqa: E402

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import bpy
    result = bpy.ops.extensions.package_install_files(filepath=sys.argv[1], repo="user_default",
                                                      enable_on_install=True)
    from bl_ext.user_default.z2h import bench, preferences
    prefs = bpy.context.preferences.addons["bl_ext.user_default.z2h"].preferences
    # Render Pair from the installed extension: its background worker runs the zip's own code.
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 1, 2
    scene.render.engine, scene.render.resolution_x, scene.render.resolution_y = "BLENDER_WORKBENCH", 16, 16
    cam = bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam"))
    scene.collection.objects.link(cam)
    cam.location, cam.rotation_euler, scene.camera = (0, -5, 0), (1.5708, 0, 0), cam
    bpy.ops.mesh.primitive_cube_add()
    scene.z2h.output_dir = sys.argv[2]
    pair = sorted(bpy.ops.z2h.render_pair())
    print("JSON" + json.dumps({
        "pair": pair,
        "result": sorted(result),
        "render_module": bench.module("render").__name__,
        "panels": [hasattr(bpy.types, n) for n in ("Z2H_PT_benchmark", "Z2H_PT_edit")],
        "engine": prefs.engine,
        "cache": preferences.backend_settings().cache_dir,
        "scene_props": hasattr(bpy.context.scene, "z2h"),
    }))
    """
)


def test_zip_installs_and_enables_as_an_extension(tmp_path):
    zip_path = build(tmp_path / "dist")
    script = tmp_path / "install.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "BLENDER_USER_RESOURCES": str(tmp_path / "user")}
    out = subprocess.run([sys.executable, str(script), str(zip_path), str(tmp_path / "out")], env=env,
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    info = json.loads(next(line[4:] for line in out.stdout.splitlines() if line.startswith("JSON")))
    assert info["result"] == ["FINISHED"] and info["pair"] == ["FINISHED"]
    cube = tmp_path / "out" / "bench" / "Cube"
    assert sorted(p.name for p in (cube / "mask").iterdir()) == ["0000.png", "0001.png"]
    assert (tmp_path / "out" / "bench" / "manifest.json").is_file()
    assert info["render_module"] == "bl_ext.user_default.z2h.benchmark.render"  # the bundled copy
    assert info["panels"] == [True, True] and info["scene_props"] and info["engine"] == "offline"
    # The cache defaults to the extension's user folder, outside the installed add-on's own folder.
    installed = tmp_path / "user" / "extensions" / "user_default" / "z2h"
    assert (installed / "blender_manifest.toml").is_file()
    assert info["cache"].startswith(str(tmp_path / "user")) and not info["cache"].startswith(str(installed))
