"""Per-scene settings of the Z2H sidebar (``scene.z2h``) and the state of a running backend job."""

from __future__ import annotations

import bpy
from bpy.props import (
    BoolProperty,
    EnumProperty,
    FloatProperty,
    FloatVectorProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from . import bench

ENGINES = [
    ("CYCLES", "Cycles", "Path tracing (the benchmark's default look)"),
    ("BLENDER_EEVEE", "EEVEE", "Rasterised, slow to start without a GPU"),
    ("BLENDER_WORKBENCH", "Workbench", "Flat solid shading, fastest (draws the material's viewport colour)"),
]


class Z2H_SceneProps(bpy.types.PropertyGroup):
    """What to render and edit, stored with the .blend file."""

    # What the edit is (benchmark pair and "recolour" reference).
    edit_kind: EnumProperty(
        name="Edit", items=[("COLOR", "Colour", "Give the object a new base colour"),
                            ("MATERIAL", "Material", "A new base colour, roughness and metallic")],
        default="COLOR",
    )
    color: FloatVectorProperty(name="New colour", subtype="COLOR", size=3, min=0.0, max=1.0,
                               default=(0.1, 0.35, 0.85))
    roughness: FloatProperty(name="Roughness", default=0.5, min=0.0, max=1.0, subtype="FACTOR")
    metallic: FloatProperty(name="Metallic", default=0.0, min=0.0, max=1.0, subtype="FACTOR")

    # How to render: by default as the scene itself renders.
    use_scene_settings: BoolProperty(
        name="Scene render settings", default=True,
        description="Render at the scene's resolution (with its percentage), engine and samples, else the "
                    "settings below")
    use_scene_range: BoolProperty(name="Scene frame range", default=True,
                                  description="Render the scene's frame range, else the range below")
    frame_start: IntProperty(name="Start", default=1, min=0)
    frame_end: IntProperty(name="End", default=24, min=0)
    resolution_x: IntProperty(name="Width", default=256, min=8, max=8192, subtype="PIXEL")
    resolution_y: IntProperty(name="Height", default=256, min=8, max=8192, subtype="PIXEL")
    engine: EnumProperty(name="Render engine", items=ENGINES, default="CYCLES")
    samples: IntProperty(name="Samples", default=16, min=1, max=4096)
    output_dir: StringProperty(name="Output folder", subtype="DIR_PATH", default="//z2h",
                               description="Benchmarks and edit results go here ('//' = next to the .blend)")
    video_name: StringProperty(name="Video name", default="",
                               description="Name of the benchmark video (default: the object's name)")

    # The z2h edit.
    source: EnumProperty(
        name="Video",
        items=[("SCENE", "3D scene", "Render the frames from the 3D scene"),
               ("STRIP", "Sequencer strip", "Filmed video: the active movie or image strip of this scene's "
                                            "Video Sequencer"),
               ("CLIP", "Movie Clip", "Filmed video: a Movie Clip")],
        default="SCENE",
    )
    clip: PointerProperty(name="Movie Clip", type=bpy.types.MovieClip)
    reference_mode: EnumProperty(
        name="Reference",
        items=[("RECOLOR", "Recolour object", "Render the anchor frame with the active object recoloured"),
               ("IMAGE", "Image file", "An edited anchor frame made elsewhere (same size as the render)")],
        default="RECOLOR",
    )
    reference_path: StringProperty(name="Reference image", subtype="FILE_PATH", default="")
    paint_image: StringProperty(name="Anchor to paint", default="",
                                description="The image Render Anchor made, to paint the new look on")
    rerender: BoolProperty(name="Re-render original", default=False,
                           description="Render the original frames again although the scene looks unchanged "
                                       "(the cache is keyed on the scene's content and render settings)")

    # State of the running job (written by the add-on, shown in the panel).
    job_status: StringProperty(name="Status", default="")
    job_stage: StringProperty(name="Stage", default="")
    job_progress: FloatProperty(name="Progress", default=0.0, min=0.0, max=1.0, subtype="FACTOR")
    job_message: StringProperty(name="Message", default="")
    job_eta: FloatProperty(name="Time left in this stage (s)", default=-1.0)  # -1: not known yet
    job_log: StringProperty(name="Log", subtype="FILE_PATH", default="")
    job_tail: StringProperty(name="Last log lines", default="")  # shown when a task failed
    result_dir: StringProperty(name="Result", subtype="DIR_PATH", default="")


def frame_range(scene: bpy.types.Scene) -> tuple[int, int]:
    """The (first, last) frame to render, inclusive; ValueError if the range is empty."""
    props = scene.z2h
    start, end = (scene.frame_start, scene.frame_end) if props.use_scene_range else (props.frame_start,
                                                                                      props.frame_end)
    if end < start:
        raise ValueError(f"empty frame range {start}..{end} in scene {scene.name!r}")
    return start, end


SUPPORTED_ENGINES = {e[0] for e in ENGINES}


def render_options(scene: bpy.types.Scene) -> tuple[tuple[int, int], str, int]:
    """(resolution, engine, samples) to render with: the scene's own (the default) or the sidebar's.
    ValueError when the scene's engine is one the add-on cannot drive."""
    props = scene.z2h
    if not props.use_scene_settings:
        return (props.resolution_x, props.resolution_y), props.engine, props.samples
    r = scene.render
    pct = r.resolution_percentage / 100
    resolution = (max(8, round(r.resolution_x * pct)), max(8, round(r.resolution_y * pct)))
    engine = bench.module("blender_compat").engine_name(r.engine)
    if engine not in SUPPORTED_ENGINES:
        raise ValueError(f"the scene renders with {r.engine}, which the add-on cannot drive: switch to "
                         "Cycles, EEVEE or Workbench, or untick 'Scene render settings'")
    samples = {"CYCLES": lambda: scene.cycles.samples,
               "BLENDER_EEVEE": lambda: scene.eevee.taa_render_samples}.get(engine, lambda: 1)()
    return resolution, engine, int(samples)
