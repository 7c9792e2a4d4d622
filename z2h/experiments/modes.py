"""``z2h experiment modes BENCH``: Hero-Stage Mode 1 (Zero-Stage output only) vs Mode 2 (+ original frame).

The paper's claim: on moving / complex backgrounds the original frame (condition 2) lets the Hero-Stage
keep what the Zero-Stage got wrong. Per video the Zero-Stage runs once and both modes restore the same
frames. Writes ``modes.csv`` (per video and variant), ``modes.md`` (mean over videos, masked + full
metrics, anchor excluded), ``modes.png`` and ``run.json``. The Zero-Stage alone is listed for reference.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

TAGS = ("moving_background", "textured_background", "camera_orbit")
METRICS = ("psnr_masked", "ssim_masked", "lpips_masked", "psnr", "ssim", "lpips")
# Training statistics kept per row, so each variant shows it did what its label says (z2h.hero_stage).
TRAIN_COLUMNS = ("mode", "pseudo_pairs", "pairs", "steps", "budget_hit")


def train_columns(stats: dict[str, Any]) -> dict[str, Any]:
    """The TRAIN_COLUMNS of HeroStage.fit's statistics."""
    return {k: stats.get(k) for k in TRAIN_COLUMNS}


def add_common(p: argparse.ArgumentParser) -> None:
    """Arguments shared by the Hero-Stage experiments."""
    p.add_argument("bench", help="benchmark folder (format v1, docs/architecture.md)")
    p.add_argument("--out", required=True, help="output folder for the table, plot and run.json")
    p.add_argument("--videos", help="comma-separated video names (default: see the description)")
    p.add_argument("--steps", type=int, help="Hero-Stage training steps (default: HeroConfig's)")
    p.add_argument("--time-budget", type=float, help="seconds per training run (0 = no limit)")
    p.add_argument("--pseudo-pairs", type=int, help="warped anchor copies for training (default 8)")
    p.add_argument("--work-size", type=int, default=256, help="offline Zero-Stage matching size")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1; 0 = all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--progress", choices=("bar", "json", "none"), default="bar")
    p.add_argument("--overwrite", action="store_true", help="replace the results in a non-empty --out")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_common(p)
    p.add_argument("--all-videos", action="store_true",
                   help=f"every video, not only those tagged {', '.join(TAGS)}")
    p.add_argument("--lpips", choices=("alex", "vgg", "none"), default="alex", help="LPIPS network or none")


def hero_config(args: argparse.Namespace, **over: Any):
    """HeroConfig (offline engine) from the experiment's arguments."""
    from z2h.hero_stage import HeroConfig

    given = {"steps": args.steps, "pseudo_pairs": args.pseudo_pairs}
    kw: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    if args.time_budget is not None:
        kw["time_budget_s"] = args.time_budget or None
    return HeroConfig(seed=args.seed, threads=args.threads, **{**kw, **over})


def pick_videos(bench: str, names: str | None, tags: tuple[str, ...] | None) -> tuple[list[str], str]:
    """(video names, a note on how they were chosen)."""
    from z2h.eval.data import load_video, select_videos

    if names:
        return select_videos(bench, names.split(",")), "videos given with --videos"
    everything = select_videos(bench)
    if not tags:
        return everything, "every video"
    chosen = [n for n in everything
              if set(load_video(bench, n, with_flow=False).meta.get("tags", [])) & set(tags)]
    if not chosen:
        return everything, f"every video (none is tagged {', '.join(tags)})"
    return chosen, f"videos tagged {', '.join(tags)}"


def scores(pred: Any, video: Any, frames: list[int], lpips: str | None) -> dict[str, float]:
    """Mean metrics of ``pred`` over ``frames`` (z2h.eval.metrics.frame_metrics)."""
    from z2h.eval.metrics import frame_metrics

    df = frame_metrics(pred[frames], video.edited[frames], video.masks[frames], lpips_net=lpips,
                       label=video.name)
    return {m: float(df[m].mean()) for m in METRICS}


def markdown(rows: Any, by: str, metrics: tuple[str, ...]) -> str:
    """Mean over videos per ``by`` value as a Markdown table (order of first appearance)."""
    mean = rows.groupby(by, sort=False)[list(metrics)].mean()
    lines = ["| " + " | ".join([by, *metrics]) + " |", "|" + "---|" * (len(metrics) + 1)]
    for k, r in mean.iterrows():
        lines.append("| " + " | ".join([str(k)] + [f"{r[m]:.3f}" for m in metrics]) + " |")
    return "\n".join(lines) + "\n"


