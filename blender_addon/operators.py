"""Operators of the Z2H sidebar. Thin: the work happens in jobs.py, pair.py, rendering.py and the
benchmark code. Long tasks run as subprocesses (:mod:`.background`, the backend) that a modal timer
follows, so Blender stays usable; Esc or Cancel stops them mid-frame."""

from __future__ import annotations

import time
from pathlib import Path

import bpy
from bpy.props import BoolProperty, StringProperty

from . import jobs, pair
from .client import BackendError, check_backend
from .preferences import addon_preferences, backend_settings

TIMER_INTERVAL = 0.25  # seconds between progress polls of a running task


def _active_object(context):
    return context.view_layer.objects.active


def redraw_progress(context) -> None:
    """Redraw what shows progress: the sidebar and the status bar."""
    for area in context.screen.areas if context.screen else ():
        if area.type in ("VIEW_3D", "STATUSBAR"):
            area.tag_redraw()


def _show_error(context, message: str) -> None:
    """Input errors stay visible in the panel, not only in the report line."""
    props = context.scene.z2h
    props.job_status, props.job_message, props.job_tail = "error", message, ""


class _FollowRun:
    """An operator that starts a background task (``_start``) and follows it (:func:`jobs.active_job`) to
    ``_finish``: modal from the UI, on a timer; blocking from scripts and background mode."""

    _timer = None

    def _start(self, context) -> bool:
        raise NotImplementedError

    def _finish(self, scene, state) -> set[str]:
        raise NotImplementedError

    def invoke(self, context, event):
        return self._follow(context) if self._start(context) else {"CANCELLED"}

    def execute(self, context):
        return self._wait(context) if self._start(context) else {"CANCELLED"}

    def _follow(self, context) -> set[str]:
        wm = context.window_manager
        self._timer = wm.event_timer_add(TIMER_INTERVAL, window=context.window)
        wm.modal_handler_add(self)
        redraw_progress(context)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if event.type == "ESC" and event.value == "PRESS":
            jobs.cancel_active()  # the next tick sees the cancellation and finishes
            return {"RUNNING_MODAL"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}  # the user keeps working meanwhile
        redraw_progress(context)
        run = jobs.active_job()
        if run is None:  # collected elsewhere (the file was closed)
            self._stop_timer(context)
            return {"CANCELLED"}
        scene = jobs.active_scene(context.scene)  # the user may have switched scenes meanwhile
        state = jobs.poll_step(scene, run)
        if state.finished:
            self._stop_timer(context)
            redraw_progress(context)
            return self._report(scene, state)
        return {"PASS_THROUGH"}

    def _report(self, scene, state) -> set[str]:
        kind, message = self._finish(scene, state)
        self.report({kind}, message)
        return {"FINISHED"} if kind == "INFO" else {"CANCELLED"}

    def _stop_timer(self, context):
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None

    def _wait(self, context) -> set[str]:
        """Blocking variant for scripts and background mode (no event loop there)."""
        run = jobs.active_job()
        while not (state := jobs.poll_step(context.scene, run)).finished:
            time.sleep(TIMER_INTERVAL / 5)
        return self._report(context.scene, state)


def _poll_task(cls, context, need_mesh: bool) -> bool:
    if jobs.busy():
        cls.poll_message_set("A z2h task is running: wait for it or press Cancel (Esc)")
        return False
    if context.scene.camera is None and (need_mesh or context.scene.z2h.source == "SCENE"):
        cls.poll_message_set("The scene has no active camera to render from")
        return False
    obj = _active_object(context)
    if need_mesh and (obj is None or obj.type != "MESH"):
        cls.poll_message_set("Select the mesh object to edit (make it the active object)")
        return False
    return True


class Z2H_OT_render_pair(_FollowRun, bpy.types.Operator):
    """Render original, edited and mask sequences of the active object into a benchmark (z2h bench
    format), in the background"""

    bl_idname = "z2h.render_pair"
    bl_label = "Render Pair"

    overwrite: BoolProperty(name="Overwrite", default=False, options={"SKIP_SAVE"},
                            description="Replace a video of the same name in the output folder")

    @classmethod
    def poll(cls, context):
        return _poll_task(cls, context, need_mesh=True)

    def _start(self, context) -> bool:
        try:
            pair.begin_pair(context, backend_settings(context), overwrite=self.overwrite)
        except (ValueError, OSError, RuntimeError) as exc:
            _show_error(context, f"Render pair: {exc}")
            self.report({"ERROR"}, f"Render pair: {exc}")
            return False
        return True

    def _finish(self, scene, state):
        return pair.finish_pair(scene, state)


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


class _EditTask(_FollowRun):
    """An operator for one background task of the edit: ``jobs.begin_<task>`` to ``jobs.finish_<task>``."""

    task = ""

    @classmethod
    def poll(cls, context):
        return _poll_task(cls, context, need_mesh=False)

    def _start(self, context) -> bool:
        try:
            getattr(jobs, f"begin_{self.task}")(context)
        except jobs.EditError as exc:
            _show_error(context, str(exc))
            self.report({"ERROR"}, str(exc))
            return False
        return True

    def _finish(self, scene, state):
        return getattr(jobs, f"finish_{self.task}")(scene, state)


