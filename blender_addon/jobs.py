"""Run z2h from Blender without blocking it: the plain functions behind the Edit panel's operators.

A :class:`Run` is a chain of subprocesses: a background render of the inputs (:mod:`.background`,
only when the cached originals no longer match the scene) and then ``python -m z2h edit``. Both
print progress JSON lines; :func:`poll_step` copies the overall state (a readable stage, the overall
fraction, a time estimate) into ``scene.z2h`` on every timer tick, and :func:`finish_edit` loads the
result (the original and the edit side by side in the Video Sequencer of a "Z2H <name>" scene).
Modal operators and timers do not run headless, so the tests drive these functions directly. One
task (edit or benchmark pair) runs at a time; :func:`cancel_active` stops it (Cancel, Esc) in the
middle of a frame, :func:`close_active` also when the file is closed or the add-on disabled. Each
run has a folder ``<output>/edits/<name>-<time>/`` with its logs and the backend's ``result/``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

import bpy

from . import background, bench, fingerprint, rendering
from .client import BackendError, BackendJob, JobState, edit_command
from .preferences import BackendSettings, backend_settings
from .props import frame_range, render_options

# Readable names of the stages the render worker and `z2h edit` report (docs/architecture.md).
STAGE_LABELS = {"render": "Rendering", "zero": "Propagating the edit", "hero-pairs": "Preparing refinement",
                "hero-train": "Learning the look", "hero": "Refining", "write": "Writing frames",
                "starting": "Starting"}
STAGE_UNITS = {"zero": "frame", "hero": "frame", "write": "frame", "hero-train": "step"}
# Rough shares of a backend run per stage, for one overall percentage (an estimate, shown as such).
BACKEND_WEIGHTS = {"zero": 0.35, "hero-pairs": 0.1, "hero-train": 0.35, "hero": 0.15, "write": 0.05}
RENDER_SHARE = 0.3  # of a run that renders its inputs first


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
    resolution: tuple[int, int] = (0, 0)


class Run:
    """A task as a chain of subprocesses, polled by the UI: ``first`` (started already) and then, once
    it succeeded, ``then()`` (e.g. the backend after the render worker). Looks like one job: poll()
    gives the overall state, with ``fraction`` over the whole run and a readable ``stage``."""

    def __init__(self, kind: str, first: BackendJob, then: Callable[[], BackendJob] | None = None,
                 *, render_share: float = 0.0, unit: str = "frame", run_dir: Path | None = None,
                 steps: list[tuple[str, Callable[[], BackendJob]]] | None = None,
                 labels: list[str] | None = None):
        """``steps``/``labels``: a plain sequence of commands instead (Set up backend): ``labels`` names
        every step including the first, ``steps`` starts the ones after it."""
        self.kind, self.job, self._then = kind, first, then
        self.labels, self._steps, self.step_index = labels, list(steps or []), 0
        self.render_share, self.unit, self.run_dir = render_share, unit, run_dir
        self.phase = "render" if render_share > 0 else "backend"
        self._cancelled = False
        self._error: str | None = None  # the next step could not start: the run failed for good
        self._best = 0.0
        self.overall_fraction, self.stage_label = 0.0, "Starting"

    @property
    def proc(self):
        return self.job.proc

    @property
    def log_path(self) -> str | None:
        return self.job.log_path

    @property
    def stderr_tail(self) -> str:
        return self.job.stderr_tail

    def running(self) -> bool:
        return not self.poll().finished

    def group_alive(self) -> bool:
        return self.job.group_alive()

    def cancel(self, grace: float = 3.0, wait: bool = False) -> None:
        self._cancelled = True
        self._then, self._steps = None, []
        self.job.cancel(grace=grace, wait=wait)

    def poll(self) -> JobState:
        state = self.job.poll()
        if self._error is not None:
            return dataclasses.replace(state, status="error", message=self._error)
        try:
            if state.finished and state.status == "done" and self._steps and not self._cancelled:
                _, start = self._steps.pop(0)
                self.job = start()
                self.step_index += 1
                state = self.job.poll()
            if state.finished and state.status == "done" and self._then is not None and not self._cancelled:
                then, self._then = self._then, None
                self.job = then()
                self.phase = "backend"
                state = self.job.poll()
        except (BackendError, EditError, OSError) as exc:
            self._error, self._steps = str(exc), []
            return dataclasses.replace(state, status="error", message=self._error)
        return self._overall(state)

    def _overall(self, s: JobState) -> JobState:
        """Sets ``overall_fraction`` (never goes back) and ``stage_label``; returns the state."""
        if self.labels is not None:
            n = len(self.labels)
            done = s.finished and s.status == "done" and not self._steps
            fraction = 1.0 if done else self.step_index / n
            label = f"{self.labels[self.step_index]} (step {self.step_index + 1}/{n})"
        elif self.phase == "render":
            fraction = self.render_share * s.fraction
            label = f"Rendering {self.unit} {s.step}/{s.total}" if s.total else "Rendering: starting Blender"
        else:
            fraction = self.render_share + (1.0 - self.render_share) * _backend_fraction(s.stage, s.fraction)
            label = STAGE_LABELS.get(s.stage, s.stage or "Starting z2h")
            if s.total:
                label = " ".join(filter(None, (label, STAGE_UNITS.get(s.stage), f"{s.step}/{s.total}")))
        if s.finished and s.status == "done" and self._then is None and not self._steps:
            fraction = 1.0
        self.overall_fraction = self._best = max(self._best, min(fraction, 1.0))
        self.stage_label = label
        return s


def _backend_fraction(stage: str, fraction: float) -> float:
    """How far a backend run is, from its current stage and that stage's fraction (an estimate)."""
    if stage not in BACKEND_WEIGHTS:
        return 0.0
    order = list(BACKEND_WEIGHTS)
    done = sum(BACKEND_WEIGHTS[k] for k in order[:order.index(stage)])
    return min(done + BACKEND_WEIGHTS[stage] * fraction, 1.0)


