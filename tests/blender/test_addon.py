"""The Blender add-on, headless (bpy): registration, the edit workflow behind the modal operator, cancel.

A fake backend (written here, standard library only) stands in for `python -m z2h edit`: it follows the
CLI and progress contract of docs/architecture.md and writes recoloured copies of the input frames.
"""

from __future__ import annotations

import json
import stat
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
from conftest import pid_gone

bpy = pytest.importorskip("bpy")
import addon_utils  # noqa: E402  (only importable once bpy is)
import numpy as np  # noqa: E402

from z2h.benchmark.blender_compat import all_strips, fcurves, node_tree, strips  # noqa: E402
from z2h.benchmark.png import read_header, read_png, write_png  # noqa: E402

MODULE = "z2h.blender_addon"
CLASSES = ["Z2H_OT_render_pair", "Z2H_OT_export_spec", "Z2H_OT_run_edit", "Z2H_OT_cancel",
           "Z2H_OT_open_log", "Z2H_OT_open_result", "Z2H_OT_open_path", "Z2H_OT_render_anchor",
           "Z2H_OT_use_painted", "Z2H_OT_play_result", "Z2H_OT_setup_backend",
           "Z2H_OT_check_backend", "Z2H_PT_benchmark", "Z2H_PT_edit"]
ROOT = Path(__file__).resolve().parents[2]

FAKE_EDIT = textwrap.dedent(
    """
    import argparse, json, os, signal, sys, time
    sys.path.insert(0, os.environ["Z2H_FAKE_PNG_DIR"])
    from png import read_png, write_png  # the benchmark's stdlib+numpy PNG codec
    p = argparse.ArgumentParser()
    p.add_argument("-m"); p.add_argument("command")
    for a in ("--video", "--anchor", "--reference", "--out", "--engine", "--progress", "--zero-model",
              "--hero-model"):
        p.add_argument(a)
    args, extra = p.parse_known_args()
    mode = os.environ.get("Z2H_FAKE_MODE", "ok")
    with open(os.environ["Z2H_FAKE_LOG"], "w") as f:
        json.dump({"argv": sys.argv[1:], "pid": os.getpid()}, f)
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    def emit(**e):
        print(json.dumps(e), flush=True)
    names = sorted(os.listdir(args.video))
    names = [n for n in names if n.endswith(".png")]
    if mode == "error":
        emit(event="error", message=f"anchor {args.anchor} is fine but the fake says no")
        sys.exit(1)
    steps = 200 if mode == "slow" else len(names)
    for i in range(steps):
        if stop:
            emit(event="cancelled", out=args.out, partial=True)
            sys.exit(130)
        time.sleep(0.05 if mode == "slow" else 0.1)  # slow enough for a 20 ms poll to see every stage
        emit(event="progress", stage="zero", step=i + 1, total=steps, message="")
    os.makedirs(os.path.join(args.out, "frames"))
    for i, n in enumerate(names):
        frame = read_png(os.path.join(args.video, n))
        # "propagate": where the frame differs from the original anchor's background, take the reference.
        write_png(os.path.join(args.out, "frames", f"{i:04d}.png"), (255 - frame).astype("uint8"))
        emit(event="progress", stage="write", step=i + 1, total=len(names), message="")
    emit(event="done", out=args.out, partial=False)
    """
)


