"""Z2H for Blender: benchmark pairs and reference-based appearance edits from the 3D view sidebar.

The metadata lives in blender_manifest.toml (a Blender 4.2+ extension). Importing this package only
defines classes; :func:`register` adds them, ``Scene.z2h`` and a load_pre handler that cancels a
running backend when the file is closed.

Licence: GPL-3.0-or-later (LICENSE), as Blender expects of add-ons, which import bpy. The zip bundles
z2h's MIT-licensed ``benchmark/`` code, which GPL allows; the z2h backend itself stays MIT.
"""

from __future__ import annotations

import bpy

from . import jobs, operators, panels, preferences, props

classes = (
    props.Z2H_SceneProps,
    preferences.Z2H_AddonPreferences,
    operators.Z2H_OT_render_pair,
    operators.Z2H_OT_export_spec,
    operators.Z2H_OT_run_edit,
    operators.Z2H_OT_render_anchor,
    operators.Z2H_OT_use_painted,
    operators.Z2H_OT_cancel,
    operators.Z2H_OT_open_log,
    operators.Z2H_OT_open_result,
    operators.Z2H_OT_open_path,
    operators.Z2H_OT_play_result,
    operators.Z2H_OT_check_backend,
    operators.Z2H_OT_setup_backend,
    panels.Z2H_PT_benchmark,
    panels.Z2H_PT_edit,
)

_register_classes, _unregister_classes = bpy.utils.register_classes_factory(classes)


@bpy.app.handlers.persistent
def cancel_on_load(*_args) -> None:
    """Closing the file (loading another) must not leave an orphan backend running."""
    if jobs.close_active():
        print("z2h: cancelled the running backend because the file is being closed")


def _is_ours(handler) -> bool:
    # By name, not identity: a reloaded module defines a new function object.
    name, module = getattr(handler, "__name__", ""), getattr(handler, "__module__", "")
    return name == "cancel_on_load" and module == __name__


def register() -> None:
    unregister()  # registering twice (a script reload) replaces instead of failing
    _register_classes()
    bpy.types.Scene.z2h = bpy.props.PointerProperty(type=props.Z2H_SceneProps)
    bpy.app.handlers.load_pre.append(cancel_on_load)
    bpy.types.STATUSBAR_HT_header.append(panels.draw_status_bar)


def unregister() -> None:
    for handler in [h for h in bpy.app.handlers.load_pre if _is_ours(h)]:
        bpy.app.handlers.load_pre.remove(handler)
    bpy.types.STATUSBAR_HT_header.remove(panels.draw_status_bar)  # a no-op when absent
    jobs.close_active()
    if hasattr(bpy.types.Scene, "z2h"):
        del bpy.types.Scene.z2h
    if all(cls.is_registered for cls in classes):
        _unregister_classes()