# The one task in flight: "run" (a Run), "inputs" (EditInputs of an edit), "scene" (its scene's name).
_active: dict[str, object] = {}


def active_job() -> Run | None:
    """The run in flight, until :func:`finish_edit` (or :func:`finish_pair`) collects it."""
    return _active.get("run")


def busy() -> bool:
    """Whether a task is in flight (rendering, or the backend running)."""
    run = active_job()
    return run is not None and run.running()


def active_scene(default: bpy.types.Scene) -> bpy.types.Scene:
    """The scene the active task was started from (its progress properties), else ``default``."""
    return bpy.data.scenes.get(_active.get("scene", ""), default)


def cancel_active(wait: bool = False) -> bool:
    """Cancel the task in flight: terminate the current process group (a render stops mid-frame).
    Returns whether there was something to cancel."""
    run = active_job()
    if run is None or not run.running():
        return False
    run.cancel(wait=wait)
    return True


def close_active() -> bool:
    """Stop the task in flight now and forget it (file closing, add-on disabled: no modal operator is
    left to collect it); waits until its process group is gone. Whether one was running."""
    was_running = cancel_active(wait=True)
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


def _file_id(path: str) -> list:
    """A file's identity for the cache key: path, size and modification time."""
    try:
        st = os.stat(path)
        return [path, st.st_size, st.st_mtime_ns]
    except OSError:
        return [path, None, None]


def footage(scene: bpy.types.Scene) -> tuple[dict, tuple[int, int]] | None:
    """Filmed video as the edit's source (Video > Sequencer strip / Movie Clip): the worker's
    description of it and its frame range; None for the 3D scene. EditError when it is not usable."""
    props = scene.z2h
    if props.source == "CLIP":
        clip = props.clip
        if clip is None:
            raise EditError("choose the Movie Clip to edit")
        start = clip.frame_start
        path = bpy.path.abspath(clip.filepath, library=clip.library)
        return ({"kind": "clip", "clip": clip.name, "frame_start": start, "file": _file_id(path)},
                (start, start + clip.frame_duration - 1))
    if props.source == "STRIP":
        editor = scene.sequence_editor
        strip = editor.active_strip if editor is not None else None
        if strip is None or strip.type not in ("MOVIE", "IMAGE"):
            raise EditError("make a movie or image strip the active strip of this scene's Video Sequencer")
        if strip.type == "MOVIE":
            files = [_file_id(bpy.path.abspath(strip.filepath))]
        else:
            folder = bpy.path.abspath(strip.directory)
            files = [_file_id(os.path.join(folder, e.filename)) for e in strip.elements]
        start, end = strip.frame_final_start, strip.frame_final_end - 1
        return {"kind": "strip", "strip": strip.name, "files": files, "range": [start, end]}, (start, end)
    return None


