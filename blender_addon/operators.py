"""Operators of the Z2H sidebar. Thin: the work happens in jobs.py, rendering.py and the benchmark code."""

from __future__ import annotations

import time

import bpy
from bpy.props import BoolProperty, StringProperty

from . import jobs, pair
from .client import BackendError, check_backend
from .preferences import addon_preferences, backend_settings

TIMER_INTERVAL = 0.25  # seconds between progress polls of a running backend


def _active_object(context):
    return context.view_layer.objects.active


class Z2H_OT_render_pair(bpy.types.Operator):
    """Render original, edited and mask sequences of the active object into a benchmark (z2h bench format)"""

    bl_idname = "z2h.render_pair"
    bl_label = "Render Pair"

    overwrite: BoolProperty(name="Overwrite", default=False, options={"SKIP_SAVE"},
                            description="Replace a video of the same name in the output folder")

    @classmethod
    def poll(cls, context):
        obj = _active_object(context)
        return obj is not None and obj.type == "MESH" and context.scene.camera is not None

    def execute(self, context):
        wm = context.window_manager
        wm.progress_begin(0, 1)
        try:
            out = pair.render_pair(context, backend_settings(context), overwrite=self.overwrite,
                                   progress=lambda done, total: wm.progress_update(done / max(total, 1)))
        except (ValueError, OSError, RuntimeError) as exc:
            self.report({"ERROR"}, f"Render pair: {exc}")
            return {"CANCELLED"}
        finally:
            wm.progress_end()
        self.report({"INFO"}, f"Benchmark video written to {out}")
        return {"FINISHED"}


class Z2H_OT_export_spec(bpy.types.Operator):
    """Write the current scene and edit as a benchmark scene spec (TOML) for scenes/"""

    bl_idname = "z2h.export_spec"
    bl_label = "Export Scene Spec"

    filepath: StringProperty(subtype="FILE_PATH", options={"SKIP_SAVE"})
    filter_glob: StringProperty(default="*.toml", options={"HIDDEN"})

    @classmethod
    def poll(cls, context):
        return _active_object(context) is not None and context.scene.camera is not None

    def invoke(self, context, event):
        if not self.filepath:
            self.filepath = f"{jobs.video_name(context.scene, _active_object(context))}.toml"
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        if not self.filepath:
            self.report({"ERROR"}, "Export scene spec: no file path given")
            return {"CANCELLED"}
        try:
            path = bpy.path.ensure_ext(bpy.path.abspath(self.filepath), ".toml")
            path, warnings = pair.export_spec(context, path)
        except (ValueError, OSError) as exc:
            self.report({"ERROR"}, f"Export scene spec: {exc}")
            return {"CANCELLED"}
        for warning in warnings:
            self.report({"WARNING"}, warning)
        self.report({"INFO"}, f"Scene spec written to {path}")
        return {"FINISHED"}


class Z2H_OT_run_edit(bpy.types.Operator):
    """Propagate an edit of the current frame through the animation with z2h (runs the backend)"""

    bl_idname = "z2h.run_edit"
    bl_label = "Run z2h"

    _timer = None
    _steps = None  # the input-rendering generator of jobs.begin_edit, until the backend runs

    @classmethod
    def poll(cls, context):
        return context.scene.camera is not None and not jobs.busy()

    def _advance(self, context) -> bool:
        """Render the next input frame (the last step starts the backend); False once it failed."""
        try:
            done, total = next(self._steps)
        except StopIteration:
            self._steps = None  # the backend is running
            return True
        except jobs.Cancelled as exc:
            self._steps = None
            self.report({"WARNING"}, str(exc))
            return False
        except jobs.EditError as exc:
            self._steps = None
            self.report({"ERROR"}, str(exc))
            return False
        jobs.active_scene(context.scene).z2h.job_progress = done / max(total, 1)
        return True

    def _finish(self, scene, state) -> set[str]:
        kind, message = jobs.finish_edit(scene, state)
        self.report({kind}, message)
        return {"FINISHED"} if kind == "INFO" else {"CANCELLED"}

    def invoke(self, context, event):
        try:
            self._steps = jobs.begin_edit(context)
        except jobs.EditError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        if not self._advance(context):  # scene problems show at once, not after the first tick
            return {"CANCELLED"}
        wm = context.window_manager
        self._timer = wm.event_timer_add(TIMER_INTERVAL, window=context.window)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if event.type == "ESC" and event.value == "PRESS":
            jobs.cancel_active()  # the next tick sees the cancellation and finishes
            return {"RUNNING_MODAL"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}  # the user keeps working meanwhile
        for area in context.screen.areas if context.screen else ():
            if area.type == "VIEW_3D":
                area.tag_redraw()
        if self._steps is not None:  # still rendering inputs: one frame per tick
            if not self._advance(context):
                self._stop_timer(context)
                return {"CANCELLED"}
            return {"PASS_THROUGH"}
        job = jobs.active_job()
        if job is None:  # collected elsewhere (the file was closed)
            self._stop_timer(context)
            return {"CANCELLED"}
        scene = jobs.active_scene(context.scene)  # the user may have switched scenes meanwhile
        state = jobs.poll_step(scene, job)
        if state.finished:
            self._stop_timer(context)
            return self._finish(scene, state)
        return {"PASS_THROUGH"}

    def _stop_timer(self, context):
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None

    def execute(self, context):
        """Blocking variant for scripts and background mode (no event loop there)."""
        wm = context.window_manager
        wm.progress_begin(0, 1)
        try:
            job = jobs.start_edit(context, progress=lambda done, total: wm.progress_update(done / total))
        except (jobs.EditError, jobs.Cancelled) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        finally:
            wm.progress_end()
        while not (state := jobs.poll_step(context.scene, job)).finished:
            time.sleep(TIMER_INTERVAL / 5)
        return self._finish(context.scene, state)


class Z2H_OT_cancel(bpy.types.Operator):
    """Stop the running z2h edit (terminates the backend's whole process group)"""

    bl_idname = "z2h.cancel"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context):
        return jobs.busy()

    def execute(self, context):
        jobs.cancel_active()
        self.report({"INFO"}, "z2h: cancelling")
        return {"FINISHED"}


class Z2H_OT_check_backend(bpy.types.Operator):
    """Run the backend Python with `-m z2h --version` and report the version or the error"""

    bl_idname = "z2h.check_backend"
    bl_label = "Check Backend"

    def execute(self, context):
        prefs = addon_preferences(context)
        try:
            settings = backend_settings(context)
            version = check_backend(settings.python)
        except (BackendError, ValueError) as exc:  # ValueError: unparsable extra arguments
            if prefs is not None:
                prefs.backend_status = f"error: {exc}"
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        if prefs is not None:
            prefs.backend_status = f"{version} ({settings.python})"
        self.report({"INFO"}, f"Backend OK: {version}")
        return {"FINISHED"}