@pytest.fixture(autouse=True)
def private_tempdir(tmp_path, monkeypatch):
    """Each test its own system temp dir, so the add-on's default cache (<tempdir>/z2h-cache) is never
    shared between concurrent runs or Blender versions (a parallel run's scene.blend broke a bpy 4.2 run)."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    return tmp


@pytest.fixture(scope="module")
def addon():
    mod = addon_utils.enable(MODULE, default_set=True, handle_error=lambda e: pytest.fail(f"enable: {e}"))
    yield mod
    addon_utils.disable(MODULE, default_set=True)


@pytest.fixture
def prefs(addon):
    return bpy.context.preferences.addons[MODULE].preferences


@pytest.fixture
def fake_backend(tmp_path, prefs, monkeypatch):
    """A 'python' that runs the fake `z2h edit`; returns the path of its log (argv, pid)."""
    script = tmp_path / "fake_edit.py"
    script.write_text(FAKE_EDIT)
    python = tmp_path / "fake-python"
    python.write_text(f"#!/bin/sh\nexec {sys.executable} {script} \"$@\"\n")
    python.chmod(python.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "fake_log.json"
    monkeypatch.setenv("Z2H_FAKE_LOG", str(log))
    monkeypatch.setenv("Z2H_FAKE_PNG_DIR", str(ROOT / "benchmark"))
    prefs.backend_python = str(python)
    prefs.cache_dir = str(tmp_path / "cache")
    yield log
    prefs.backend_python = ""
    prefs.cache_dir = ""


def make_scene(tmp_path, frames: int = 3):
    """A 32x32 Workbench scene: a red box sliding right in front of a grey plane, frames 1..frames."""
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end, scene.frame_current = 1, frames, 2
    cam_data = bpy.data.cameras.new("Cam")
    cam = bpy.data.objects.new("Cam", cam_data)
    scene.collection.objects.link(cam)
    cam.location = (0.0, -6.0, 0.0)
    cam.rotation_euler = (np.pi / 2, 0.0, 0.0)
    scene.camera = cam
    scene.display.shading.light = "FLAT"
    scene.display.shading.color_type = "MATERIAL"
    scene.view_settings.view_transform = "Standard"
    objects = {}
    for name, loc, color, (sx, sy, sz) in (("Box", (-0.8, 0.0, 0.0), (0.8, 0.1, 0.1, 1.0), (1, 1, 1)),
                                           ("Wall", (0.0, 2.0, 0.0), (0.5, 0.5, 0.5, 1.0), (10, 0.1, 10))):
        mesh = bpy.data.meshes.new(name)
        verts = [(x * sx / 2, y * sy / 2, z * sz / 2) for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]
        faces = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
        mesh.from_pydata(verts, [], faces)
        mat = bpy.data.materials.new(name + "Mat")
        mat.diffuse_color = color
        bsdf = next(n for n in node_tree(mat).nodes if n.type == "BSDF_PRINCIPLED")
        bsdf.inputs["Base Color"].default_value = color
        mesh.materials.append(mat)
        obj = bpy.data.objects.new(name, mesh)
        obj.location = loc
        scene.collection.objects.link(obj)
        objects[name] = obj
    box = objects["Box"]
    for f, x in ((1, -0.8), (frames, 0.8)):
        box.location.x = x
        box.keyframe_insert("location", frame=f)
    bpy.context.view_layer.objects.active = box
    # The add-on renders as the scene does: 32x32 (50% of 64x64) with Workbench.
    scene.render.resolution_x = scene.render.resolution_y = 64
    scene.render.resolution_percentage = 50
    scene.render.engine = "BLENDER_WORKBENCH"
    props = scene.z2h
    props.color = (0.1, 0.2, 0.9)
    props.output_dir = str(tmp_path / "out")
    return scene, box


def _wait(job, timeout=30.0):
    from z2h.blender_addon import jobs

    deadline = time.monotonic() + timeout
    states = []
    while time.monotonic() < deadline:
        state = jobs.poll_step(bpy.context.scene, job)
        states.append((state.stage, round(bpy.context.scene.z2h.job_progress, 3)))
        if state.finished:
            return state, states
        time.sleep(0.02)
    raise AssertionError("the backend job did not finish")


# ------------------------------------------------------------------------------------ registration
def _status_bar_functions():
    from z2h.blender_addon.panels import draw_status_bar

    funcs = getattr(bpy.types.STATUSBAR_HT_header.draw, "_draw_funcs", [])
    return [f for f in funcs if f is draw_status_bar]


def test_register_unregister_leaves_nothing_behind(addon):
    from z2h.blender_addon import cancel_on_load

    for name in CLASSES:
        assert hasattr(bpy.types, name), name
    assert len(addon.classes) == len(CLASSES) + 2 and all(c.is_registered for c in addon.classes)
    assert bpy.types.Z2H_PT_edit.bl_category == "Z2H" and bpy.types.Z2H_PT_edit.bl_region_type == "UI"
    assert bpy.ops.z2h.run_edit.idname() == "Z2H_OT_run_edit"
    assert hasattr(bpy.types.Scene, "z2h")
    assert sum(h.__name__ == "cancel_on_load" for h in bpy.app.handlers.load_pre) == 1

    assert len(_status_bar_functions()) == 1
    addon.register()  # twice (a script reload): replaces, never duplicates
    assert sum(h.__name__ == "cancel_on_load" for h in bpy.app.handlers.load_pre) == 1
    assert len(_status_bar_functions()) == 1

    addon_utils.disable(MODULE, default_set=True)
    try:
        for name in CLASSES:
            assert not hasattr(bpy.types, name), name
        assert not any(c.is_registered for c in addon.classes)
        assert not hasattr(bpy.types.Scene, "z2h")
        assert cancel_on_load not in bpy.app.handlers.load_pre
        assert not any(h.__name__ == "cancel_on_load" for h in bpy.app.handlers.load_pre)
        assert _status_bar_functions() == []
        assert MODULE not in bpy.context.preferences.addons
        addon.unregister()  # unregistering again is harmless
    finally:
        addon_utils.enable(MODULE, default_set=True)
    assert hasattr(bpy.types, "Z2H_OT_run_edit") and MODULE in bpy.context.preferences.addons


def test_benchmark_code_comes_from_the_installed_package_in_a_checkout(addon):
    from z2h.blender_addon import bench

    assert bench.module("render").__name__ == "z2h.benchmark.render"


def test_check_backend_operator(prefs, tmp_path):
    prefs.backend_python = str(ROOT / ".venv" / "bin" / "python")
    if not Path(prefs.backend_python).exists():
        pytest.skip("the backend venv is not set up")
    assert bpy.ops.z2h.check_backend() == {"FINISHED"}
    assert prefs.backend_status.startswith("z2h 0.1.0")
    prefs.backend_python = str(tmp_path / "nope" / "python")
    with pytest.raises(RuntimeError, match="backend Python not found"):  # ERROR reports raise headless
        bpy.ops.z2h.check_backend()
    assert prefs.backend_status.startswith("error: backend Python not found")
    prefs.backend_python = ""


def test_default_cache_dir_is_never_the_addon_folder(prefs):
    from z2h.blender_addon.preferences import backend_settings

    cache = Path(backend_settings().cache_dir)
    assert cache.is_absolute() and ROOT / "blender_addon" not in (cache, *cache.parents)


# ---------------------------------------------------------------------------------------- z2h edit
def test_run_edit_renders_inputs_runs_backend_and_loads_result(fake_backend, tmp_path, prefs, monkeypatch):
    from z2h.blender_addon import jobs

    scene, box = make_scene(tmp_path)
    slots_before = [(s.link, s.material.name) for s in box.material_slots]
    render = scene.render
    render_before = (render.resolution_x, render.engine, render.filepath, scene.frame_current)
    n_materials = len(bpy.data.materials)

    prefs.extra_args = "--steps 7 --time-budget '1.5'"
    job = jobs.start_edit(bpy.context)
    prefs.extra_args = ""
    state, states = _wait(job)
    assert state.status == "done", state.message

    argv = json.loads(fake_backend.read_text())["argv"]
    assert argv[:2] == ["-m", "z2h"] and argv[2] == "edit"
    assert argv[-4:] == ["--steps", "7", "--time-budget", "1.5"]  # the preferences' extra arguments
    args = dict(zip(argv[3:-4:2], argv[4:-4:2], strict=True))
    assert args["--anchor"] == "1"  # current frame 2 of 1..3
    assert args["--progress"] == "json" and args["--engine"] == "offline"
    video = Path(args["--video"])
    assert sorted(p.name for p in video.glob("*.png")) == ["0000.png", "0001.png", "0002.png"]
    assert read_header(video / "0000.png")[:2] == (32, 32)
    frames = [read_png(video / f"{i:04d}.png")[..., :3].astype(int) for i in range(3)]
    assert np.abs(frames[0] - frames[2]).max() > 50  # the box moved

    # The reference is the anchor frame with the box recoloured: red -> blue where the box is.
    ref = read_png(Path(args["--reference"]))[..., :3].astype(int)
    changed = np.abs(ref - frames[1]).max(-1) > 30
    assert 20 < changed.sum() < 32 * 32 / 2
    assert (ref[changed][:, 2] > ref[changed][:, 0]).all()
    assert (frames[1][changed][:, 0] > frames[1][changed][:, 2]).all()
    # ... and the user's scene is as it was: same material slots, no leftover edit materials.
    assert [(s.link, s.material.name) for s in box.material_slots] == slots_before
    assert len(bpy.data.materials) == n_materials
    assert (scene.render.resolution_x, scene.render.engine, scene.render.filepath,
            scene.frame_current) == render_before

    # The progress properties followed the backend: both stages seen, progress never out of [0, 1].
    stages = [s for s, _ in states]
    assert "zero" in stages and stages[-1] == "write"
    assert all(0.0 <= p <= 1.0 for _, p in states) and states[-1][1] == 1.0
    assert scene.z2h.job_status == "done"

    kind, message = jobs.finish_edit(scene, state)
    assert kind == "INFO", message
    # Original (channel 1, left) and edit (channel 2, right) side by side, at the scene's frame rate.
    result = bpy.data.scenes["Z2H Box"]
    strip, original = (strips(result.sequence_editor)[n] for n in ("Z2H Box", "Z2H Box original"))
    assert [e.filename for e in strip.elements] == ["0000.png", "0001.png", "0002.png"]
    assert strip.frame_final_start == original.frame_final_start == 1 and strip.frame_final_duration == 3
    assert (strip.channel, original.channel) == (2, 1)
    assert (original.transform.offset_x, strip.transform.offset_x) == (-16, 16)
    assert (result.render.resolution_x, result.render.resolution_y) == (64, 32)
    assert result.render.fps == scene.render.fps and (result.frame_start, result.frame_end) == (1, 3)
    assert Path(bpy.path.abspath(strip.directory)) == Path(args["--out"]) / "frames"
    assert Path(bpy.path.abspath(original.directory)) == video
    assert bpy.data.images["Z2H Box"].source == "SEQUENCE"
    assert scene.z2h.result_dir == args["--out"]
    # One folder per run: the backend's result and both logs.
    run_dir = Path(args["--out"]).parent
    assert run_dir.parent == tmp_path / "out" / "edits"
    assert "--reference" in (run_dir / "backend.log").read_text().splitlines()[0]  # the command line
    assert "worker.py" in (run_dir / "render.log").read_text().splitlines()[0]
    assert scene.z2h.job_log == str(run_dir / "backend.log")
    assert jobs.active_job() is None
    # Play Preview: Blender's player at the scene's frame rate (the bpy module has no player: greyed out).
    import types

    from z2h.blender_addon import background

    with pytest.raises(RuntimeError, match="animation player"):
        bpy.ops.z2h.play_result()
    first = Path(args["--out"]) / "frames" / "0000.png"
    assert background.preview_command(first, 30, 1.001) is None  # bpy.app.binary_path is empty here
    blender = types.SimpleNamespace(app=types.SimpleNamespace(binary_path="/opt/blender/blender"))
    monkeypatch.setattr(background, "bpy", blender)
    assert background.preview_command(first, 30, 1.001) == ["/opt/blender/blender", "-a", "-f", "30", "1.001",
                                                             str(first)]
    # In Blender (not the bpy module) the render worker is Blender itself, in background mode.
    job_file = tmp_path / "job.json"
    assert background.worker_command(job_file) == [
        "/opt/blender/blender", "--background", "--python-exit-code", "1", "--python", str(background.WORKER),
        "--", str(job_file)]
    # The 3D scene itself got no strips, so its own renders stay renders of the 3D scene.
    assert scene.sequence_editor is None or len(all_strips(scene.sequence_editor)) == 0


def test_original_render_is_cached_until_settings_change(fake_backend, tmp_path):
    from z2h.blender_addon import jobs

    scene, _ = make_scene(tmp_path)
    state, _ = _wait(jobs.start_edit(bpy.context))
    jobs.finish_edit(scene, state)
    argv = json.loads(fake_backend.read_text())["argv"]
    video = Path(argv[argv.index("--video") + 1])
    mtime = (video / "0000.png").stat().st_mtime_ns
    state, _ = _wait(jobs.start_edit(bpy.context))
    jobs.finish_edit(scene, state)
    assert (video / "0000.png").stat().st_mtime_ns == mtime  # reused
    outs = sorted((tmp_path / "out" / "edits").iterdir())
    assert len(outs) == 2  # a second result never overwrites the first
    # ... and the panel lists both runs, newest first, each with a button opening its folder.
    from z2h.blender_addon.panels import Z2H_PT_edit

    drawn = _draw(Z2H_PT_edit)
    listed = [e[1] for e in drawn if e[0] == "label" and e[1].startswith("Box-")]
    assert listed == [p.name for p in reversed(outs)]
    opened = [e[3].filepath for e in drawn if e[0] == "operator" and e[1] == "z2h.open_path"]
    assert opened == [str(p) for p in reversed(outs)]
    scene.frame_current = 3  # another anchor: the originals are still those of this scene
    state, _ = _wait(jobs.start_edit(bpy.context))
    jobs.finish_edit(scene, state)
    assert (video / "0000.png").stat().st_mtime_ns == mtime
    scene.render.resolution_x = 48  # 24 at 50%
    state, _ = _wait(jobs.start_edit(bpy.context))
    jobs.finish_edit(scene, state)
    assert read_header(video / "0000.png")[:2] == (24, 32)


def test_a_changed_scene_is_rendered_again(fake_backend, tmp_path):
    """Stale originals would disagree with the freshly rendered reference (issue 12)."""
    from z2h.blender_addon import jobs

    scene, box = make_scene(tmp_path)
    state, _ = _wait(jobs.start_edit(bpy.context))
    jobs.finish_edit(scene, state)
    argv = json.loads(fake_backend.read_text())["argv"]
    video = Path(argv[argv.index("--video") + 1])
    before = [read_png(video / f"{i:04d}.png") for i in range(3)]
    scene.objects["Wall"].location.z += 3.0
    state, _ = _wait(jobs.start_edit(bpy.context))
    jobs.finish_edit(scene, state)
    after = [read_png(video / f"{i:04d}.png") for i in range(3)]
    assert all(not np.array_equal(b, a) for b, a in zip(before, after, strict=True))  # the scene as it is now


def test_scene_fingerprint_follows_what_a_render_sees(addon, tmp_path):
    from z2h.blender_addon.fingerprint import scene_fingerprint

    scene, box = make_scene(tmp_path)
    seen = [scene_fingerprint(scene)]

    def changed() -> bool:
        seen.append(scene_fingerprint(scene))
        return seen[-1] != seen[-2]

    scene.frame_current = 3
    box.select_set(True)
    assert not changed()  # another anchor or selection renders the same frames
    bpy.data.materials["WallMat"].diffuse_color = (0.1, 0.6, 0.1, 1.0)
    assert changed()
    fcurve = next(fc for fc in fcurves(box) if fc.array_index == 0)
    fcurve.keyframe_points[-1].co.y = 0.0  # the box ends elsewhere; frame 1 is the same
    assert changed()
    light = bpy.data.objects.new("Lamp", bpy.data.lights.new("Lamp", "POINT"))
    scene.collection.objects.link(light)
    assert changed()
    light.data.energy = 5.0
    assert changed()
    box.data.vertices[0].co.x += 0.1
    assert changed()
    scene.view_settings.view_transform = "Filmic" if bpy.app.version < (4, 0, 0) else "AgX"
    assert changed()
    assert scene_fingerprint(scene) == seen[-1]  # stable


def test_run_edit_operator_blocking_and_backend_error(fake_backend, tmp_path, monkeypatch):
    make_scene(tmp_path)
    assert bpy.ops.z2h.run_edit() == {"FINISHED"}  # execute(): the blocking path scripts use
    monkeypatch.setenv("Z2H_FAKE_MODE", "error")
    with pytest.raises(RuntimeError, match="z2h backend: anchor 1 is fine but the fake says no"):
        bpy.ops.z2h.run_edit()
    assert bpy.context.scene.z2h.job_status == "error"


def test_a_backend_that_cannot_start_fails_the_run_for_good(fake_backend, tmp_path, prefs):
    from z2h.blender_addon import jobs

    scene, _ = make_scene(tmp_path)
    run = jobs.start_edit(bpy.context)
    prefs.backend_python = ""  # irrelevant now: the backend's command was fixed at start ...
    run._then = lambda: (_ for _ in ()).throw(jobs.BackendError("cannot start the backend 'nope'"))
    state, _ = _wait(run)
    assert state.status == "error" and "cannot start the backend" in state.message
    assert run.poll().status == "error"  # ... and it stays failed on later ticks
    assert jobs.finish_edit(scene, state)[0] == "ERROR"


def test_input_errors_name_the_problem(fake_backend, tmp_path, prefs):
    from z2h.blender_addon import jobs

    scene, _ = make_scene(tmp_path)
    scene.z2h.reference_mode = "IMAGE"
    scene.z2h.reference_path = str(tmp_path / "missing.png")
    with pytest.raises(jobs.EditError, match="reference image not found: .*missing.png"):
        jobs.start_edit(bpy.context)
    write_png(tmp_path / "big.png", np.zeros((64, 48, 3), np.uint8))
    scene.z2h.reference_path = str(tmp_path / "big.png")
    with pytest.raises(jobs.EditError, match="is 48x64, the render is 32x32"):
        jobs.start_edit(bpy.context)
    scene.z2h.reference_mode = "RECOLOR"
    scene.frame_current = 7
    with pytest.raises(jobs.EditError, match="current frame 7 .* outside the range 1..3"):
        jobs.start_edit(bpy.context)
    scene.frame_current = 2
    prefs.extra_args = "--steps '5"
    with pytest.raises(jobs.EditError, match="extra backend arguments .*quotation"):
        jobs.start_edit(bpy.context)
    prefs.extra_args = ""
    prefs.backend_python = ""
    with pytest.raises(jobs.EditError, match="set the backend Python"):
        jobs.start_edit(bpy.context)


def test_render_settings_default_to_the_scene(addon, tmp_path):
    from z2h.blender_addon.props import render_options

    scene, _ = make_scene(tmp_path)
    assert render_options(scene) == ((32, 32), "BLENDER_WORKBENCH", 1)
    scene.render.engine, scene.cycles.samples = "CYCLES", 7
    scene.render.resolution_x, scene.render.resolution_percentage = 200, 100
    assert render_options(scene) == ((200, 64), "CYCLES", 7)
    scene.render.engine = "BLENDER_EEVEE_NEXT" if bpy.app.version < (5, 0, 0) else "BLENDER_EEVEE"
    scene.eevee.taa_render_samples = 3
    assert render_options(scene) == ((200, 64), "BLENDER_EEVEE", 3)
    scene.z2h.use_scene_settings = False  # the sidebar's own settings
    scene.z2h.resolution_x, scene.z2h.resolution_y, scene.z2h.engine, scene.z2h.samples = 40, 30, "CYCLES", 5
    assert render_options(scene) == ((40, 30), "CYCLES", 5)


def _palette_png(path: Path) -> None:
    """An indexed (colour type 3) 32x32 PNG, written by hand: Blender and PIL read it, our codec cannot."""
    import struct
    import zlib

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    rows = b"".join(b"\0" + bytes(32) for _ in range(32))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 32, 32, 8, 3, 0, 0, 0))
                     + chunk(b"PLTE", bytes((200, 30, 30))) + chunk(b"IDAT", zlib.compress(rows))
                     + chunk(b"IEND", b""))


def test_reference_image_can_be_grey_palette_or_jpeg(fake_backend, tmp_path):
    from z2h.blender_addon import jobs

    scene, _ = make_scene(tmp_path)
    write_png(tmp_path / "grey.png", np.full((32, 32), 128, np.uint8))  # colour type 0
    _palette_png(tmp_path / "palette.png")
    image = bpy.data.images.new("ref", 32, 32)
    image.filepath_raw, image.file_format = str(tmp_path / "ref.jpg"), "JPEG"
    image.save()
    for name in ("grey.png", "palette.png", "ref.jpg"):
        jobs._check_reference(tmp_path / name, (32, 32))  # accepted (raises EditError otherwise)
    with pytest.raises(jobs.EditError, match=r"ref.jpg is 32x32, the render is 64x32"):
        jobs._check_reference(tmp_path / "ref.jpg", (64, 32))
    (tmp_path / "ref.bmp").write_bytes(b"BM")
    with pytest.raises(jobs.EditError, match="use a PNG or JPEG file"):
        jobs._check_reference(tmp_path / "ref.bmp", (32, 32))
    # ... and a JPEG goes to the backend as it is.
    scene.z2h.reference_mode, scene.z2h.reference_path = "IMAGE", str(tmp_path / "ref.jpg")
    state, _ = _wait(jobs.start_edit(bpy.context))
    assert state.status == "done", state.message
    argv = json.loads(fake_backend.read_text())["argv"]
    assert argv[argv.index("--reference") + 1] == str(tmp_path / "ref.jpg")
    jobs.finish_edit(scene, state)


def test_paint_workflow_render_anchor_paint_and_use_it(fake_backend, tmp_path):
    """Render Anchor -> paint in an Image Editor (here: pixels set by hand) -> Use Painted Image -> Run."""
    from z2h.blender_addon import jobs

    scene, _ = make_scene(tmp_path)
    scene.z2h.reference_mode = "IMAGE"
    assert not bpy.ops.z2h.use_painted.poll()
    assert bpy.ops.z2h.render_anchor() == {"FINISHED"}  # execute(): the background render, waited for
    image = bpy.data.images[scene.z2h.paint_image]
    assert image.name == "Z2H anchor Box" and tuple(image.size) == (32, 32)
    assert scene.frame_current == 2 and not fake_backend.exists()
    pixels = np.empty(32 * 32 * 4, np.float32)
    image.pixels.foreach_get(pixels)
    pixels = pixels.reshape(32, 32, 4)
    pixels[8:16, 8:16, :3] = (0.0, 1.0, 0.0)  # a green brush stroke
    image.pixels.foreach_set(pixels.ravel())
    assert bpy.ops.z2h.use_painted() == {"FINISHED"}
    painted = Path(scene.z2h.reference_path)
    assert scene.z2h.reference_mode == "IMAGE" and painted.is_file()
    stroke = read_png(painted)[32 - 16:32 - 8, 8:16, :3]  # image rows run bottom-up in Blender
    assert (stroke[..., 1] > 250).all() and (stroke[..., 0] < 5).all()
    state, _ = _wait(jobs.start_edit(bpy.context))
    assert state.status == "done"
    argv = json.loads(fake_backend.read_text())["argv"]
    assert argv[argv.index("--reference") + 1] == str(painted)
    jobs.finish_edit(scene, state)


@pytest.mark.parametrize("source", ["STRIP", "CLIP"])
def test_filmed_video_from_a_sequencer_strip_or_movie_clip(fake_backend, tmp_path, source):
    """Real footage: the frames come from a strip / Movie Clip (here a 4-frame image sequence)."""
    from z2h.blender_addon import jobs

    scene, _ = make_scene(tmp_path)
    scene.camera = None  # footage needs no camera
    shots = tmp_path / "shots"
    shots.mkdir()
    footage = [np.full((32, 32, 3), (40 * i, 200 - 40 * i, 90), np.uint8) for i in range(4)]
    for i, frame in enumerate(footage):
        write_png(shots / f"shot_{i:03d}.png", frame)
    if source == "STRIP":
        editor = scene.sequence_editor_create()
        strip = strips(editor).new_image("Shot", str(shots / "shot_000.png"), 1, 5)
        for i in range(1, 4):
            strip.elements.append(f"shot_{i:03d}.png")
        editor.active_strip = strip
    else:
        clip = bpy.data.movieclips.load(str(shots / "shot_000.png"))
        clip.frame_start = 5
        scene.z2h.clip = clip
    scene.z2h.source = source
    scene.frame_current = 6
    scene.z2h.reference_mode = "RECOLOR"
    with pytest.raises(jobs.EditError, match="cannot be recoloured"):
        jobs.start_edit(bpy.context)
    write_png(tmp_path / "ref.png", np.zeros((32, 32, 3), np.uint8))
    scene.z2h.reference_mode, scene.z2h.reference_path = "IMAGE", str(tmp_path / "ref.png")
    assert bpy.ops.z2h.run_edit.poll()  # no camera needed
    state, _ = _wait(jobs.start_edit(bpy.context))
    assert state.status == "done", state.message
    argv = json.loads(fake_backend.read_text())["argv"]
    assert argv[argv.index("--anchor") + 1] == "1"  # frame 6 of the footage's 5..8
    video = Path(argv[argv.index("--video") + 1])
    got = [read_png(video / f"{i:04d}.png")[..., :3].astype(int) for i in range(4)]
    assert len(list(video.glob("*.png"))) == 4
    for frame, shot in zip(got, footage, strict=True):
        assert np.abs(frame - shot).max() <= 2  # the footage itself, through the Sequencer
    jobs.finish_edit(scene, state)


def test_reference_image_mode_passes_the_file(fake_backend, tmp_path):
    from z2h.blender_addon import jobs

    scene, _ = make_scene(tmp_path)
    ref = tmp_path / "my ref.png"
    write_png(ref, np.full((32, 32, 3), 200, np.uint8))
    scene.z2h.reference_mode = "IMAGE"
    scene.z2h.reference_path = str(ref)
    state, _ = _wait(jobs.start_edit(bpy.context))
    assert state.status == "done"
    argv = json.loads(fake_backend.read_text())["argv"]
    assert argv[argv.index("--reference") + 1] == str(ref)
    jobs.finish_edit(scene, state)


# ------------------------------------------------------------------------------------------- cancel
def test_cancel_operator_kills_the_backend(fake_backend, tmp_path, monkeypatch):
    from z2h.blender_addon import jobs

    monkeypatch.setenv("Z2H_FAKE_MODE", "slow")
    scene, _ = make_scene(tmp_path)
    job = jobs.start_edit(bpy.context)
    assert bpy.ops.z2h.run_edit.poll() is False and bpy.ops.z2h.render_pair.poll() is False  # one at a time
    while job.phase != "backend" or jobs.poll_step(scene, job).step < 2:
        jobs.poll_step(scene, job)
        time.sleep(0.02)
    assert jobs.RENDER_SHARE < scene.z2h.job_progress < jobs.RENDER_SHARE + 0.1
    assert scene.z2h.job_stage.startswith("Propagating the edit frame ")
    assert bpy.ops.z2h.cancel() == {"FINISHED"}
    state, _ = _wait(job, timeout=10)
    assert state.status == "cancelled" and state.returncode == 130
    assert pid_gone(job.proc.pid)
    kind, message = jobs.finish_edit(scene, state)
    assert kind == "WARNING" and "cancelled" in message
    assert bpy.ops.z2h.cancel.poll() is False


def test_closing_the_file_cancels_a_running_backend(fake_backend, tmp_path, monkeypatch):
    from z2h.blender_addon import jobs

    monkeypatch.setenv("Z2H_FAKE_MODE", "slow")
    make_scene(tmp_path)
    job = jobs.start_edit(bpy.context)
    while not fake_backend.exists():  # the UI's timer advances the run from the render to the backend
        jobs.poll_step(bpy.context.scene, job)
        time.sleep(0.02)
    pid = json.loads(fake_backend.read_text())["pid"]  # the python behind the shell wrapper
    bpy.ops.wm.read_homefile(use_empty=True)  # runs the load_pre handler
    assert pid_gone(pid) and not job.group_alive()
    assert jobs.active_job() is None


# -------------------------------------------------------------------------------------- benchmark
def test_render_pair_writes_a_benchmark_that_check_accepts(addon, tmp_path):
    from z2h.benchmark.check import check_benchmark

    make_scene(tmp_path)
    assert bpy.ops.z2h.render_pair() == {"FINISHED"}
    bench = tmp_path / "out" / "bench"
    errors, _ = check_benchmark(bench)
    assert errors == []
    manifest = json.loads((bench / "manifest.json").read_text())
    assert manifest["videos"] == [{"name": "Box", "frames": 3, "anchor": 1}]
    assert manifest["settings"]["resolution"] == [32, 32]
    meta = json.loads((bench / "Box" / "meta.json").read_text())
    assert meta["edit"]["object"] == "Box"
    assert meta["edit"]["color"] == pytest.approx([0.1, 0.2, 0.9], abs=1e-6)
    # The edit shows inside the mask: the box turned from red to blue there.
    video = bench / "Box"
    original, edited = (read_png(video / k / "0001.png")[..., :3].astype(int) for k in ("original", "edited"))
    mask = read_png(video / "mask" / "0001.png") > 127
    assert mask.sum() > 20
    assert (edited[mask][:, 2] > edited[mask][:, 0]).mean() > 0.9
    assert (original[mask][:, 0] > 100).mean() > 0.9
    with pytest.raises(RuntimeError, match="already holds a rendered video"):  # never overwritten silently
        bpy.ops.z2h.render_pair()
    # ... but the panel now offers the overwrite, as a second button that sets the operator's option.
    from z2h.blender_addon.panels import Z2H_PT_benchmark

    drawn = [e for e in _draw(Z2H_PT_benchmark) if e[0] == "operator" and e[1] == "z2h.render_pair"]
    buttons = [(e[2], getattr(e[3], "overwrite", False)) for e in drawn]
    assert buttons == [(None, False), ("Overwrite Box", True)]
    assert bpy.ops.z2h.render_pair(overwrite=True) == {"FINISHED"}
    assert check_benchmark(bench)[0] == []


def test_export_spec_rebuilds_the_same_motion(addon, tmp_path):
    from z2h.benchmark.scene import build_scene
    from z2h.benchmark.spec import load_spec

    scene, box = make_scene(tmp_path)
    path = tmp_path / "box.toml"
    assert bpy.ops.z2h.export_spec(filepath=str(path)) == {"FINISHED"}
    with pytest.raises(RuntimeError, match="already exists"):  # never overwritten silently
        bpy.ops.z2h.export_spec(filepath=str(path))
    text = path.read_text()
    assert "# Approximation: Box: mesh 'Box' is not a spec shape" in text
    spec = load_spec(path)
    assert (spec.frames, spec.anchor, spec.resolution) == (3, 1, (32, 32))
    assert spec.edit.object == "Box" and spec.edit.color == pytest.approx((0.1, 0.2, 0.9), abs=1e-6)
    spec_box = next(o for o in spec.objects if o.name == "Box")
    assert [k.location[0] for k in spec_box.keys] == pytest.approx([-0.8, 0.0, 0.8], abs=1e-5)
    assert spec_box.material.base_color[:3] == pytest.approx((0.8, 0.1, 0.1), abs=1e-5)
    wall = next(o for o in spec.objects if o.name == "Wall")
    assert wall.keys == [] and wall.scale == pytest.approx((10.0, 0.1, 10.0), abs=1e-5)

    # Building the spec gives the same object and camera placement at every frame.
    expected = []
    for f in range(1, 4):
        scene.frame_set(f)
        expected.append((box.matrix_world.translation.copy(), scene.camera.matrix_world.copy()))
    bpy.ops.wm.read_homefile(use_empty=True)  # a fresh file, so names stay unique
    built, edited = build_scene(spec, bpy.context.scene)  # the active scene: frame_set evaluates it
    assert edited == "Box"
    for i, (location, cam_matrix) in enumerate(expected):
        built.frame_set(i)
        assert (built.objects["Box"].matrix_world.translation - location).length < 1e-4
        diff = np.abs(np.array(built.camera.matrix_world) - np.array(cam_matrix)).max()
        assert diff < 1e-4


# ------------------------------------------------------------------ UI code, driven without a window
class _Event:
    def __init__(self, type_: str, value: str = "NOTHING"):
        self.type, self.value = type_, value


class _ModalStandIn:
    """The operator's methods on a plain object: modal() cannot be reached through bpy.ops headless."""

    def __init__(self, cls_name: str = "Z2H_OT_run_edit"):
        from z2h.blender_addon import operators

        self.cls, self._timer, self.reports = getattr(operators, cls_name), None, []

    def report(self, kind, message):
        self.reports.append((sorted(kind)[0], message))

    def __getattr__(self, name):
        value = getattr(self.cls, name)
        return value.__get__(self) if hasattr(value, "__get__") else value  # methods bound, data as is

    def modal(self, context, event):
        return self.cls.modal(self, context, event)


