"""Build a benchmark: validate specs, guard the output folder, run Blender-side workers in parallel.

No bpy here: ``z2h bench build`` runs in the backend environment and renders each video in a worker
subprocess (worker.py) with the interpreter from ``--blender``, ``$Z2H_BLENDER`` or the repository's
``.venv-blender/bin/python``. Worker output other than its ``Z2H`` event lines goes to
``OUT/.logs/<video>.log``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from .manifest import write_manifest
from .spec import Spec, SpecError, effective_spec, load_spec, spec_to_dict
from .worker import parse_event

_log = logging.getLogger("z2h.bench")
WORKER = Path(__file__).resolve().parent / "worker.py"


@dataclass
class BuildConfig:
    resolution: tuple[int, int] | None = None  # None: each spec's own
    frames: int | None = None  # None: each spec's own
    jobs: int = 1
    engine: str = "cycles"
    samples: int = 16
    flow: bool = False
    full_light: bool = False
    denoise: bool = False
    resume: bool = False
    overwrite: bool = False
    blender: str | None = None
    seed: int = 0
    ray: str | None = None  # render on Ray: "local" or a cluster address (z2h/ray_tasks.py)


def check_config(config: BuildConfig) -> None:
    """Overrides within the ranges the spec reader enforces (a bad value used to render an invalid build)."""
    if config.resolution is not None:
        for px in config.resolution:
            if not 8 <= px <= 8192:
                raise ValueError(f"--resolution {px}: expected pixels in 8..8192")
    if config.frames is not None and not 2 <= config.frames <= 10000:
        raise ValueError(f"--frames {config.frames}: expected 2..10000 frames")
    if not 1 <= config.samples <= 1 << 16:
        raise ValueError(f"--samples {config.samples}: expected 1..65536")
    if config.jobs < 1:
        raise ValueError(f"--jobs {config.jobs}: expected at least 1")


# ------------------------------------------------------------------------------------------ build keys
# OUT/<video>/.build.json records what a video is rendered from (its effective spec + render settings),
# so `--resume` never mixes frames of two specs or resolutions (hidden: not part of the eval hash).
KEY_FILE = ".build.json"
_RENDER_SETTINGS = ("engine", "samples", "flow", "full_light", "denoise")


def write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def build_record(spec: Spec, config: BuildConfig) -> dict:
    """What a video's pixels depend on, and its hash."""
    record = {"spec": spec_to_dict(effective_spec(spec, config.frames, config.resolution)),
              "settings": {k: getattr(config, k) for k in _RENDER_SETTINGS}}
    record["key"] = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:16]
    return record


def _changes(old: dict, new: dict) -> list[str]:
    out = []
    for part in ("settings", "spec"):
        a, b = old.get(part) or {}, new[part]
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                out.append(f"{k} {a.get(k)} -> {b.get(k)}" if part == "settings" or k in
                           ("frames", "resolution", "anchor", "fps") else f"spec {k}")
    return out or ["build key"]


def _legacy_changes(meta: dict, new: dict) -> list[str]:
    """For a video rendered before build keys: compare what its meta.json recorded."""
    spec, settings = new["spec"], new["settings"]
    render = meta.get("render") or {}
    edit = dict(spec.get("edit") or {})
    pairs = [("resolution", meta.get("resolution"), list(spec["resolution"])),
             ("frames", meta.get("frames"), spec["frames"]), ("anchor", meta.get("anchor"), spec["anchor"]),
             ("samples", render.get("samples"), settings["samples"]),
             ("denoise", render.get("denoise"), settings["denoise"]),
             ("full_light", not render.get("isolate", True), settings["full_light"]),
             ("spec edit", meta.get("edit"), edit)]
    return [f"{k} {a} -> {b}" if k != "spec edit" else k for k, a, b in pairs if a != b]


def resume_problems(out: Path, specs: list[Spec], config: BuildConfig) -> list[str]:
    """Videos in ``out`` rendered from another spec or settings than this build's (one line each)."""
    problems = []
    for s in specs:
        folder = out / s.name
        if not folder.is_dir():
            continue
        new = build_record(s, config)
        try:
            old = json.loads((folder / KEY_FILE).read_text())
        except FileNotFoundError:
            old = None
        except (OSError, ValueError):
            old = {}
        if old is None:
            try:
                meta = json.loads((folder / "meta.json").read_text())
            except (OSError, ValueError):
                problems.append(f"{folder}: partial video without a build record: cannot tell what it was "
                                "rendered from")
                continue
            changes = _legacy_changes(meta, new) if isinstance(meta, dict) else ["meta.json"]
        else:
            changes = [] if isinstance(old, dict) and old.get("key") == new["key"] else _changes(
                old if isinstance(old, dict) else {}, new)
        if changes:
            problems.append(f"{folder}: rendered with other settings ({', '.join(changes)})")
    return problems


