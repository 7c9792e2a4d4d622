"""Renders in a separate Blender process, so the user's Blender never blocks while frames render.

The scene is saved (with everything it uses) to a copy in the run's work folder, and a worker
(:mod:`.worker`) opens that copy in ``blender --background`` (or, when this add-on runs inside the bpy
module, the same Python) and renders it, printing one progress JSON line per frame. The add-on
follows it with the same :class:`~.client.BackendJob` as the z2h backend: its own process group,
Esc/Cancel stops it mid-frame, its output goes to a log file.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import bpy

from .client import BackendJob

WORKER = Path(__file__).with_name("worker.py")


def snapshot(scene: bpy.types.Scene, path: Path) -> Path:
    """Write ``scene`` and every data-block it uses to ``path`` (a .blend), file paths made absolute
    so textures still resolve from the copy's folder. The user's own file is not touched."""
    path.parent.mkdir(parents=True, exist_ok=True)
    bpy.data.libraries.write(str(path), {scene}, path_remap="ABSOLUTE", fake_user=False, compress=False)
    return path


def worker_command(job_file: Path) -> list[str]:
    """The command line of a worker for ``job_file``: Blender itself in background mode, or this
    Python when Blender runs as the bpy module (``bpy.app.binary_path`` is empty there)."""
    blender = bpy.app.binary_path
    if blender:
        return [blender, "--background", "--python-exit-code", "1", "--python", str(WORKER), "--",
                str(job_file)]
    return [sys.executable, str(WORKER), str(job_file)]


def start(scene: bpy.types.Scene, work: Path, task: dict, log: Path) -> BackendJob:
    """Snapshot ``scene`` into ``work`` and start a worker on ``task`` (see :mod:`.worker`); ``log``
    gets the worker's output. Returns the running job."""
    work.mkdir(parents=True, exist_ok=True)
    blend = snapshot(scene, work / "scene.blend")
    job = {"blend": str(blend), "scene": scene.name, "package": __package__,
           "package_dir": str(Path(__file__).parent), **task}
    job_file = work / "job.json"
    tmp = job_file.with_name(job_file.name + ".tmp")
    tmp.write_text(json.dumps(job, indent=1))
    os.replace(tmp, job_file)
    return BackendJob(worker_command(job_file), log=log)


def preview_command(first_frame: Path, fps: int, fps_base: float = 1.0) -> list[str] | None:
    """Blender's animation player (``blender -a``) on an image sequence at the scene's frame rate;
    None when there is no Blender binary (the bpy module)."""
    if not bpy.app.binary_path:
        return None
    return [bpy.app.binary_path, "-a", "-f", str(int(fps)), str(float(fps_base)), str(first_frame)]
