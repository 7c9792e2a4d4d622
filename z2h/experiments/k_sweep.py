"""``z2h experiment k-sweep BENCH``: Zero-Stage quality vs top-k, the paper's first experiment.

Small k keeps each target token on its best anchor matches (sharp, but a wrong match is copied as is);
large k averages more matches (blur), and k = h·w lets every token see the whole anchor (colour leaks
across objects). For each video and k: masked/full PSNR, SSIM and LPIPS against the edited ground truth,
anchor frame excluded. Writes ``k_sweep.csv`` (per video and k), ``k_sweep.md`` (mean over videos),
``k_sweep.png`` (metrics vs k) and ``k_grid_<video>.png`` (one frame at every k, beside the truth).
The offline engine computes all k in one pass (features and one top-max(k) search per frame).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ALL = "all"  # k = every anchor token (h·w)
DEFAULT_KS = "1,4,16,64,256,1024,all"
METRICS = ("psnr_masked", "ssim_masked", "lpips_masked", "psnr", "ssim", "lpips")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("bench", help="benchmark folder (format v1, docs/architecture.md)")
    p.add_argument("--videos", help="comma-separated video names (default: every video of the benchmark)")
    p.add_argument("--ks", default=DEFAULT_KS,
                   help=f"comma-separated k values, '{ALL}' = h·w (default {DEFAULT_KS})")
    p.add_argument("--out", required=True, help="output folder for the tables, plot and grids")
    p.add_argument("--engine", choices=("offline", "diffusion"), default="offline")
    p.add_argument("--zero-model", help="diffusion engine: Stable Diffusion 2.1-base folder or hub id")
    p.add_argument("--work-size", type=int, default=256, help="offline: matching resolution (longer side)")
    p.add_argument("--tau", type=float, default=1.0,
                   help="query temperature: offline logits are 20·τ·score (lower: more blur at large k)")
    p.add_argument("--lpips", choices=("alex", "vgg", "none"), default="alex", help="LPIPS network or none")
    p.add_argument("--progress", choices=("bar", "json", "none"), default="bar")
    p.add_argument("--overwrite", action="store_true", help="replace the results in a non-empty --out")


def parse_ks(text: str) -> list[int | str]:
    """'1,4,all' -> [1, 4, 'all']; clear errors for anything else."""
    ks: list[int | str] = []
    for item in (s.strip() for s in text.split(",") if s.strip()):
        if item in (ALL, "hw", "h*w"):
            ks.append(ALL)
        elif item.isdigit() and int(item) >= 1:
            ks.append(int(item))
        else:
            raise ValueError(f"--ks: {item!r} is not a positive integer or '{ALL}'")
    if not ks:
        raise ValueError("--ks is empty")
    return ks


def sweep_video(video: Any, ks: list[int | str], args: argparse.Namespace, progress) -> dict[int, Any]:
    """Zero-Stage outputs of one benchmark video for every k: {effective k: frames}."""
    from dataclasses import replace

    from z2h.zero_stage import ZeroStage, ZeroStageConfig

    config = ZeroStageConfig(engine=args.engine, zero_model=args.zero_model, work_size=args.work_size,
                             tau=args.tau)
    if args.engine == "offline":
        from z2h.zero_stage.offline import OfflineZeroStage

        numeric = [10**9 if k == ALL else k for k in ks]  # clipped to the token count by run_ks
        # Large k keeps (frames, N, k) indices alive: fewer frames per batch bound the memory.
        engine = OfflineZeroStage(replace(config, batch_size=2 if max(numeric) > 256 else 8))
        return engine.run_ks(video.original, video.anchor, video.reference, numeric, progress)
    if ALL in ks:
        raise ValueError("k = all is only available with the offline engine; pass numbers to --ks")
    return {k: ZeroStage(config, k=k)(video.original, video.anchor, video.reference, progress) for k in ks}


def table(rows: Any) -> str:
    """Markdown table of the mean over videos per k (pandas' to_markdown needs tabulate; not used)."""
    mean = rows.groupby("k")[list(METRICS)].mean().reset_index()
    head = ["k", *METRICS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in mean.iterrows():
        lines.append("| " + " | ".join([str(int(r["k"]))] + [f"{r[m]:.3f}" for m in METRICS]) + " |")
    return "\n".join(lines) + "\n"


def plot(rows: Any, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, m in zip(axes, ("psnr_masked", "ssim_masked", "lpips_masked"), strict=True):
        for name, g in rows.groupby("video"):
            ax.plot(g["k"], g[m], marker="o", alpha=0.5, label=name)
        mean = rows.groupby("k")[m].mean()
        ax.plot(mean.index, mean.values, marker="s", color="k", linewidth=2.5, label="mean")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("k (anchor matches per token)")
        ax.set_title(m.replace("_", " (") + ")")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def grid(video: Any, outputs: dict[int, Any], path: Path) -> None:
    """The non-anchor frame farthest from the anchor: truth, original, then the output at every k."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = 0 if video.anchor > video.frames - 1 - video.anchor else video.frames - 1
    panels = [("ground truth", video.edited[t]), ("original", video.original[t])]
    panels += [(f"k={k}", out[t]) for k, out in outputs.items()]
    fig, axes = plt.subplots(1, len(panels), figsize=(2.2 * len(panels), 2.5))
    for ax, (title, img) in zip(axes, panels, strict=True):
        ax.imshow(img)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.suptitle(f"{video.name}, frame {t} (anchor {video.anchor})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from z2h.eval.data import load_video, select_videos
    from z2h.eval.metrics import frame_metrics
    from z2h.io import atomic_write_bytes, prepare_out, write_json
    from z2h.progress import Cancelled, Reporter

    reporter = Reporter(args.progress)
    reporter.install_signal_handlers()
    out = Path(args.out)
    try:
        ks = parse_ks(args.ks)
        prepare_out(out, args.overwrite)
        names = select_videos(args.bench, args.videos.split(",") if args.videos else None)
        rows = []
        t0 = time.perf_counter()
        for name in names:
            video = load_video(args.bench, name, with_flow=False)
            outputs = sweep_video(video, ks, args, reporter.stage("zero", f"{name}: Zero-Stage at every k"))
            keep = [t for t in range(video.frames) if t != video.anchor]
            for k, frames in outputs.items():
                df = frame_metrics(frames[keep], video.edited[keep], video.masks[keep],
                                   lpips_net=None if args.lpips == "none" else args.lpips, label=name)
                rows.append({"video": name, "k": k, **{m: float(df[m].mean()) for m in METRICS}})
            out.mkdir(parents=True, exist_ok=True)
            grid(video, outputs, out / f"k_grid_{name}.png")
        rows = pd.DataFrame(rows)
        atomic_write_bytes(out / "k_sweep.csv", rows.to_csv(index=False).encode())
        note = (f"Mean over {len(names)} videos, anchor frames excluded; engine {args.engine}, τ={args.tau}; "
                f"metrics at native resolution, LPIPS {args.lpips}.\n\n")
        md = "# Zero-Stage quality vs k\n\n" + note + table(rows)
        atomic_write_bytes(out / "k_sweep.md", md.encode())
        plot(rows, out / "k_sweep.png")
        record = {"experiment": "k-sweep", "created": datetime.now(UTC).isoformat(timespec="seconds"),
                  "bench": str(args.bench), "videos": names, "ks": [str(k) for k in ks],
                  "engine": args.engine, "work_size": args.work_size, "tau": args.tau,
                  "seconds": round(time.perf_counter() - t0, 1)}
        write_json(out / "run.json", record)
    except Cancelled:
        reporter.emit("cancelled", out=str(out), partial=True, message="k-sweep cancelled")
        return 130
    except (ValueError, FileNotFoundError) as e:
        if reporter.mode == "json":
            reporter.emit("error", message=str(e))
        else:
            print(f"z2h experiment k-sweep: error: {e}", file=sys.stderr)
        return 1
    reporter.emit("done", out=str(out), partial=False, message=f"k-sweep written to {out}")
    return 0
