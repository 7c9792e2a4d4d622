"""Run z2h from Blender: the plain functions behind the Edit panel's operators.

The modal operator is a thin wrapper around three steps. :func:`begin_edit` returns a generator that
renders the inputs one frame per ``next()`` (so the UI stays responsive and Cancel works while the
originals render) and finally starts the backend; :func:`poll_step` copies the backend's progress
into ``scene.z2h`` on every timer tick; :func:`finish_edit` loads the result (an image strip in the
Video Sequencer of a "Z2H <name>" scene and an image sequence for the Image Editor). Modal operators
and timers do not run headless, so the tests drive these functions directly (:func:`start_edit` runs
the first step to the end). One edit runs at a time; :func:`cancel_active` stops it (the Cancel
button, Esc), :func:`close_active` also when the file is closed or the add-on disabled.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import bpy

from . import bench, fingerprint, rendering
from .client import BackendError, BackendJob, JobState, edit_command
from .preferences import BackendSettings, backend_settings
from .props import frame_range


class EditError(Exception):
    """A problem with the user's input (scene, settings, files), worded for the report area."""


@dataclasses.dataclass
class EditInputs:
    video: Path
    anchor: int
    reference: Path
    out: Path
    frame_start: int
    name: str


class Cancelled(Exception):
    """The user cancelled while the inputs were rendering (before the backend started)."""


# The one edit in flight: "steps" (the input generator, until the backend starts), "job", "inputs",
# "scene" (name of the scene it belongs to) and "cancel" (requested while rendering).
_active: dict[str, object] = {}


def active_job() -> BackendJob | None:
    """The backend job started by the edit, until :func:`finish_edit` collects it."""
    return _active.get("job")


def preparing() -> bool:
    """Whether an edit is rendering its inputs (the backend has not started yet)."""
    return "steps" in _active


def busy() -> bool:
    """Whether an edit is in flight (rendering inputs or running the backend)."""
    job = active_job()
    return preparing() or (job is not None and job.running())


def active_scene(default: bpy.types.Scene) -> bpy.types.Scene:
    """The scene the active edit was started from (its progress properties), else ``default``."""
    return bpy.data.scenes.get(_active.get("scene", ""), default)


def cancel_active(wait: bool = False) -> bool:
    """Cancel the edit in flight: stop rendering inputs at the next frame, or terminate the backend's
    whole process group. Returns whether there was something to cancel."""
    if preparing():
        _active["cancel"] = True
        return True
    job = active_job()
    if job is None or not job.running():
        return False
    job.cancel(wait=wait)
    return True


def close_active() -> bool:
    """Stop the edit in flight now and forget it (file closing, add-on disabled: no modal operator
    is left to collect it); waits until the backend's process group is gone. Whether one was running."""
    steps = _active.get("steps")
    if steps is not None:
        steps.close()  # runs its cleanup: render settings restored, no backend started
    was_running = steps is not None or cancel_active(wait=True)
    _active.clear()
    return was_running


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "untitled"


def video_name(scene: bpy.types.Scene, obj: bpy.types.Object | None) -> str:
    """The name of the video: the sidebar's, else the active object's, else the scene's."""
    return _safe(scene.z2h.video_name or (obj.name if obj is not None else scene.name))


def output_root(scene: bpy.types.Scene, settings: BackendSettings) -> Path:
    """The sidebar's output folder; '//' paths in an unsaved file fall back to the cache folder."""
    raw = scene.z2h.output_dir or "//z2h"
    if raw.startswith("//") and not bpy.data.filepath:
        return Path(settings.cache_dir) / "output"
    return Path(bpy.path.abspath(raw)).expanduser().resolve()


def _unique(path: Path) -> Path:
    candidate, n = path, 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}-{n}")
    return candidate


def _check_reference_size(path: Path, resolution: tuple[int, int]) -> None:
    if path.suffix.lower() != ".png":
        return  # the backend checks other formats itself
    png = bench.module("png")
    try:
        width, height = png.read_header(path)[:2]
    except (OSError, ValueError) as exc:
        raise EditError(f"reference image {path} is not a readable PNG: {exc}") from exc
    if (width, height) != tuple(resolution):
        raise EditError(f"reference image {path} is {width}x{height}, the render is "
                        f"{resolution[0]}x{resolution[1]}: match the resolution in the Z2H panel")