def _check_reference(path: Path, resolution: tuple[int, int]) -> None:
    """A PNG (RGB, grey or palette) or JPEG of the render's size; read by Blender itself."""
    if path.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise EditError(f"reference image {path}: use a PNG or JPEG file")
    try:
        image = bpy.data.images.load(str(path), check_existing=False)
    except RuntimeError as exc:
        raise EditError(f"reference image {path} cannot be read: {exc}") from exc
    try:
        width, height = image.size
    finally:
        bpy.data.images.remove(image)
    if (width, height) == (0, 0):
        raise EditError(f"reference image {path} cannot be read (not an image?)")
    if (width, height) != tuple(resolution):
        raise EditError(f"reference image {path} is {width}x{height}, the render is "
                        f"{resolution[0]}x{resolution[1]}: match the resolution in the Z2H panel")


def begin_edit(context: bpy.types.Context, settings: BackendSettings | None = None) -> Run:
    """Start an edit and return its :class:`Run`: a background render of what the backend needs (the
    original frames unless a render of this very scene is cached, and in "recolour" mode the anchor
    frame with the active object recoloured), then ``python -m z2h edit``. Raises :class:`EditError`
    for bad input before anything starts."""
    if busy():
        raise EditError("a z2h task is already running: cancel it first")
    try:
        settings = settings or backend_settings(context)
    except ValueError as exc:
        raise EditError(f"the extra backend arguments in the preferences: {exc}") from exc
    if not settings.python:
        raise EditError("set the backend Python (a venv with z2h installed) in the Z2H add-on preferences")
    scene, props = context.scene, context.scene.z2h
    obj = context.view_layer.objects.active
    source = footage(scene)
    try:
        start, end = source[1] if source else frame_range(scene)
    except ValueError as exc:
        raise EditError(str(exc)) from exc
    if not start <= scene.frame_current <= end:
        raise EditError(f"the current frame {scene.frame_current} (the anchor) is outside the range "
                        f"{start}..{end}")
    if source is None and scene.camera is None:
        raise EditError(f"scene {scene.name!r} has no active camera")
    if source is not None and props.reference_mode == "RECOLOR":
        raise EditError("filmed video cannot be recoloured by material: paint the anchor (Render Anchor, "
                        "Use Painted Image) or choose an edited image")
    anchor_frame = scene.frame_current
    try:
        resolution, engine, samples = render_options(scene)
    except ValueError as exc:
        raise EditError(str(exc)) from exc
    name = video_name(scene, obj)
    work = _work_dir(settings, scene, name)

    reference = work / "reference.png"
    if props.reference_mode == "IMAGE":
        if not props.reference_path:
            raise EditError("choose a reference image, or set Reference to 'Recolour object'")
        reference = Path(bpy.path.abspath(props.reference_path)).expanduser()
        if not reference.is_file():
            raise EditError(f"reference image not found: {reference}")
        _check_reference(reference, resolution)
    elif obj is None:
        raise EditError("select the object to recolour (make it the active object)")

    video = work / "original"
    # The scene's content is part of the key: a moved object or a changed light means new originals.
    stamp = {"blend": bpy.data.filepath, "scene": scene.name, "frames": [start, end],
             "resolution": list(resolution), "engine": engine, "samples": samples,
             "content": fingerprint.scene_fingerprint(scene, start),
             "footage": source[0] if source else None}
    render_original = props.rerender or not rendering.cached_sequence(video, stamp)
    run_dir = _unique(output_root(scene, settings) / "edits" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}")
    inputs = EditInputs(video=video, anchor=anchor_frame - start, reference=reference, out=run_dir / "result",
                        frame_start=start, name=name, resolution=resolution)

    def backend() -> BackendJob:
        run_dir.mkdir(parents=True, exist_ok=True)
        argv = edit_command(settings.python, video=str(video), anchor=inputs.anchor,
                            reference=str(reference), out=str(inputs.out), engine=settings.engine,
                            zero_model=settings.zero_model, hero_model=settings.hero_model,
                            extra=settings.extra_args)
        return BackendJob(argv, log=run_dir / "backend.log")

    task = None
    if render_original or props.reference_mode == "RECOLOR":
        task = {"kind": "frames", "out": str(video), "frames": [start, end], "resolution": list(resolution),
                "engine": engine, "samples": samples, "stamp": stamp,
                "render_original": render_original, "footage": source[0] if source else None}
        if props.reference_mode == "RECOLOR":
            edit = {k: v for k, v in dataclasses.asdict(rendering.make_edit(obj, props)).items()
                    if v is not None and k != "object"}
            task["reference"] = {"object": obj.name, "edit": edit, "frame": anchor_frame,
                                 "path": str(reference)}
    try:
        if task is None:
            run = Run("edit", backend(), run_dir=run_dir)
        else:
            share = RENDER_SHARE if render_original else 0.05
            worker = background.start(scene, work / "worker", task, run_dir / "render.log")
            run = Run("edit", worker, backend, render_share=share, run_dir=run_dir)
    except (BackendError, OSError, RuntimeError) as exc:
        raise EditError(str(exc)) from exc
    _active.clear()
    _active.update(run=run, inputs=inputs, scene=scene.name)
    props.job_status, props.job_stage, props.job_progress, props.job_message = "running", "Starting", 0.0, ""
    props.job_log, props.job_eta, props.job_tail = "", -1.0, ""
    return run