def _tick_until_done(op, scene, timeout=60.0):
    """Timer ticks until the operator finishes; returns its result and (stage, progress) per tick."""
    progress, deadline = [], time.monotonic() + timeout
    while (result := op.modal(bpy.context, _Event("TIMER"))) == {"PASS_THROUGH"}:
        progress.append((scene.z2h.job_stage, round(scene.z2h.job_progress, 3)))
        assert time.monotonic() < deadline
        time.sleep(0.02)
    return result, progress


def test_modal_handler_polls_until_done_and_loads_the_result(fake_backend, tmp_path):
    from z2h.blender_addon import jobs

    scene, _ = make_scene(tmp_path)
    op = _ModalStandIn()
    assert op._start(bpy.context)  # what invoke() does before adding the timer
    assert op.modal(bpy.context, _Event("MOUSEMOVE")) == {"PASS_THROUGH"}  # the user keeps working
    assert scene.frame_current == 2  # the render happens in another process
    result, progress = _tick_until_done(op, scene)
    assert result == {"FINISHED"} and op.reports[-1][0] == "INFO"
    stages = [stage for stage, _ in progress]
    renders = [st for st in stages if st.startswith("Rendering frame ")]
    assert renders and renders[-1] == "Rendering frame 4/4"  # 3 originals + the recoloured anchor
    assert any(st.startswith("Propagating the edit frame ") for st in stages)
    fractions = [f for _, f in progress]
    assert fractions == sorted(fractions) and scene.z2h.job_progress == 1.0
    assert all(f <= jobs.RENDER_SHARE for st, f in progress if st.startswith("Rendering"))
    assert "Z2H Box" in bpy.data.scenes