class Z2H_OT_run_edit(_EditTask, bpy.types.Operator):
    """Propagate an edit of the current frame through the animation with z2h (renders the inputs and
    runs the backend in the background)"""

    bl_idname = "z2h.run_edit"
    bl_label = "Run z2h"
    task = "edit"


class Z2H_OT_render_anchor(_EditTask, bpy.types.Operator):
    """Render the current frame in the background and open it for painting the new look in an Image
    Editor (Blender's texture paint tools)"""

    bl_idname = "z2h.render_anchor"
    bl_label = "Render Anchor"
    task = "anchor"


class Z2H_OT_use_painted(bpy.types.Operator):
    """Save the painted anchor frame and use it as the reference of Run z2h"""

    bl_idname = "z2h.use_painted"
    bl_label = "Use Painted Image"

    @classmethod
    def poll(cls, context):
        if bpy.data.images.get(context.scene.z2h.paint_image) is None:
            cls.poll_message_set("Press Render Anchor first, then paint on the image")
            return False
        return True

    def execute(self, context):
        try:
            path = jobs.use_painted_image(context)
        except (jobs.EditError, RuntimeError, OSError) as exc:
            self.report({"ERROR"}, f"Use painted image: {exc}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"z2h: reference is now {path}")
        return {"FINISHED"}


class Z2H_OT_cancel(bpy.types.Operator):
    """Stop the running z2h task (terminates its whole process group, mid-frame)"""

    bl_idname = "z2h.cancel"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context):
        if not jobs.busy():
            cls.poll_message_set("Nothing is running")
            return False
        return True

    def execute(self, context):
        jobs.cancel_active()
        self.report({"INFO"}, "z2h: cancelling")
        return {"FINISHED"}


class _OpenPath:
    """Open a file or folder with the system's application (Blender's wm.path_open)."""

    @classmethod
    def _path(cls, context) -> str:
        raise NotImplementedError

    @classmethod
    def poll(cls, context):
        path = cls._path(context)
        if not path or not Path(path).exists():
            cls.poll_message_set(cls.missing)
            return False
        return True

    def execute(self, context):
        bpy.ops.wm.path_open(filepath=self._path(context))
        return {"FINISHED"}


class Z2H_OT_open_log(_OpenPath, bpy.types.Operator):
    """Open the log of the last z2h task (the render's or the backend's output)"""

    bl_idname = "z2h.open_log"
    bl_label = "Open Log"
    missing = "No log yet: run a task first"

    @classmethod
    def _path(cls, context):
        return jobs.active_scene(context.scene).z2h.job_log


class Z2H_OT_play_result(bpy.types.Operator):
    """Play the last result in Blender's animation player, at the scene's frame rate"""

    bl_idname = "z2h.play_result"
    bl_label = "Play Preview"

    @classmethod
    def _first_frame(cls, context):
        frames = sorted((Path(context.scene.z2h.result_dir) / "frames").glob("*.png"))
        return frames[0] if context.scene.z2h.result_dir and frames else None

    @classmethod
    def poll(cls, context):
        if cls._first_frame(context) is None:
            cls.poll_message_set("No result yet")
            return False
        if not bpy.app.binary_path:
            cls.poll_message_set("Needs Blender's animation player (not available in the bpy module)")
            return False
        return True

    def execute(self, context):
        import subprocess

        from .background import preview_command

        render = context.scene.render
        argv = preview_command(self._first_frame(context), render.fps, render.fps_base)
        subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return {"FINISHED"}


class Z2H_OT_open_path(bpy.types.Operator):
    """Open this folder with the system's file browser"""

    bl_idname = "z2h.open_path"
    bl_label = "Open"

    filepath: StringProperty(subtype="DIR_PATH", options={"SKIP_SAVE"})

    def execute(self, context):
        if not Path(self.filepath).exists():
            self.report({"ERROR"}, f"{self.filepath} no longer exists")
            return {"CANCELLED"}
        bpy.ops.wm.path_open(filepath=self.filepath)
        return {"FINISHED"}


class Z2H_OT_open_result(_OpenPath, bpy.types.Operator):
    """Open the folder of the last z2h result"""

    bl_idname = "z2h.open_result"
    bl_label = "Open Folder"
    missing = "No result yet"

    @classmethod
    def _path(cls, context):
        return context.scene.z2h.result_dir


class Z2H_OT_setup_backend(_FollowRun, bpy.types.Operator):
    """Create the backend environment (a venv with the pinned torch and z2h) in the chosen folder and
    use it as the Backend Python. Needs Online Access"""

    bl_idname = "z2h.setup_backend"
    bl_label = "Set Up Backend"

    @classmethod
    def poll(cls, context):
        from .setup_backend import online_access

        if not online_access():
            cls.poll_message_set("Needs Online Access (Preferences › System); or install the backend by hand")
            return False
        if jobs.busy():
            cls.poll_message_set("A z2h task is running: wait for it or press Cancel")
            return False
        return True

    def _start(self, context) -> bool:
        try:
            jobs.begin_setup(context)
        except jobs.EditError as exc:
            self.report({"ERROR"}, str(exc))
            return False
        return True

    def _finish(self, scene, state):
        return jobs.finish_setup(scene, state)


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