def run_history(context: bpy.types.Context, settings: BackendSettings,
                limit: int = 5) -> list[tuple[Path, bool]]:
    """The latest runs of the active video, newest first: (run folder, whether it has a result)."""
    scene = context.scene
    name = video_name(scene, context.view_layer.objects.active)
    try:
        runs = [p for p in (output_root(scene, settings) / "edits").glob(f"{name}-*") if p.is_dir()]
    except OSError:
        return []
    runs.sort(key=lambda p: p.name, reverse=True)  # <name>-<YYYYmmdd-HHMMSS>: names sort by time
    return [(p, (p / "result" / "frames").is_dir()) for p in runs[:limit]]


def _work_dir(settings: BackendSettings, scene: bpy.types.Scene, name: str) -> Path:
    return Path(settings.cache_dir) / "edits" / f"{_safe(Path(bpy.data.filepath).stem or 'untitled')}-{name}"


def begin_anchor(context: bpy.types.Context, settings: BackendSettings | None = None) -> Run:
    """Render the current frame (the anchor) in the background, to paint the reference on; when done,
    :func:`finish_anchor` opens it as the image "Z2H anchor <video>"."""
    if busy():
        raise EditError("a z2h task is already running: cancel it first")
    settings = settings or backend_settings(context)
    scene = context.scene
    source = footage(scene)
    if source is None and scene.camera is None:
        raise EditError(f"scene {scene.name!r} has no active camera")
    try:
        resolution, engine, samples = render_options(scene)
    except ValueError as exc:
        raise EditError(str(exc)) from exc
    name = video_name(scene, context.view_layer.objects.active)
    work = _work_dir(settings, scene, name)
    path = work / f"anchor-{scene.frame_current:04d}.png"
    task = {"kind": "frames", "out": str(work / "unused"), "frames": [scene.frame_current] * 2,
            "resolution": list(resolution), "engine": engine, "samples": samples, "render_original": False,
            "footage": source[0] if source else None,
            "reference": {"object": "", "edit": None, "frame": scene.frame_current, "path": str(path)}}
    try:
        run = Run("anchor", background.start(scene, work / "worker", task, work / "anchor.log"),
                  render_share=1.0, run_dir=work)
    except (BackendError, OSError, RuntimeError) as exc:
        raise EditError(str(exc)) from exc
    _active.clear()
    _active.update(run=run, scene=scene.name, anchor=path, name=name)
    scene.z2h.job_status, scene.z2h.job_message, scene.z2h.job_tail = "running", "", ""
    return run