def test_cancel_mid_render_stops_the_worker_and_keeps_no_partial_originals(fake_backend, tmp_path):
    """Esc while the originals render: the background Blender dies mid-frame, nothing looks finished."""
    from z2h.blender_addon import jobs

    scene, box = make_scene(tmp_path, frames=400)  # ~0.05 s a frame: seconds of rendering
    user_settings = (scene.render.engine, scene.render.resolution_x, scene.frame_current)
    op = _ModalStandIn()
    assert op._start(bpy.context)
    run = jobs.active_job()
    deadline = time.monotonic() + 60
    while jobs.poll_step(scene, run).step < 2:  # the worker is rendering frames
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert run.phase == "render" and scene.z2h.job_stage.startswith("Rendering frame ")
    assert bpy.ops.z2h.cancel.poll() and not bpy.ops.z2h.run_edit.poll()
    worker = run.proc.pid
    t0 = time.monotonic()
    assert op.modal(bpy.context, _Event("ESC", "PRESS")) == {"RUNNING_MODAL"}
    result, progress = _tick_until_done(op, scene, timeout=10)
    latency = time.monotonic() - t0
    assert result == {"CANCELLED"} and op.reports == [("WARNING", "z2h: cancelled")]
    assert pid_gone(worker) and latency < 5.0
    done_frames = run.job.poll().step
    assert done_frames < 400  # stopped in the middle, not after the last frame
    assert not fake_backend.exists() and not jobs.busy()  # the backend never started
    assert (scene.render.engine, scene.render.resolution_x, scene.frame_current) == user_settings
    cache = tmp_path / "cache"
    assert not list(cache.rglob("original/0000.png")) and not list(cache.rglob("original/render.json"))
    assert scene.z2h.job_status == "cancelled"