def worker_command(blender: str | None = None) -> list[str]:
    """The command prefix that runs worker.py (arguments follow after it)."""
    exe = blender or os.environ.get("Z2H_BLENDER")
    if exe is None:
        for root in (Path(__file__).resolve().parent.parent, Path.cwd()):
            if (root / ".venv-blender" / "bin" / "python").exists():
                exe = str(root / ".venv-blender" / "bin" / "python")
                break
        else:
            raise FileNotFoundError(
                "no Blender to render with: pass --blender PATH (a Blender 4.2+ binary or a "
                "Python with bpy), set Z2H_BLENDER, or create .venv-blender (make setup)"
            )
    if shutil.which(exe) is None and not Path(exe).exists():
        raise FileNotFoundError(f"--blender/Z2H_BLENDER: {exe} not found")
    if Path(exe).name.startswith("python"):
        return [exe, str(WORKER), "--"]
    return [exe, "-b", "--factory-startup", "--python-exit-code", "1", "--python", str(WORKER), "--"]


def prepare_output(out: Path, names: list[str], resume: bool, overwrite: bool) -> None:
    """Refuse to touch a non-empty folder unless told; ``overwrite`` removes only these videos."""
    if resume and overwrite:
        raise ValueError("pass either --resume or --overwrite, not both")
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a folder")
    if out.exists() and any(out.iterdir()) and not (resume or overwrite):
        raise FileExistsError(
            f"{out} exists and is not empty: pass --resume to continue a build "
            "or --overwrite to replace its videos"
        )
    if overwrite:
        for name in names:
            if (out / name).is_dir():
                shutil.rmtree(out / name)
        (out / "manifest.json").unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


def _reader(proc: subprocess.Popen, video: str, log: Path, events: queue.Queue) -> None:
    with open(log, "a") as f:
        for line in proc.stdout:
            event = parse_event(line)
            if event is None:
                f.write(line)
            else:
                events.put(event)
    proc.wait()
    events.put({"event": "exit", "video": video, "code": proc.returncode})


