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
    print("JSON" + json.dumps({
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
    out = subprocess.run([sys.executable, str(script), str(zip_path)], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    info = json.loads(next(line[4:] for line in out.stdout.splitlines() if line.startswith("JSON")))
    assert info["result"] == ["FINISHED"]
    assert info["render_module"] == "bl_ext.user_default.z2h.benchmark.render"  # the bundled copy
    assert info["panels"] == [True, True] and info["scene_props"] and info["engine"] == "offline"
    # The cache defaults to the extension's user folder, outside the installed add-on's own folder.
    installed = tmp_path / "user" / "extensions" / "user_default" / "z2h"
    assert (installed / "blender_manifest.toml").is_file()
    assert info["cache"].startswith(str(tmp_path / "user")) and not info["cache"].startswith(str(installed))