def test_modal_handler_cancels_the_backend_on_escape(fake_backend, tmp_path, monkeypatch):
    from z2h.blender_addon import jobs

    monkeypatch.setenv("Z2H_FAKE_MODE", "slow")
    scene, _ = make_scene(tmp_path)
    op = _ModalStandIn()
    assert op._start(bpy.context)
    run = jobs.active_job()
    while run.phase != "backend" or jobs.poll_step(scene, run).step < 1:
        jobs.poll_step(scene, run)
        time.sleep(0.02)
    assert op.modal(bpy.context, _Event("ESC", "PRESS")) == {"RUNNING_MODAL"}
    result, _ = _tick_until_done(op, scene, timeout=10)
    assert result == {"CANCELLED"} and op.reports[-1] == ("WARNING", "z2h: cancelled")
    assert not run.group_alive() and jobs.active_job() is None


def test_render_pair_in_the_background_and_cancel(addon, tmp_path):
    from z2h.blender_addon import jobs

    scene, _ = make_scene(tmp_path, frames=200)
    op = _ModalStandIn("Z2H_OT_render_pair")
    op.overwrite = False
    assert op._start(bpy.context)
    run = jobs.active_job()
    while jobs.poll_step(scene, run).step < 2:
        time.sleep(0.02)
    assert scene.z2h.job_stage.startswith("Rendering image ") and scene.z2h.job_stage.endswith("/800")
    assert 0 < scene.z2h.job_progress < 0.5
    assert op.modal(bpy.context, _Event("ESC", "PRESS")) == {"RUNNING_MODAL"}
    result, _ = _tick_until_done(op, scene, timeout=10)
    assert result == {"CANCELLED"} and "cancelled" in op.reports[-1][1]
    assert pid_gone(run.proc.pid)
    assert not (tmp_path / "out" / "bench" / "Box").exists()  # only Box.partial: nothing looks finished