def build(
    spec_paths: list[str | Path],
    out: str | Path,
    config: BuildConfig,
    log: Callable[[str], None] | None = None,
) -> int:
    """Render every spec into ``out`` and write the manifest; returns the number of failed videos.

    Messages go to ``log`` (default: the ``z2h.bench`` logger); a video's render steps are reported
    once per 10% (every step at debug level), so a log file stays readable.
    """
    log = log or _log.info
    tenths: dict[str, int] = {}
    out = Path(out)
    specs = [load_spec(p) for p in spec_paths]  # all errors before any rendering
    seen: dict[str, str] = {}
    for s in specs:
        if s.name in seen:
            raise SpecError(f"{s.source}: name: {s.name!r} is also the name of {seen[s.name]}")
        seen[s.name] = s.source
    check_config(config)
    if config.resume:  # all mismatches before any rendering; nothing is deleted
        problems = resume_problems(out, specs, config)
        if problems:
            raise ValueError("--resume: " + "; ".join(problems) + ". Pass the settings of the earlier "
                             "build, or --overwrite to re-render these videos")
    prepare_output(out, list(seen), config.resume, config.overwrite)
    cmd = worker_command(config.blender)
    (out / ".logs").mkdir(exist_ok=True)
    if config.ray is not None:
        started = time.time()
        failed = _build_on_ray(specs, out, config, cmd, log)
        return _finish(specs, out, config, failed, started, log)
    jobs = max(1, min(config.jobs, len(specs)))
    threads = max(1, (os.cpu_count() or 1) // jobs)
    events: queue.Queue = queue.Queue()
    pending, running, failed = list(specs), {}, []
    started = time.time()
    n_done = 0
    try:
        while pending or running:
            while pending and len(running) < jobs:
                s = pending.pop(0)
                args = worker_args(s, out, config, threads)
                logfile = out / ".logs" / f"{s.name}.log"
                logfile.write_text(" ".join(cmd + args) + "\n")
                proc = subprocess.Popen(
                    cmd + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
                )
                running[s.name] = proc
                threading.Thread(target=_reader, args=(proc, s.name, logfile, events), daemon=True).start()
                log(f"[{n_done}/{len(specs)}] {s.name}: started")
            ev = events.get()
            name = ev.get("video", "?")
            if ev["event"] == "progress":
                line = f"[{n_done}/{len(specs)}] {name}: step {ev['step']}/{ev['total']}"
                tenth = 10 * ev["step"] // max(ev["total"], 1)
                if tenths.get(name) != tenth:
                    tenths[name] = tenth
                    log(line)
                else:
                    _log.debug(line)
            elif ev["event"] == "error":
                log(f"{name}: ERROR {ev['message']} (log: {out / '.logs' / (name + '.log')})")
            elif ev["event"] == "done":
                n_done += 1
                log(f"[{n_done}/{len(specs)}] {name}: done in {ev['seconds']:.1f} s")
            elif ev["event"] == "exit":
                running.pop(name, None)
                if ev["code"] != 0:
                    failed.append(name)
                    log(f"{name}: worker exited with code {ev['code']} (log: {out / '.logs' / name}.log)")
    finally:
        for proc in running.values():  # interrupted: stop our own workers
            proc.terminate()
    return _finish(specs, out, config, failed, started, log)


def worker_args(s: Spec, out: Path, config: BuildConfig, threads: int) -> list[str]:
    """worker.py's arguments for one spec; also writes the video's build record (what --resume checks)."""
    args = ["--spec", str(s.source), "--out", str(out), "--engine", config.engine,
            "--samples", str(config.samples), "--threads", str(threads)]
    if config.resolution:
        args += ["--resolution", *map(str, config.resolution)]
    if config.frames:
        args += ["--frames", str(config.frames)]
    flags = (("--flow", config.flow), ("--full-light", config.full_light), ("--denoise", config.denoise),
             ("--resume", config.resume))
    args += [f for f, on in flags if on]
    (out / s.name).mkdir(exist_ok=True)
    write_json_atomic(out / s.name / KEY_FILE, build_record(s, config))
    return args


def _build_on_ray(specs: list[Spec], out: Path, config: BuildConfig, cmd: list[str],
                  log: Callable[[str], None]) -> list[str]:
    """One Ray task per video, each running worker.py as a subprocess on its node (z2h/ray_tasks.py);
    returns the names of the videos that failed twice."""
    import importlib

    ray_tasks = importlib.import_module("z2h.ray_tasks")  # backend side only: the add-on never gets here
    cluster = ray_tasks.init(config.ray)
    log(f"ray: {cluster['nodes']} node(s), {cluster['cpus']:g} CPUs; {len(specs)} videos, one task each")
    tasks = [ray_tasks.Task(s.name, ray_tasks.render_video,
                            (cmd + worker_args(s, out, config, 1), str(out / ".logs" / f"{s.name}.log")))
             for s in specs]
    failed: list[str] = []
    n_done = 0

    def done(task, result) -> None:
        nonlocal n_done
        n_done += 1
        log(f"[{n_done}/{len(specs)}] {task.key}: done in {result['seconds']:.1f} s on node {result['node']}")

    def fail(task, message: str) -> None:
        failed.append(task.key)
        log(f"{task.key}: FAILED {message} (log: {out / '.logs' / task.key}.log)")

    ray_tasks.run_tasks(tasks, done, fail)
    return failed


def _finish(specs: list[Spec], out: Path, config: BuildConfig, failed: list[str], started: float,
            log: Callable[[str], None]) -> int:
    """Write the manifest and say what was built; returns the number of failed videos."""
    settings = {
        k: v for k, v in asdict(config).items()
        if k not in ("jobs", "resume", "overwrite", "blender", "ray")
    }
    sizes = {tuple(s.resolution) for s in specs}
    res = config.resolution or (next(iter(sizes)) if len(sizes) == 1 else None)
    settings["resolution"] = list(res) if res else None
    write_manifest(out, settings, seed=config.seed)
    log(
        f"built {len(specs) - len(failed)}/{len(specs)} videos into {out} in {time.time() - started:.0f} s"
        + (f"; FAILED: {', '.join(failed)}" if failed else "")
    )
    return len(failed)
