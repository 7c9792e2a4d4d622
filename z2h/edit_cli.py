"""``z2h edit``: propagate an edited anchor frame through a video (Zero-Stage, then Hero-Stage).

Streams: frames are read from the folder (a video file is first decoded frame by frame into
OUT/work/input/) when a stage needs them, and each finished frame is written at once: OUT/zero/NNNN.png
(Zero-Stage, at the working resolution), OUT/frames/NNNN.png (full size), then OUT/preview.mp4 and, last,
OUT/run.json (settings, engine, versions, timings, status "complete", "partial" after a cancel, "failed"
after an error). Peak memory does not grow with the number of frames (docs/scale.md).

``--resume`` continues an interrupted run in OUT: OUT/work/state.json holds a key of the settings and
inputs (it must match), OUT/work/frames.jsonl a SHA-256 per written frame (a frame is kept only if its
file still matches), OUT/work/restorer.safetensors the trained offline restorer.
Exit codes: 0 done, 1 error, 130 cancelled.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from z2h.progress import Cancelled, Reporter

# what --overwrite removes (and nothing else); the run record first, so a stale "complete" never outlives
# the files it describes
ARTEFACTS = ("run.json", "preview.mp4", "frames", "zero", "work")
DEFAULT_WORK_RESOLUTION = 512


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--video", required=True,
                        help="folder of frames (PNG/JPG, natural order) or a video file")
    parser.add_argument("--anchor", required=True, type=int, help="index of the edited frame (from 0)")
    parser.add_argument("--reference", required=True, help="the edited anchor frame (same size as the video)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--engine", choices=("offline", "diffusion"), default="offline",
                        help="offline: VGG16 features + per-video restorer (default); "
                        "diffusion: SD 2.1 + FLUX")
    parser.add_argument("--mode", type=int, choices=(1, 2), default=2,
                        help="Hero-Stage conditions: 1 = Zero-Stage output only, "
                        "2 = + original frame (default)")
    parser.add_argument("--preset", choices=("v2", "paper"), default="v2",
                        help="v2: the paper's stages + tracking, colour lookup and flow fusion (default); "
                        "paper: the paper's method alone (Zero-Stage k=1, Hero-Stage on the anchor triplet)")
    parser.add_argument("--k", type=int, help="Zero-Stage top-k matches (default 1, the paper's)")
    parser.add_argument("--zero-model", help="Stable Diffusion 2.1 folder or hub id (diffusion engine)")
    parser.add_argument("--hero-model", help="FLUX folder or hub id (diffusion engine)")
    parser.add_argument("--steps", type=int,
                        help="Hero-Stage training steps (default: 800 offline, 600 diffusion)")
    parser.add_argument("--time-budget", type=float,
                        help="stop Hero-Stage training after this many seconds (default: no limit, "
                        "every step runs; run.json's train.budget_hit says when it cut training short)")
    parser.add_argument("--pseudo-pairs", type=int,
                        help="offline Hero-Stage: warped anchor copies (default 8)")
    parser.add_argument("--work-size", type=int, help="offline Zero-Stage matching size (default 256)")
    parser.add_argument("--work-resolution", type=int, default=DEFAULT_WORK_RESOLUTION,
                        help="longer side (px) both stages run at; larger videos are lifted to full size "
                        f"by an edge-aware upsampler (default {DEFAULT_WORK_RESOLUTION}; 0 = full size)")
    parser.add_argument("--lift", choices=("guided", "bilinear"), default="guided",
                        help="how the edit is lifted to full size: guided filter (default) or bilinear")
    diffusion = parser.add_argument_group("diffusion Hero-Stage (defaults: the paper's reference recipe)")
    diffusion.add_argument("--caption", help="caption of the edited frame for FLUX (default none; dropped on "
                           "10%% of the training steps; needs the checkpoint's text encoders)")
    diffusion.add_argument("--hero-resolution", type=int,
                           help="FLUX target's longer side (default 768 in mode 2, 512 in mode 1)")
    diffusion.add_argument("--cond-resolution", type=int, help="FLUX conditions' longer side (default 512)")
    diffusion.add_argument("--fp8-base", action="store_true",
                           help="store the frozen FLUX weights in float8 (12 GB instead of 24 GB; run in "
                           "bf16, results may differ slightly)")
    diffusion.add_argument("--low-memory", action="store_true",
                           help="text encoders and VAE on the CPU between their calls, tiled and sliced VAE "
                           "(for GPUs with less memory; slower)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads for the Hero-Stage (default 1; 0 = all cores)")
    parser.add_argument("--fps", type=float,
                        help="frame rate of preview.mp4 (default: the input video's, 24 for a frame folder)")
    parser.add_argument("--progress", choices=("bar", "json", "none"), default="bar",
                        help="json: one JSON object per line on stdout (for the Blender add-on)")
    again = parser.add_mutually_exclusive_group()
    again.add_argument("--overwrite", action="store_true",
                       help="replace the results of an earlier run in --out")
    again.add_argument("--resume", action="store_true",
                       help="continue an interrupted run in --out (same inputs and settings): frames "
                       "already written and unchanged are kept")


def build_config(args: argparse.Namespace):
    """EditConfig from the command line (only the options given override the defaults)."""
    from z2h.pipeline import EditConfig

    options: dict[str, Any] = {"preset": args.preset, "engine": args.engine, "seed": args.seed,
                               "mode": args.mode, "threads": args.threads,
                               "work_resolution": args.work_resolution or None, "lift": args.lift}
    given = {"zero_model": args.zero_model, "hero_model": args.hero_model, "hero_steps": args.steps,
             "pseudo_pairs": args.pseudo_pairs, "work_size": args.work_size, "k": args.k,
             "hero_prompt": args.caption, "hero_resolution": args.hero_resolution,
             "hero_cond_resolution": args.cond_resolution}
    if args.fp8_base:
        given["hero_base_storage"] = "fp8"
    if args.low_memory:
        given.update(hero_offload=True, hero_vae_tiling=True, hero_vae_slicing=True)
    options.update({key: v for key, v in given.items() if v is not None})
    if args.time_budget is not None:
        options["time_budget_s"] = args.time_budget or None
    return EditConfig.from_options(**options)


def open_video(video: Path, work: Path):
    """A lazy frame sequence over ``video``: a folder of frames, or a video file decoded into ``work``."""
    from z2h.frames import FolderFrames
    from z2h.io import decode_video

    check_video(video)
    if video.is_file():
        decode_video(video, work / "input")
        return FolderFrames(work / "input")
    return FolderFrames(video)


def check_video(video: Path) -> None:
    """A folder or a video file, else an error that says what is accepted."""
    from z2h.io import IMAGE_SUFFIXES, VIDEO_SUFFIXES

    accepted = (f"a folder of frames ({', '.join(IMAGE_SUFFIXES)}) or a video file "
                f"({', '.join(VIDEO_SUFFIXES)})")
    if video.is_file() and video.suffix.lower() not in VIDEO_SUFFIXES:
        kind = "a single image" if video.suffix.lower() in IMAGE_SUFFIXES else "not a supported video file"
        raise ValueError(f"{video} is {kind}: pass {accepted}")
    if not video.exists():
        raise FileNotFoundError(f"video not found: {video} (pass {accepted})")


def check_inputs(args: argparse.Namespace, frames, reference) -> None:
    """Errors that name the flag and the file."""
    t, h, w = frames.shape[:3]
    if not 0 <= args.anchor < t:
        raise ValueError(f"--anchor {args.anchor} is out of range: {args.video} has {t} frames (0..{t - 1})")
    if reference.shape[:2] != (h, w):
        raise ValueError(f"--reference {args.reference} is {reference.shape[1]}x{reference.shape[0]}, but "
                         f"the frames of {args.video} are {w}x{h}: the reference must be the edited anchor "
                         "frame")


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def input_key(args: argparse.Namespace, settings: dict) -> str:
    """What an edit's output depends on: settings, anchor, the reference's bytes and the video's files
    (names, sizes, modification times; hashing every frame of a long video would cost minutes)."""
    import hashlib
    import json

    video = Path(args.video)
    files = [video] if video.is_file() else sorted(p for p in video.iterdir() if p.is_file())
    stats = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    blob = json.dumps([settings, args.anchor, _sha256(Path(args.reference)), stats], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


class FrameLog:
    """OUT/work/frames.jsonl: one line per written frame (stage, index, SHA-256 of the file), appended as
    frames land, so ``--resume`` can keep exactly the frames that are complete and unchanged."""

    def __init__(self, path: Path):
        self.path = path

    def record(self, stage: str, i: int, file: Path) -> None:
        import json

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(json.dumps({"stage": stage, "frame": i, "sha256": _sha256(file)}) + "\n")

    def verified(self, stage: str, folder: Path) -> set[int]:
        """Indices whose file in ``folder`` still has the recorded hash (a torn last line is ignored)."""
        import json

        latest: dict[int, str] = {}
        if self.path.is_file():
            for line in self.path.read_text().splitlines():
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if entry.get("stage") == stage:
                    latest[int(entry["frame"])] = entry["sha256"]
        ok = set()
        for i, digest in latest.items():
            path = folder / f"{i:04d}.png"
            if path.is_file() and _sha256(path) == digest:
                ok.add(i)
        return ok


def prepare_resume(out: Path, key: str) -> None:
    """Refuse to resume into a folder that holds no run, or a run of other inputs or settings."""
    import json

    state = out / "work" / "state.json"
    try:
        old = json.loads(state.read_text()).get("key")
    except (FileNotFoundError, json.JSONDecodeError):
        raise ValueError(f"--resume: {out} holds no interrupted z2h edit (no {state}); run without "
                         "--resume") from None
    if old != key:
        raise ValueError(f"--resume: the run in {out} was made with other inputs or settings; pass "
                         "--overwrite to start again")


def run(args: argparse.Namespace) -> int:
    from z2h import versions
    from z2h.io import prepare_out, read_image, write_json

    reporter = Reporter(args.progress)
    reporter.install_signal_handlers()
    out = Path(args.out)
    record: dict[str, Any] = {"status": "failed", "started": datetime.now(UTC).isoformat(timespec="seconds"),
                              "inputs": {"video": str(args.video), "anchor": args.anchor,
                                         "reference": str(args.reference)},
                              "written": {"zero": 0, "frames": 0, "preview": False}, "timings": {}}
    start = time.perf_counter()
    out_ready = False

    def finish(status: str, **extra: Any) -> None:
        if not out_ready:
            return
        record.update(status=status, **extra)
        record["timings"]["total"] = round(time.perf_counter() - start, 2)
        try:
            write_json(out / "run.json", record)
        except OSError as e:  # e.g. the disk filled up: say so, but keep the real outcome's exit code
            print(f"z2h: could not write {out / 'run.json'}: {e}", file=sys.stderr)

    def say(event: str, message: str, **fields: Any) -> None:
        # JSON events carry exactly the contract's fields; the human message goes to stderr.
        if args.progress == "json":
            logging.getLogger("z2h").info("z2h: %s", message)
            reporter.emit(event, **fields)
        else:
            reporter.emit(event, message=message, **fields)

    def fail(message: str) -> int:
        finish("failed", error=message)
        reporter.emit("error", message=message)  # errors always reach stderr, whatever --progress
        return 1

    try:
        config = build_config(args)
        record["engine"], record["settings"] = config.engine, config.settings()
        if config.hero.engine == "diffusion" and not config.hero.hero_model:
            raise ValueError("the diffusion engine needs FLUX weights: pass --hero-model FOLDER_OR_HUB_ID")
        if config.zero.engine == "diffusion" and not config.zero.zero_model:
            raise ValueError("the diffusion engine needs Stable Diffusion 2.1 weights: pass --zero-model "
                             "FOLDER_OR_HUB_ID")
        if args.fps is not None and not 0 < args.fps <= 1000:
            raise ValueError(f"--fps {args.fps:g}: expected a frame rate in (0, 1000]")
        video, work = Path(args.video), out / "work"
        reference = read_image(args.reference)
        is_folder = not video.is_file()
        if is_folder:  # check a folder before touching --out; a video file is decoded into it first
            frames = open_video(video, work)
            check_inputs(args, frames, reference)
        else:
            check_video(video)
        key = input_key(args, config.settings())
        if args.resume:
            prepare_resume(out, key)
        else:
            if (work / "state.json").is_file() and not args.overwrite:
                raise ValueError(f"--out {out} holds an earlier z2h edit; pass --resume to continue it or "
                                 "--overwrite to replace it")
            prepare_out(out, args.overwrite, ARTEFACTS, inputs=(args.video, args.reference))
        out_ready = True
        record["versions"] = versions()
        from z2h.frames import FolderStore
        from z2h.io import video_fps, write_video
        from z2h.pipeline import run_edit, working_shape

        write_json(work / "state.json", {"key": key, "settings": config.settings()})
        if not is_folder:
            frames = open_video(video, work)
            check_inputs(args, frames, reference)
        n_frames, height, width = frames.shape[:3]
        size = working_shape(height, width, config.work_resolution)
        record["size"], record["work_size"] = [width, height], [size[1], size[0]]
        log = FrameLog(work / "frames.jsonl")

        def on_write(stage: str):
            def write(i: int, path: Path) -> None:
                log.record(stage, i, path)
                record["written"][stage] = len(stores[stage].done)
            return write

        stores = {"zero": FolderStore(out / "zero", (n_frames, *size, 3), on_write("zero")),
                  "frames": FolderStore(out / "frames", frames.shape, on_write("frames"))}
        for stage, store in stores.items():
            store.done = log.verified(stage, store.folder) if args.resume else set()
            record["written"][stage] = len(store.done)
        if args.resume:
            record["resumed"] = {stage: len(store.done) for stage, store in stores.items()}

        result = run_edit(frames, args.anchor, reference, stores["zero"], stores["frames"], config, reporter,
                          hero_weights=work / "restorer.safetensors")
        record["timings"].update(result["timings"])
        record["train"] = result["train"]
        record["fusion"] = result.get("fusion", {})  # v2 additions: tracking, colour lookup, flow statistics
        mark = time.perf_counter()
        write_progress = reporter.stage("write", "writing preview.mp4")
        write_progress(0, n_frames)
        final = stores["frames"]
        fps = args.fps or video_fps(args.video) or 24.0
        record["preview_fps"] = fps
        write_video(out / "preview.mp4", (final[i] for i in range(n_frames)), fps=fps, audio_from=args.video,
                    progress=lambda n: write_progress(n, n_frames))
        record["written"]["preview"] = True
        record["timings"]["write"] = round(time.perf_counter() - mark, 2)
        if not is_folder:  # the decoded input is only needed to resume
            import shutil

            shutil.rmtree(work / "input", ignore_errors=True)
    except (Cancelled, KeyboardInterrupt):
        finish("partial", error="cancelled")
        say("cancelled", f"cancelled; partial results kept in {out} (--resume continues)", out=str(out),
            partial=True)
        return 130
    except (ValueError, FileNotFoundError, RuntimeError, OSError) as e:
        return fail(str(e))
    finish("complete")
    say("done", f"done: {out}", out=str(out), partial=False)
    return 0