class _Layout:
    """Records what a panel draws; checks that every drawn property exists."""

    def __init__(self, log):
        self.log, self.active = log, True

    def prop(self, data, name, **kw):
        assert name in data.bl_rna.properties, name
        self.log.append(("prop", name))

    def operator(self, idname, text=None, **kw):
        module, name = idname.split(".")
        assert getattr(getattr(bpy.ops, module), name).idname()  # a registered operator
        props = type("OperatorProperties", (), {})()
        self.log.append(("operator", idname, text, props))
        return props

    def label(self, text="", **kw):
        self.log.append(("label", text))

    def progress(self, factor=0.0, type="BAR", text=""):
        self.log.append(("progress", round(factor, 3), text))

    def row(self, **kw):
        return self

    def box(self, **kw):
        return self

    def column(self, **kw):
        return self


def _draw(panel_cls):
    log = []
    stand_in = type("P", (), {"layout": _Layout(log)})()
    panel_cls.draw(stand_in, bpy.context)
    return log


def _ops(log):
    return [entry[1] for entry in log if entry[0] == "operator"]


def test_panels_draw_settings_progress_and_cancel(fake_backend, tmp_path, monkeypatch, prefs):
    from z2h.blender_addon import jobs, panels
    from z2h.blender_addon.panels import Z2H_PT_benchmark, Z2H_PT_edit

    scene, _ = make_scene(tmp_path)
    bench = _draw(Z2H_PT_benchmark)
    assert {"z2h.render_pair", "z2h.export_spec"} <= set(_ops(bench))
    assert ("label", "Object: Box") in bench and ("prop", "color") in bench
    idle = _draw(Z2H_PT_edit)
    assert ("label", "Anchor: frame 2") in idle and "z2h.run_edit" in _ops(idle)
    assert not any(entry[0] == "progress" for entry in idle)

    monkeypatch.setenv("Z2H_FAKE_MODE", "slow")
    run = jobs.start_edit(bpy.context)
    while run.phase != "backend" or jobs.poll_step(scene, run).step < 4:
        jobs.poll_step(scene, run)
        time.sleep(0.02)
    running = _draw(Z2H_PT_edit)
    bar = next(entry for entry in running if entry[0] == "progress")
    assert bar[1] == pytest.approx(scene.z2h.job_progress, abs=1e-3) and bar[1] > jobs.RENDER_SHARE
    assert bar[2].startswith(f"{scene.z2h.job_progress:.0%} · Propagating the edit frame ")
    assert "left in this stage" in bar[2]  # a time estimate once the stage has made steps
    assert {"z2h.cancel", "z2h.open_log"} <= set(_ops(running)) and "z2h.run_edit" not in _ops(running)
    status = []  # the status bar shows the same line while the task runs
    panels.draw_status_bar(type("H", (), {"layout": _Layout(status)})(), bpy.context)
    assert status[0][0] == "progress" and status[0][2].startswith("Z2H ") and "z2h.cancel" in _ops(status)
    jobs.cancel_active(wait=True)
    jobs.finish_edit(scene, _wait(run)[0])
    assert ("label", "cancelled") in _draw(Z2H_PT_edit)
    status = []
    panels.draw_status_bar(type("H", (), {"layout": _Layout(status)})(), bpy.context)
    assert status == []  # nothing in the status bar when idle

    # A failure shows its message and the log's last lines, with a button to open the log.
    monkeypatch.setenv("Z2H_FAKE_MODE", "error")
    with pytest.raises(RuntimeError, match="the fake says no"):
        bpy.ops.z2h.run_edit()
    failed = _draw(Z2H_PT_edit)
    assert ("label", "z2h backend: anchor 1 is fine but the fake says no") in failed or \
        ("label", "anchor 1 is fine but the fake says no") in failed
    assert "z2h.open_log" in _ops(failed) and Path(scene.z2h.job_log).is_file()

    prefs_log = []
    delegate = {"layout": _Layout(prefs_log), "__getattr__": lambda self, n: getattr(prefs, n)}
    stand_in = type("P", (), delegate)()
    type(prefs).draw(stand_in, bpy.context)
    assert "z2h.check_backend" in _ops(prefs_log) and ("prop", "backend_python") in prefs_log