def finish_anchor(scene: bpy.types.Scene, state: JobState) -> tuple[str, str]:
    """Open the rendered anchor as "Z2H anchor <video>" (in an Image Editor, if one is open, in paint
    mode), so the user paints the new look with Blender's own tools; then Use Painted Image."""
    path, name = _active.get("anchor"), _active.get("name", "")
    _active.clear()
    if state.status == "cancelled":
        return "WARNING", "z2h: cancelled"
    if state.status != "done" or path is None:
        return "ERROR", f"render: {state.message}"
    label = f"Z2H anchor {name}"
    old = bpy.data.images.get(label)
    if old is not None:
        bpy.data.images.remove(old)
    image = bpy.data.images.load(str(path), check_existing=False)
    image.name = label
    scene.z2h.paint_image = image.name
    for window in bpy.context.window_manager.windows:  # none headless
        for area in window.screen.areas:
            if area.type == "IMAGE_EDITOR":
                area.spaces.active.image = image
                area.spaces.active.ui_mode = "PAINT"
                area.tag_redraw()
                break
    return "INFO", f"z2h: anchor frame rendered: paint on image '{label}', then press Use Painted Image"


def use_painted_image(context: bpy.types.Context, settings: BackendSettings | None = None) -> Path:
    """Save the painted anchor image as a PNG in the work folder and make it the reference."""
    scene = context.scene
    image = bpy.data.images.get(scene.z2h.paint_image)
    if image is None:
        raise EditError("no painted anchor: press Render Anchor first")
    settings = settings or backend_settings(context)
    name = video_name(scene, context.view_layer.objects.active)
    path = _work_dir(settings, scene, name) / f"painted-{time.strftime('%Y%m%d-%H%M%S')}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    image.filepath_raw, image.file_format = str(path), "PNG"
    image.save()
    scene.z2h.reference_mode, scene.z2h.reference_path = "IMAGE", str(path)
    return path


def begin_setup(context: bpy.types.Context) -> Run:
    """Start 'Set up backend' in the folder of the preferences (see :mod:`.setup_backend`)."""
    from . import setup_backend
    from .preferences import addon_preferences

    if busy():
        raise EditError("a z2h task is already running: cancel it first")
    if not setup_backend.online_access():
        raise EditError("Set up backend downloads packages: allow Online Access (Preferences › System), "
                        "or install the backend by hand (docs/addon.md)")
    prefs = addon_preferences(context)
    if prefs is None or not prefs.backend_dir:
        raise EditError("choose the folder for the backend environment first")
    folder = Path(bpy.path.abspath(prefs.backend_dir)).expanduser()
    if setup_backend.venv_python(folder).exists() or (folder.exists() and any(folder.iterdir())):
        raise EditError(f"{folder} is not empty: choose a new folder for the backend environment")
    steps = setup_backend.setup_steps(folder, prefs.backend_source)
    log = folder.parent / f"{folder.name}-setup.log"
    labels = [label for label, _ in steps]
    rest = [(label, (lambda argv=argv: BackendJob(argv, log=log))) for label, argv in steps[1:]]
    try:
        run = Run("setup", BackendJob(steps[0][1], log=log), steps=rest, labels=labels, run_dir=folder)
    except BackendError as exc:
        raise EditError(str(exc)) from exc
    _active.clear()
    _active.update(run=run, scene=context.scene.name, setup=folder)
    return run


def finish_setup(scene: bpy.types.Scene, state: JobState) -> tuple[str, str]:
    """On success, the new environment's python becomes the Backend Python preference."""
    from . import setup_backend
    from .preferences import addon_preferences

    folder = _active.get("setup")
    _active.clear()
    if state.status == "cancelled":
        return "WARNING", "z2h: backend setup cancelled"
    if state.status != "done" or folder is None:
        return "ERROR", f"Set up backend: {state.message}"
    prefs = addon_preferences()
    python = setup_backend.venv_python(folder)
    if prefs is not None:
        prefs.backend_python = str(python)
        prefs.backend_status = f"set up in {folder}; press Check"
    return "INFO", f"z2h: backend ready ({python})"


