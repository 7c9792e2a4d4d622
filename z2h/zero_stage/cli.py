"""``z2h zero``: run the Zero-Stage on a video and write its frames (PNG) plus run.json."""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from pathlib import Path

from z2h.zero_stage.config import ENGINES, TRANSFERS


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--video", required=True, help="folder of frames or a video file (MP4, ...)")
    p.add_argument("--anchor", type=int, required=True, help="index of the edited frame (from 0)")
    p.add_argument("--reference", required=True, help="the edited anchor frame (image of the video's size)")
    p.add_argument("--out", required=True, help="output folder for 0000.png ... and run.json")
    p.add_argument("--k", type=int, default=1, help="anchor matches per target token (default 1)")
    p.add_argument("--engine", choices=ENGINES, default="offline",
                   help="offline: VGG16 features, runs anywhere; diffusion: SD 2.1 (needs --zero-model)")
    p.add_argument("--zero-model", help="Stable Diffusion 2.1-base folder (diffusers format) or hub id")
    p.add_argument("--transfer", choices=TRANSFERS, default="ratio",
                   help="offline: what attention moves from the reference (default ratio = colour gain)")
    p.add_argument("--work-size", type=int, default=256,
                   help="offline: longer side (px) the frames are matched at (default 256)")
    p.add_argument("--device", help="torch device (default: cpu for offline, cuda if available otherwise)")
    p.add_argument("--progress", choices=("bar", "json", "none"), default="bar",
                   help="bar: tqdm on stderr; json: one JSON event per line on stdout (for the add-on)")
    p.add_argument("--overwrite", action="store_true", help="replace the frames of a non-empty --out")


def _fail(reporter, message: str) -> int:
    reporter.emit("error", message=message)  # one line on stderr in every mode (+ JSON on stdout)
    return 1


def run(args: argparse.Namespace) -> int:
    from z2h import versions
    from z2h.io import prepare_out, read_frames, read_image, write_image, write_json
    from z2h.progress import Cancelled, Reporter
    from z2h.zero_stage import ZeroStage, ZeroStageConfig
    from z2h.zero_stage.offline import check_inputs

    reporter = Reporter(args.progress)
    reporter.install_signal_handlers()
    out = Path(args.out)
    written = 0
    try:
        config = ZeroStageConfig(engine=args.engine, k=args.k, zero_model=args.zero_model,
                                 transfer=args.transfer, work_size=args.work_size, device=args.device)
        if config.engine == "diffusion" and not config.zero_model:
            raise ValueError("--engine diffusion needs --zero-model "
                             "(a Stable Diffusion 2.1-base folder or hub id)")
        frames = read_frames(args.video)
        reference = read_image(args.reference)
        check_inputs(frames, args.anchor, reference)  # before touching --out
        # Only what this command writes: stale frames of a longer earlier run must not survive.
        prepare_out(out, args.overwrite, ("run.json", "[0-9][0-9][0-9][0-9].png"),
                    inputs=(args.video, args.reference))
        stage = ZeroStage(config)
        t0 = time.perf_counter()
        result = stage(frames, args.anchor, reference, progress=reporter.stage("zero", "Zero-Stage"))
        t1 = time.perf_counter()
        write = reporter.stage("write", "writing frames")
        for i, frame in enumerate(result):
            write(i, len(result))
            write_image(out / f"{i:04d}.png", frame)
            written = i + 1
        write(len(result), len(result))
        t2 = time.perf_counter()

        record = {
            "command": "zero",
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "engine": config.engine,
            "settings": stage.settings(),
            "inputs": {"video": str(args.video), "anchor": args.anchor, "reference": str(args.reference)},
            "frames": len(result),
            "resolution": [int(frames.shape[2]), int(frames.shape[1])],
            "versions": versions(),
            "timing": {"zero_s": round(t1 - t0, 3), "write_s": round(t2 - t1, 3),
                       "zero_s_per_frame": round((t1 - t0) / len(result), 4)},
        }
        write_json(out / "run.json", record)
    except Cancelled:
        reporter.emit("cancelled", out=str(out), partial=True,
                      message=f"cancelled; {written} frames in {out}")
        return 130
    except (ValueError, FileNotFoundError) as e:
        return _fail(reporter, str(e))
    reporter.emit("done", out=str(out), partial=False,
                  message=f"wrote {len(result)} frames to {out} ({t1 - t0:.1f} s Zero-Stage)")
    return 0