def test_greyed_out_buttons_say_why(addon, tmp_path):
    scene, box = make_scene(tmp_path)
    bpy.context.view_layer.objects.active = None
    assert not bpy.ops.z2h.render_pair.poll()
    with pytest.raises(RuntimeError, match="Select the mesh object to edit"):
        bpy.ops.z2h.render_pair()
    scene.camera = None
    with pytest.raises(RuntimeError, match="no active camera"):
        bpy.ops.z2h.run_edit()
    with pytest.raises(RuntimeError, match="Nothing is running"):
        bpy.ops.z2h.cancel()


def test_recolour_touches_only_the_object_and_restores_everything(addon, tmp_path):
    from z2h.blender_addon import rendering

    scene, box = make_scene(tmp_path)
    twin = box.copy()  # shares the mesh and so its (mesh-linked) material
    scene.collection.objects.link(twin)
    bare = bpy.data.objects.new("Bare", bpy.data.meshes.new("Bare"))
    scene.collection.objects.link(bare)
    n_materials = len(bpy.data.materials)
    edit = rendering.make_edit(box, scene.z2h)
    with rendering.edited_object(box, edit), rendering.edited_object(bare, edit):
        inside = box.material_slots[0].material
        assert inside.name != "BoxMat" and box.material_slots[0].link == "OBJECT"
        assert tuple(inside.diffuse_color)[:3] == pytest.approx((0.1, 0.2, 0.9))
        assert twin.material_slots[0].material.name == "BoxMat"
        assert tuple(bpy.data.materials["BoxMat"].diffuse_color)[:3] == pytest.approx((0.8, 0.1, 0.1))
        assert len(bare.material_slots) == 1
    assert box.material_slots[0].link == "DATA" and box.material_slots[0].material.name == "BoxMat"
    assert len(bare.material_slots) == 0 and len(bpy.data.materials) == n_materials

    before = scene.render.resolution_x
    with pytest.raises(KeyError), rendering.overridden(scene, [("render.resolution_x", 7)]):
        assert scene.render.resolution_x == 7
        raise KeyError("a failing render")
    assert scene.render.resolution_x == before != 7


