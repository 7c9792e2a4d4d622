"""The "Z2H" tab of the 3D view sidebar (Benchmark and Edit panels) and the status-bar progress."""

from __future__ import annotations

import bpy

from . import jobs, pair
from .preferences import backend_settings
from .props import ENGINES, render_options


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


def progress_text(props) -> str:
    """One line for the panel and the status bar, e.g. "35% · Rendering frame 12/48 · ~0:40 left"."""
    text = f"{props.job_progress:.0%} · {props.job_stage or 'Starting'}"
    if props.job_eta >= 0:
        text += f" · ~{_clock(props.job_eta)} left in this stage"
    return text


def _draw_progress(layout, props) -> None:
    layout.progress(factor=props.job_progress, type="BAR", text=progress_text(props))
    row = layout.row(align=True)
    row.operator("z2h.cancel", icon="CANCEL")
    row.operator("z2h.open_log", text="", icon="TEXT")


def _draw_outcome(layout, props) -> None:
    """The last task's error (with the log's last lines) or cancellation."""
    if props.job_status not in ("error", "cancelled") or not props.job_message:
        return
    box = layout.box()
    box.label(text=props.job_message, icon="ERROR" if props.job_status == "error" else "CANCEL")
    for line in props.job_tail.splitlines():
        box.label(text=line)
    if props.job_log:
        box.operator("z2h.open_log", icon="TEXT")


def draw_status_bar(self, context) -> None:
    """Appended to Blender's status bar while a z2h task runs."""
    if not jobs.busy():
        return
    props = jobs.active_scene(context.scene).z2h
    row = self.layout.row()
    row.progress(factor=props.job_progress, type="BAR", text="Z2H " + progress_text(props))
    row.operator("z2h.cancel", text="", icon="CANCEL")


class _Z2HPanel:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Z2H"


def _draw_render_settings(layout, scene) -> None:
    props = scene.z2h
    col = layout.column(align=True)
    col.prop(props, "use_scene_range")
    if not props.use_scene_range:
        row = col.row(align=True)
        row.prop(props, "frame_start")
        row.prop(props, "frame_end")
    col.prop(props, "use_scene_settings")
    if props.use_scene_settings:
        try:
            (w, h), engine, samples = render_options(scene)
            name = next(e[1] for e in ENGINES if e[0] == engine)
            text = f"{w}×{h} · {name} · {samples} samples · {scene.render.fps} fps"
            col.label(text=text, icon="SCENE_DATA")
        except ValueError as exc:
            col.label(text=str(exc), icon="ERROR")
        return
    row = col.row(align=True)
    row.prop(props, "resolution_x", text="W")
    row.prop(props, "resolution_y", text="H")
    col.prop(props, "engine", text="")
    if props.engine != "BLENDER_WORKBENCH":
        col.prop(props, "samples")


def _draw_edit_settings(layout, props) -> None:
    layout.prop(props, "edit_kind", expand=True)
    layout.prop(props, "color")
    if props.edit_kind == "MATERIAL":
        layout.prop(props, "roughness")
        layout.prop(props, "metallic")


class Z2H_PT_benchmark(_Z2HPanel, bpy.types.Panel):
    bl_label = "Benchmark"

    def draw(self, context):
        layout, scene = self.layout, context.scene
        obj = context.view_layer.objects.active
        layout.label(text=f"Object: {obj.name}" if obj else "Select an object", icon="OBJECT_DATA")
        _draw_edit_settings(layout, scene.z2h)
        _draw_render_settings(layout, scene)
        layout.prop(scene.z2h, "video_name")
        layout.prop(scene.z2h, "output_dir")
        run = jobs.active_job()
        if jobs.busy() and run is not None and run.kind == "pair":
            _draw_progress(layout, scene.z2h)
            return
        layout.operator("z2h.render_pair", icon="RENDER_ANIMATION")
        existing = pair.existing_pair(context, backend_settings(context)) if obj is not None else None
        if existing is not None:  # a second Render Pair needs an explicit overwrite
            op = layout.operator("z2h.render_pair", text=f"Overwrite {existing.name}", icon="ERROR")
            op.overwrite = True
        layout.operator("z2h.export_spec", icon="EXPORT")


class Z2H_PT_edit(_Z2HPanel, bpy.types.Panel):
    bl_label = "Edit"

    def draw(self, context):
        layout, scene = self.layout, context.scene
        props = scene.z2h
        layout.label(text=f"Anchor: frame {scene.frame_current}", icon="KEYFRAME")
        layout.prop(props, "source")
        if props.source == "CLIP":
            layout.prop(props, "clip", text="")
        elif props.source == "STRIP":
            editor = scene.sequence_editor
            strip = editor.active_strip if editor is not None else None
            text = f"Strip: {strip.name}" if strip is not None else "Select a strip in the Sequencer"
            layout.label(text=text, icon="SEQUENCE")
        layout.prop(props, "reference_mode", text="")
        if props.reference_mode == "IMAGE":
            layout.prop(props, "reference_path", text="")
            row = layout.row(align=True)  # or paint it: render the anchor, paint, use it
            row.operator("z2h.render_anchor", icon="RENDER_STILL")
            row.operator("z2h.use_painted", icon="BRUSH_DATA")
        else:
            _draw_edit_settings(layout, props)
        layout.prop(props, "rerender")
        run = jobs.active_job()
        if jobs.busy() and run is not None and run.kind in ("edit", "anchor"):
            _draw_progress(layout, props)
            return
        layout.operator("z2h.run_edit", icon="PLAY")
        _draw_outcome(layout, props)
        if props.result_dir and props.job_status == "done":
            layout.label(text=f"Result: {props.result_dir}", icon="CHECKMARK")
            row = layout.row(align=True)
            row.operator("z2h.open_result", icon="FILE_FOLDER")
            row.operator("z2h.play_result", icon="PLAY")
            row.operator("z2h.open_log", icon="TEXT")
        history = jobs.run_history(context, backend_settings(context))
        if history:
            col = layout.column(align=True)
            col.label(text="Runs of this video:")
            for folder, done in history:
                row = col.row(align=True)
                row.label(text=folder.name, icon="CHECKMARK" if done else "X")
                row.operator("z2h.open_path", text="", icon="FILE_FOLDER").filepath = str(folder)
