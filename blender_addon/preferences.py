"""Add-on preferences (backend interpreter, engine, model and cache folders) and their resolved values."""

from __future__ import annotations

import dataclasses
import os
import shlex
import tempfile

import bpy
from bpy.props import EnumProperty, StringProperty

BACKEND_ENGINES = [
    ("offline", "Offline", "VGG16 features + a per-video restorer; runs on a CPU, no model downloads"),
    ("diffusion", "Diffusion", "Stable Diffusion 2.1 + FLUX (the paper's method); needs the model folders"),
]


class Z2H_AddonPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    backend_python: StringProperty(
        name="Backend Python", subtype="FILE_PATH", default="",
        description="The python of a virtual environment with z2h installed (e.g. .venv/bin/python)",
    )
    engine: EnumProperty(name="Engine", items=BACKEND_ENGINES, default="offline")
    zero_model: StringProperty(name="Zero-Stage model", subtype="DIR_PATH", default="",
                               description="Stable Diffusion 2.1 folder or hub id (diffusion engine)")
    hero_model: StringProperty(name="Hero-Stage model", subtype="DIR_PATH", default="",
                               description="FLUX.1 folder or hub id (diffusion engine)")
    extra_args: StringProperty(name="Extra arguments", default="",
                               description="More options for `z2h edit`, e.g. --steps 200 --time-budget 60")
    cache_dir: StringProperty(name="Cache folder", subtype="DIR_PATH", default="",
                              description="Rendered originals and references (empty: the extension's "
                                          "user folder)")
    backend_status: StringProperty(name="Backend", default="not checked")
    backend_dir: StringProperty(name="New backend folder", subtype="DIR_PATH", default="",
                                description="Where Set up backend creates the backend's environment")
    backend_source: StringProperty(
        name="z2h source", default="",
        description="A z2h checkout folder, a wheel or a pip requirement (empty: z2h)")

    def draw(self, context):
        layout = self.layout
        row = layout.row(align=True)
        row.prop(self, "backend_python")
        row.operator("z2h.check_backend", text="Check", icon="CHECKMARK")
        layout.label(text=f"Backend: {self.backend_status}")
        box = layout.box()  # or let the add-on make the environment
        box.label(text="No backend yet? Make one (downloads torch, ~1 GB on CPU):")
        box.prop(self, "backend_dir")
        box.prop(self, "backend_source")
        from . import jobs, panels

        run = jobs.active_job()
        if jobs.busy() and run is not None and run.kind == "setup":
            panels._draw_progress(box, jobs.active_scene(context.scene).z2h)
        else:
            box.operator("z2h.setup_backend", icon="CONSOLE")
        layout.prop(self, "engine")
        col = layout.column()
        col.active = self.engine == "diffusion"
        col.prop(self, "zero_model")
        col.prop(self, "hero_model")
        layout.prop(self, "extra_args")
        layout.prop(self, "cache_dir")
        if not self.cache_dir:
            layout.label(text=f"Using {default_cache_dir()}", icon="INFO")


@dataclasses.dataclass
class BackendSettings:
    """The preferences, resolved to absolute paths (plain data, so job code needs no bpy preferences)."""

    python: str = ""
    engine: str = "offline"
    zero_model: str = ""
    hero_model: str = ""
    cache_dir: str = ""
    extra_args: list[str] = dataclasses.field(default_factory=list)


def default_cache_dir() -> str:
    """The extension's user folder (kept across updates, never the add-on's own folder); outside an
    installed extension (a checkout, tests) a folder in the temp directory."""
    try:
        return bpy.utils.extension_path_user(__package__, path="cache", create=True)
    except ValueError:  # not running as an extension ("package does not name an extension")
        return os.path.join(tempfile.gettempdir(), "z2h-cache")


def addon_preferences(context: bpy.types.Context | None = None) -> Z2H_AddonPreferences | None:
    """This add-on's preferences, or None when it was registered without being enabled as an add-on."""
    context = context or bpy.context
    addon = context.preferences.addons.get(__package__)
    return addon.preferences if addon is not None else None


def _path(value: str) -> str:
    if not value:
        return ""
    expanded = os.path.expanduser(bpy.path.abspath(value))
    # Hub ids ("org/model") and bare commands ("python3") are not paths: keep them unless such a file exists.
    if value.startswith(("//", "~", "/")) or os.path.exists(expanded):
        return os.path.abspath(expanded)
    return value


def backend_settings(context: bpy.types.Context | None = None) -> BackendSettings:
    """The effective settings. Without enabled preferences, ``Z2H_BACKEND_PYTHON`` names the backend.
    ValueError if the extra arguments are not valid shell words (an unclosed quote)."""
    prefs = addon_preferences(context)
    if prefs is None:
        return BackendSettings(python=os.environ.get("Z2H_BACKEND_PYTHON", ""), cache_dir=default_cache_dir())
    return BackendSettings(
        python=_path(prefs.backend_python),
        engine=prefs.engine,
        zero_model=_path(prefs.zero_model),
        hero_model=_path(prefs.hero_model),
        cache_dir=_path(prefs.cache_dir) if prefs.cache_dir else default_cache_dir(),
        extra_args=shlex.split(prefs.extra_args),
    )