def test_set_up_backend_runs_its_steps_and_fills_in_the_preference(addon, prefs, tmp_path, monkeypatch):
    from z2h.blender_addon import jobs, setup_backend

    # The real steps: a venv from this Python, the pinned torch, z2h with its ML extra, the VGG16 weights.
    steps = setup_backend.setup_steps(tmp_path / "env", str(ROOT))
    python = str(tmp_path / "env" / "bin" / "python")
    assert steps[0][1] == [sys.executable, "-m", "venv", str(tmp_path / "env")]
    assert steps[1][1][:4] == [python, "-m", "pip", "install"]
    assert steps[1][1][-2:] == list(setup_backend.TORCH)
    assert steps[2][1][-1] == f"{ROOT}[ml]" and steps[3][1] == [python, "-m", "z2h", "weights", "fetch"]
    assert setup_backend.z2h_requirement("") == "z2h[ml]"

    prefs.backend_dir = str(tmp_path / "env")
    if not bpy.app.online_access:  # Blender's switch is respected
        with pytest.raises(jobs.EditError, match="allow Online Access"):
            jobs.begin_setup(bpy.context)
        with pytest.raises(RuntimeError, match="Needs Online Access"):
            bpy.ops.z2h.setup_backend()
    # The chain itself, with stand-in commands (no network here): a real venv, then two quick steps.
    monkeypatch.setattr(setup_backend, "online_access", lambda: True)
    monkeypatch.setattr(setup_backend, "setup_steps", lambda folder, source: [
        ("Creating the environment", [sys.executable, "-m", "venv", "--without-pip", str(folder)]),
        ("Installing torch", [sys.executable, "-c", "import time; time.sleep(0.3)"]),
        ("Installing z2h", [sys.executable, "-c", "print('installed')"])])
    scene = bpy.context.scene
    run = jobs.begin_setup(bpy.context)
    labels = []
    while not (state := jobs.poll_step(scene, run)).finished:
        labels.append(scene.z2h.job_stage)
        time.sleep(0.02)
    assert state.status == "done", state.message
    assert "Installing torch (step 2/3)" in labels and scene.z2h.job_progress == 1.0
    assert jobs.finish_setup(scene, state)[0] == "INFO"
    assert prefs.backend_python == python and Path(python).exists()
    assert "installed" in (tmp_path / "env-setup.log").read_text()
    with pytest.raises(jobs.EditError, match="is not empty"):  # never into an existing environment
        jobs.begin_setup(bpy.context)
    prefs.backend_python = prefs.backend_dir = ""


@pytest.mark.slow
def test_run_edit_with_the_real_backend(prefs, tmp_path):
    """The whole path with the real `python -m z2h edit` (offline engine) from the backend venv."""
    import subprocess

    from z2h.blender_addon import jobs

    python = ROOT / ".venv" / "bin" / "python"
    if not python.exists() or subprocess.run([str(python), "-c", "import z2h.edit_cli"],
                                             capture_output=True).returncode:
        pytest.skip("the backend venv or `z2h edit` is not available")
    prefs.backend_python, prefs.cache_dir, prefs.engine = str(python), str(tmp_path / "cache"), "offline"
    prefs.extra_args = "--steps 10 --time-budget 5 --pseudo-pairs 2"  # a quick run: this checks plumbing
    try:
        scene, _ = make_scene(tmp_path)
        job = jobs.start_edit(bpy.context)
        state, states = _wait(job, timeout=600)
        assert state.status == "done", (state.message, job.stderr_tail[-2000:])
        assert len({stage for stage, _ in states if stage}) >= 2  # the bar followed several stages
        kind, message = jobs.finish_edit(scene, state)
        assert kind == "INFO", message
        strip = strips(bpy.data.scenes["Z2H Box"].sequence_editor)["Z2H Box"]
        assert len(strip.elements) == 3
        out = Path(scene.z2h.result_dir)
        assert read_header(out / "frames" / "0000.png")[:2] == (32, 32)
    finally:
        prefs.backend_python = prefs.cache_dir = prefs.extra_args = ""