def _prepare_steps(context: bpy.types.Context, settings: BackendSettings) -> Iterator[tuple[int, int]]:
    """Render what the backend needs, yielding (done, total) after each frame: the original frames
    (unless a matching render is cached) and, in "recolour" mode, the anchor frame with the active
    object recoloured. Returns the :class:`EditInputs`."""
    scene, props = context.scene, context.scene.z2h
    obj = context.view_layer.objects.active
    try:
        start, end = frame_range(scene)
    except ValueError as exc:
        raise EditError(str(exc)) from exc
    if not start <= scene.frame_current <= end:
        raise EditError(f"the current frame {scene.frame_current} (the anchor) is outside the range "
                        f"{start}..{end}")
    if scene.camera is None:
        raise EditError(f"scene {scene.name!r} has no active camera")
    anchor_frame = scene.frame_current
    resolution = (props.resolution_x, props.resolution_y)
    name = video_name(scene, obj)
    work = Path(settings.cache_dir) / "edits" / f"{_safe(Path(bpy.data.filepath).stem or 'untitled')}-{name}"

    reference = work / "reference.png"
    if props.reference_mode == "IMAGE":  # check the cheap things before rendering anything
        if not props.reference_path:
            raise EditError("choose a reference image, or set Reference to 'Recolour object'")
        reference = Path(bpy.path.abspath(props.reference_path)).expanduser()
        if not reference.is_file():
            raise EditError(f"reference image not found: {reference}")
        _check_reference_size(reference, resolution)
    elif obj is None:
        raise EditError("select the object to recolour (make it the active object)")

    video = work / "original"
    # The scene's content is part of the key: a moved object or a changed light means new originals.
    stamp = {"blend": bpy.data.filepath, "scene": scene.name, "frames": [start, end],
             "resolution": list(resolution), "engine": props.engine, "samples": props.samples,
             "content": fingerprint.scene_fingerprint(scene, start)}
    render_original = props.rerender or not rendering.cached_sequence(video, stamp)
    total = (end - start + 1 if render_original else 0) + (props.reference_mode == "RECOLOR")
    try:
        if render_original:
            frames = rendering.render_steps(scene, video, range(start, end + 1), resolution, props.engine,
                                            props.samples)
            for done in frames:
                yield done, total
            rendering.write_stamp(video, stamp)
        if props.reference_mode == "RECOLOR":
            overrides = rendering.render_settings(scene, resolution, props.engine, props.samples)
            edit = rendering.make_edit(obj, props)
            with rendering.overridden(scene, overrides), rendering.edited_object(obj, edit):
                current = scene.frame_current
                rendering.render_frame(scene, anchor_frame, reference)
                scene.frame_set(current)
            yield total, total
    except (ValueError, RuntimeError) as exc:
        raise EditError(str(exc)) from exc
    out = _unique(output_root(scene, settings) / "edits" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}")
    return EditInputs(video=video, anchor=anchor_frame - start, reference=reference, out=out,
                      frame_start=start, name=name)


def _edit_steps(context: bpy.types.Context, settings: BackendSettings,
                token: object) -> Iterator[tuple[int, int]]:
    try:
        inputs = None
        with contextlib.closing(_prepare_steps(context, settings)) as steps:
            while True:
                if _active.get("cancel"):
                    raise Cancelled("z2h: edit cancelled")
                try:
                    yield next(steps)
                except StopIteration as stop:
                    inputs = stop.value
                    break
        inputs.out.parent.mkdir(parents=True, exist_ok=True)
        argv = edit_command(settings.python, video=str(inputs.video), anchor=inputs.anchor,
                            reference=str(inputs.reference), out=str(inputs.out), engine=settings.engine,
                            zero_model=settings.zero_model, hero_model=settings.hero_model,
                            extra=settings.extra_args)
        try:
            job = BackendJob(argv)
        except BackendError as exc:
            raise EditError(str(exc)) from exc
    except BaseException:  # errors, Cancelled, and close() (GeneratorExit): the edit is over
        if _active.get("token") is token:  # a stale generator collected late must not end a newer edit
            _active.clear()
        raise
    del _active["steps"]
    _active.update(job=job, inputs=inputs)
    props = active_scene(context.scene).z2h
    props.job_status, props.job_stage, props.job_progress, props.job_message = "running", "starting", 0.0, ""