def bar_plot(rows: Any, by: str, metrics: tuple[str, ...], path: Path, title: str) -> None:
    """Grouped bars: one group per video (+ mean), one bar per ``by`` value, a panel per metric."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    variants = list(dict.fromkeys(rows[by]))
    videos = [*dict.fromkeys(rows["video"]), "mean"]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.8), squeeze=False)
    x = np.arange(len(videos))
    width = 0.8 / len(variants)
    for ax, m in zip(axes[0], metrics, strict=True):
        for i, v in enumerate(variants):
            g = rows[rows[by] == v].set_index("video")[m]
            vals = [g.get(name, np.nan) for name in videos[:-1]] + [g.mean()]
            ax.bar(x + (i - (len(variants) - 1) / 2) * width, vals, width, label=str(v))
        ax.set_xticks(x, videos, rotation=30, ha="right", fontsize=8)
        ax.set_title(m)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].legend(fontsize=8, loc="lower right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def experiment_main(name: str, args: argparse.Namespace, body) -> int:
    """Shared run(): --out check, signals, errors and exit codes; ``body(reporter, out) -> record``."""
    from z2h.io import prepare_out, write_json
    from z2h.progress import Cancelled, Reporter

    reporter = Reporter(args.progress)
    reporter.install_signal_handlers()
    out = Path(args.out)
    start = time.perf_counter()
    try:
        prepare_out(out, args.overwrite)
        out.mkdir(parents=True, exist_ok=True)
        from z2h.threads import torch_threads

        with torch_threads(args.threads):
            record = body(reporter, out)
        record.update(experiment=name, created=datetime.now(UTC).isoformat(timespec="seconds"),
                      bench=str(args.bench), seconds=round(time.perf_counter() - start, 1))
        write_json(out / "run.json", record)
    except (Cancelled, KeyboardInterrupt):
        reporter.emit("cancelled", out=str(out), partial=True)
        print(f"z2h experiment {name}: cancelled", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, RuntimeError, OSError) as e:
        reporter.emit("error", message=f"experiment {name}: {e}")  # one line on stderr in every mode
        return 1
    reporter.emit("done", out=str(out), partial=False)
    logging.getLogger("z2h").info("z2h experiment %s: written to %s", name, out)
    return 0


def run(args: argparse.Namespace) -> int:
    def body(reporter, out: Path) -> dict[str, Any]:
        import pandas as pd

        from z2h.eval.data import load_video
        from z2h.hero_stage import HeroStage
        from z2h.io import atomic_write_bytes
        from z2h.zero_stage import ZeroStage, ZeroStageConfig

        names, how = pick_videos(args.bench, args.videos, None if args.all_videos else TAGS)
        lpips = None if args.lpips == "none" else args.lpips
        rows, train = [], {}
        for name in names:
            video = load_video(args.bench, name, with_flow=False)
            keep = [t for t in range(video.frames) if t != video.anchor]
            zero_stage = ZeroStage(ZeroStageConfig(work_size=args.work_size, seed=args.seed))
            zero = zero_stage(video.original, video.anchor, video.reference,
                              reporter.stage("zero", f"{name}: Zero-Stage"))
            rows.append({"video": name, "variant": "Zero-Stage only", **scores(zero, video, keep, lpips)})
            for mode in (1, 2):
                hero = HeroStage(hero_config(args, mode=mode))
                stats = hero.fit(zero[video.anchor], video.original[video.anchor], video.reference,
                                 progress=reporter.stage("hero-train", f"{name}: Mode {mode} training"),
                                 zero_stage=zero_stage, pairs_progress=reporter.stage("hero-pairs", name))
                pred = hero.restore(zero, video.original, reporter.stage("hero", f"{name}: Mode {mode}"))
                rows.append({"video": name, "variant": f"Mode {mode}", **scores(pred, video, keep, lpips),
                             **train_columns(stats)})
                train.setdefault(name, {})[f"Mode {mode}"] = stats
        rows = pd.DataFrame(rows)
        atomic_write_bytes(out / "modes.csv", rows.to_csv(index=False).encode())
        shown = tuple(m for m in METRICS if lpips or "lpips" not in m)
        note = (f"Mean over {len(names)} videos ({how}), anchor frames excluded; offline engine; "
                f"LPIPS {args.lpips}. Mode 1: condition 1 (Zero-Stage output) only; Mode 2: + the original "
                "frame.\n\n")
        atomic_write_bytes(out / "modes.md", ("# Hero-Stage Mode 1 vs Mode 2\n\n" + note
                                              + markdown(rows, "variant", shown)).encode())
        bar_plot(rows, "variant", ("psnr_masked", "psnr"), out / "modes.png", "Hero-Stage Mode 1 vs Mode 2")
        return {"videos": names, "selection": how, "hero": hero_config(args).settings(),
                "work_size": args.work_size, "train": train}

    return experiment_main("modes", args, body)
