"""``z2h edit``: propagate an edited anchor frame through a video (Zero-Stage, then Hero-Stage).

Writes OUT/zero/NNNN.png (Zero-Stage frames, as soon as that stage ends), OUT/frames/NNNN.png,
OUT/preview.mp4 and, last, OUT/run.json (settings, engine, versions, timings, status "complete",
"partial" after a cancel, "failed" after an error). Exit codes: 0 done, 1 error, 130 cancelled.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from z2h.progress import Cancelled, Reporter

ARTEFACTS = ("run.json", "preview.mp4", "frames", "zero")  # what --overwrite removes (and nothing else)


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
    parser.add_argument("--k", type=int, default=1, help="Zero-Stage top-k matches (default 1, the paper's)")
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
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads for the Hero-Stage (default 1; 0 = all cores)")
    parser.add_argument("--fps", type=float,
                        help="frame rate of preview.mp4 (default: the input video's, 24 for a frame folder)")
    parser.add_argument("--progress", choices=("bar", "json", "none"), default="bar",
                        help="json: one JSON object per line on stdout (for the Blender add-on)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the results of an earlier run in --out")


def build_config(args: argparse.Namespace):
    """EditConfig from the command line (only the options given override the defaults)."""
    from z2h.pipeline import EditConfig

    options: dict[str, Any] = {"engine": args.engine, "seed": args.seed, "mode": args.mode, "k": args.k,
                               "threads": args.threads}
    given = {"zero_model": args.zero_model, "hero_model": args.hero_model, "hero_steps": args.steps,
             "pseudo_pairs": args.pseudo_pairs, "work_size": args.work_size}
    options.update({key: v for key, v in given.items() if v is not None})
    if args.time_budget is not None:
        options["time_budget_s"] = args.time_budget or None
    return EditConfig.from_options(**options)


def load_inputs(args: argparse.Namespace):
    """(frames, reference) with errors that name the flag and the file."""
    import numpy as np

    from z2h.io import read_frames, read_image

    frames = read_frames(args.video)
    reference = read_image(args.reference)
    t, h, w = frames.shape[:3]
    if not 0 <= args.anchor < t:
        raise ValueError(f"--anchor {args.anchor} is out of range: {args.video} has {t} frames (0..{t - 1})")
    if reference.shape[:2] != (h, w):
        raise ValueError(f"--reference {args.reference} is {reference.shape[1]}x{reference.shape[0]}, but "
                         f"the frames of {args.video} are {w}x{h}: the reference must be the edited anchor "
                         "frame")
    return frames, np.ascontiguousarray(reference)


def write_sequence(folder: Path, frames, progress, done: int, total: int, written: dict, key: str) -> int:
    """Write frames as NNNN.png, counting each in ``written[key]`` as it lands (so a cancel reports it)."""
    from z2h.io import write_image

    for i, frame in enumerate(frames):
        write_image(folder / f"{i:04d}.png", frame)
        written[key] = i + 1
        done += 1
        progress(done, total)
    return done


def run(args: argparse.Namespace) -> int:
    from z2h import versions
    from z2h.io import prepare_out, write_json

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
            print(f"z2h: {message}", file=sys.stderr)
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
        frames, reference = load_inputs(args)
        prepare_out(out, args.overwrite, ARTEFACTS, inputs=(args.video, args.reference))
        out_ready = True
        record["versions"] = versions()
        total = 2 * len(frames) + 1  # zero frames, final frames, preview
        write_progress = reporter.stage("write", "writing frames")

        def on_zero(zero) -> None:
            mark = time.perf_counter()
            write_sequence(out / "zero", zero, write_progress, 0, total, record["written"], "zero")
            record["timings"]["write_zero"] = round(time.perf_counter() - mark, 2)

        from z2h.io import video_fps, write_video
        from z2h.pipeline import edit

        result = edit(frames, args.anchor, reference, config, reporter, on_zero=on_zero)
        record["timings"].update(result.timings)
        record["train"] = result.train
        mark = time.perf_counter()
        write_sequence(out / "frames", result.frames, write_progress, len(frames), total,
                       record["written"], "frames")
        fps = args.fps or video_fps(args.video) or 24.0
        record["preview_fps"] = fps
        write_video(out / "preview.mp4", result.frames, fps=fps, audio_from=args.video)
        record["written"]["preview"] = True
        write_progress(total, total)
        record["timings"]["write"] = round(time.perf_counter() - mark, 2)
    except (Cancelled, KeyboardInterrupt):
        finish("partial", error="cancelled")
        say("cancelled", f"cancelled; partial results kept in {out}", out=str(out), partial=True)
        return 130
    except (ValueError, FileNotFoundError, RuntimeError, OSError) as e:
        return fail(str(e))
    finish("complete")
    say("done", f"done: {out}", out=str(out), partial=False)
    return 0
