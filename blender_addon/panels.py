"""The "Z2H" tab of the 3D view sidebar: Benchmark and Edit panels."""

from __future__ import annotations

import bpy

from . import jobs


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
        layout.operator("z2h.render_pair", icon="RENDER_ANIMATION")
        layout.operator("z2h.export_spec", icon="EXPORT")


class Z2H_PT_edit(_Z2HPanel, bpy.types.Panel):
    bl_label = "Edit"

    def draw(self, context):
        layout, scene = self.layout, context.scene
        props = scene.z2h
        layout.label(text=f"Anchor: frame {scene.frame_current}", icon="KEYFRAME")
        layout.prop(props, "reference_mode", text="")
        if props.reference_mode == "IMAGE":
            layout.prop(props, "reference_path", text="")
        else:
            _draw_edit_settings(layout, props)
        layout.prop(props, "rerender")
        if jobs.busy():
            text = f"{props.job_stage or 'starting'}: {props.job_progress:.0%}"
            layout.progress(factor=props.job_progress, type="BAR", text=text)
            layout.operator("z2h.cancel", icon="CANCEL")
        else:
            layout.operator("z2h.run_edit", icon="PLAY")
            if props.job_status in ("error", "cancelled") and props.job_message:
                layout.label(text=props.job_message, icon="ERROR")
            elif props.result_dir:
                layout.label(text=f"Result: {props.result_dir}", icon="CHECKMARK")