def begin_edit(context: bpy.types.Context,
               settings: BackendSettings | None = None) -> Iterator[tuple[int, int]]:
    """Start an edit: a generator that renders one input frame per ``next()`` (yielding (done, total))
    and, when exhausted, has started ``python -m z2h edit`` (:func:`active_job`). Raises
    :class:`EditError` for bad input (at once for settings, from ``next()`` for the scene) and
    :class:`Cancelled` from ``next()`` after :func:`cancel_active`."""
    if busy():
        raise EditError("a z2h edit is already running: cancel it first")
    try:
        settings = settings or backend_settings(context)
    except ValueError as exc:
        raise EditError(f"the extra backend arguments in the preferences: {exc}") from exc
    if not settings.python:
        raise EditError("set the backend Python (a venv with z2h installed) in the Z2H add-on preferences")
    token = object()
    steps = _edit_steps(context, settings, token)
    _active.clear()
    _active.update(steps=steps, token=token, scene=context.scene.name)
    props = context.scene.z2h
    props.job_status, props.job_stage, props.job_progress, props.job_message = "rendering", "render", 0.0, ""
    return steps


def start_edit(context: bpy.types.Context, settings: BackendSettings | None = None,
               progress: Callable[[int, int], None] | None = None) -> BackendJob:
    """Render the inputs and start the backend in one call (scripts, tests); returns the job."""
    for done, total in begin_edit(context, settings):
        if progress is not None:
            progress(done, total)
    return active_job()


def poll_step(scene: bpy.types.Scene, job: BackendJob) -> JobState:
    """One timer tick: the job's latest state, copied into ``scene.z2h`` for the progress bar."""
    state = job.poll()
    props = scene.z2h
    props.job_status = state.status
    props.job_stage = state.stage
    props.job_progress = state.fraction
    props.job_message = state.message
    return state


def finish_edit(scene: bpy.types.Scene, state: JobState) -> tuple[str, str]:
    """Collect the finished job; on success load its frames. Returns (report type, message)."""
    inputs: EditInputs | None = _active.get("inputs")
    _active.clear()
    if state.status == "done" and inputs is not None:
        frames = inputs.out / "frames"
        try:
            load_result(scene, frames, inputs.name, inputs.frame_start)
        except EditError as exc:
            return "ERROR", str(exc)
        scene.z2h.result_dir = str(inputs.out)
        return "INFO", f"z2h: result in {inputs.out} (scene 'Z2H {inputs.name}')"
    if state.status == "cancelled":
        return "WARNING", "z2h: edit cancelled"
    return "ERROR", f"z2h backend: {state.message}"


def load_result(scene: bpy.types.Scene, frames_dir: Path, name: str, frame_start: int):
    """Show ``frames_dir/*.png`` as an image strip in the Video Sequencer of the scene "Z2H <name>"
    (a separate scene, so the 3D scene's own renders stay unaffected) and as an image sequence in
    every open Image Editor, both aligned with the source frames. Returns (result scene, image)."""
    files = sorted(Path(frames_dir).glob("*.png"))
    if not files:
        raise EditError(f"the backend wrote no frames to {frames_dir}")
    label = f"Z2H {name}"
    result = bpy.data.scenes.get(label) or bpy.data.scenes.new(label)
    result.render.resolution_x, result.render.resolution_y = scene.z2h.resolution_x, scene.z2h.resolution_y
    result.render.fps, result.render.fps_base = scene.render.fps, scene.render.fps_base
    result.frame_start, result.frame_end = frame_start, frame_start + len(files) - 1
    editor = result.sequence_editor or result.sequence_editor_create()
    strips = bench.module("blender_compat").strips(editor)
    old = strips.get(label)
    if old is not None:  # a previous result of the same video: replace it
        strips.remove(old)
    strip = strips.new_image(label, str(files[0]), 1, frame_start)
    for f in files[1:]:
        strip.elements.append(f.name)

    image = bpy.data.images.load(str(files[0]), check_existing=False)
    image.name, image.source = label, "SEQUENCE"
    for window in bpy.context.window_manager.windows:  # none headless
        for area in window.screen.areas:
            if area.type == "IMAGE_EDITOR":
                space = area.spaces.active
                space.image = image
                space.image_user.frame_start = frame_start
                space.image_user.frame_duration = len(files)
                area.tag_redraw()
    return result, image