def start_edit(context: bpy.types.Context, settings: BackendSettings | None = None) -> Run:
    """The same as :func:`begin_edit` (scripts and tests call this name)."""
    return begin_edit(context, settings)


def poll_step(scene: bpy.types.Scene, run: Run) -> JobState:
    """One timer tick: the run's latest state, copied into ``scene.z2h`` for the panel and status bar."""
    state = run.poll()
    props = scene.z2h
    props.job_status = state.status
    props.job_stage = run.stage_label
    props.job_progress = run.overall_fraction
    props.job_message = state.message
    eta = state.stage_eta()
    props.job_eta = -1.0 if eta is None else eta
    props.job_log = run.log_path or ""
    if state.finished and state.status == "error":
        props.job_tail = "\n".join(run.stderr_tail.splitlines()[-5:])
    return state


def finish_edit(scene: bpy.types.Scene, state: JobState) -> tuple[str, str]:
    """Collect the finished run; on success load its frames. Returns (report type, message)."""
    inputs: EditInputs | None = _active.get("inputs")
    run: Run | None = _active.get("run")
    _active.clear()
    if run is not None:
        scene.z2h.job_log = run.log_path or ""
    if state.status == "done" and inputs is not None:
        frames = inputs.out / "frames"
        try:
            load_result(scene, frames, inputs.name, inputs.frame_start, original=inputs.video,
                        resolution=inputs.resolution)
        except EditError as exc:
            return "ERROR", str(exc)
        scene.z2h.result_dir = str(inputs.out)
        return "INFO", f"z2h: result in {inputs.out} (scene 'Z2H {inputs.name}')"
    if state.status == "cancelled":
        return "WARNING", "z2h: cancelled"
    where = "render" if run is not None and run.phase == "render" else "z2h backend"
    return "ERROR", f"{where}: {state.message}"


def _image_strip(strips, label: str, files: list[Path], channel: int, frame_start: int):
    old = strips.get(label)
    if old is not None:  # a previous result of the same video: replace it
        strips.remove(old)
    strip = strips.new_image(label, str(files[0]), channel, frame_start)  # at its own size (no fit)
    for f in files[1:]:
        strip.elements.append(f.name)
    return strip


def load_result(scene: bpy.types.Scene, frames_dir: Path, name: str, frame_start: int,
                original: Path | None = None, resolution: tuple[int, int] | None = None):
    """Show the edit (``frames_dir/*.png``) next to the ``original`` frames in the Video Sequencer of
    the scene "Z2H <name>" (a separate scene, so the 3D scene's own renders stay unaffected): the
    original on channel 1 at the left, the edit on channel 2 at the right, aligned with the source
    frames, at the scene's frame rate. The edit is also an image sequence "Z2H <name>" for an Image
    Editor (open editors keep what they show). Returns (result scene, image)."""
    files = sorted(Path(frames_dir).glob("*.png"))
    if not files:
        raise EditError(f"the backend wrote no frames to {frames_dir}")
    originals = sorted(Path(original).glob("*.png")) if original is not None else []
    label = f"Z2H {name}"
    width, height = resolution or render_options(scene)[0]
    result = bpy.data.scenes.get(label) or bpy.data.scenes.new(label)
    result.render.resolution_x = width * (2 if originals else 1)
    result.render.resolution_y, result.render.resolution_percentage = height, 100
    result.render.fps, result.render.fps_base = scene.render.fps, scene.render.fps_base
    result.frame_start, result.frame_end = frame_start, frame_start + len(files) - 1
    editor = result.sequence_editor or result.sequence_editor_create()
    strips = bench.module("blender_compat").strips(editor)
    edit = _image_strip(strips, label, files, 2, frame_start)
    if originals:
        left = _image_strip(strips, f"{label} original", originals[:len(files)], 1, frame_start)
        left.transform.offset_x, edit.transform.offset_x = -width / 2, width / 2

    image = bpy.data.images.get(label)
    if image is None or image.filepath != str(files[0]):
        image = bpy.data.images.load(str(files[0]), check_existing=False)
        image.name, image.source = label, "SEQUENCE"
    return result, image
