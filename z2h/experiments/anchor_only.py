"""``z2h experiment anchor-only BENCH``: does the Hero-Stage learn to restore on the anchor itself?

Per video: anchor PSNR of the Zero-Stage output (before) and of the Hero-Stage output (after), for the
paper's single training triplet and for the triplet + pseudo pairs (warped anchor copies, this
project's addition), and the same variants' scores on every OTHER frame, which is what matters: a
restorer that only learned the anchor's own (near-perfect) Zero-Stage output teaches nothing.
Writes ``anchor_only.csv``, ``anchor_only.md``, ``anchor_only.png`` and ``run.json``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from z2h.experiments.modes import (
    add_common,
    bar_plot,
    experiment_main,
    hero_config,
    markdown,
    pick_videos,
    train_columns,
)

COLUMNS = ("anchor_psnr", "anchor_psnr_masked", "others_psnr", "others_psnr_masked")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_common(p)


def psnr_pair(pred: Any, video: Any, frames: list[int]) -> tuple[float, float]:
    """(full, masked) PSNR means over ``frames`` (z2h.eval.metrics, no LPIPS)."""
    from z2h.eval.metrics import frame_metrics

    df = frame_metrics(pred[frames], video.edited[frames], video.masks[frames], lpips_net=None,
                       label=video.name)
    return float(df["psnr"].mean()), float(df["psnr_masked"].mean())


def score_row(variant: str, pred: Any, video: Any) -> dict[str, Any]:
    """One table row: PSNR on the anchor itself and on every other frame."""
    others = [t for t in range(video.frames) if t != video.anchor]
    anchor_full, anchor_masked = psnr_pair(pred, video, [video.anchor])
    full, masked = psnr_pair(pred, video, others) if others else (float("nan"),) * 2
    return {"video": video.name, "variant": variant, "anchor_psnr": anchor_full,
            "anchor_psnr_masked": anchor_masked, "others_psnr": full, "others_psnr_masked": masked}


def run(args: argparse.Namespace) -> int:
    def body(reporter, out: Path) -> dict[str, Any]:
        import pandas as pd

        from z2h.eval.data import load_video
        from z2h.hero_stage import HeroStage
        from z2h.io import atomic_write_bytes
        from z2h.zero_stage import ZeroStage, ZeroStageConfig

        names, how = pick_videos(args.bench, args.videos, None)
        pairs = hero_config(args).pseudo_pairs or 8
        variants = {"paper triplet": 0, f"triplet + {pairs} pseudo pairs": pairs}
        rows, train = [], {}
        for name in names:
            video = load_video(args.bench, name, with_flow=False)
            a = video.anchor
            zero_stage = ZeroStage(ZeroStageConfig(work_size=args.work_size, seed=args.seed))
            zero = zero_stage(video.original, a, video.reference,
                              reporter.stage("zero", f"{name}: Zero-Stage"))
            rows.append(score_row("Zero-Stage (before)", zero, video))
            for variant, count in variants.items():
                hero = HeroStage(hero_config(args, pseudo_pairs=count))
                stats = hero.fit(zero[a], video.original[a], video.reference,
                                 progress=reporter.stage("hero-train", f"{name}: {variant}"),
                                 zero_stage=zero_stage, pairs_progress=reporter.stage("hero-pairs", name))
                pred = hero.restore(zero, video.original, reporter.stage("hero", name))
                rows.append({**score_row(f"Hero: {variant}", pred, video), **train_columns(stats)})
                train.setdefault(name, {})[variant] = stats
        rows = pd.DataFrame(rows)
        atomic_write_bytes(out / "anchor_only.csv", rows.to_csv(index=False).encode())
        note = (f"Mean over {len(names)} videos ({how}); offline engine. 'anchor': the anchor frame itself "
                "(the training frame); 'others': every other frame. Pseudo pairs go beyond the paper.\n\n")
        atomic_write_bytes(out / "anchor_only.md", ("# Anchor-only Hero-Stage\n\n" + note
                                                    + markdown(rows, "variant", COLUMNS)).encode())
        bar_plot(rows, "variant", ("anchor_psnr", "others_psnr_masked"), out / "anchor_only.png",
                 "Hero-Stage on the anchor (before/after) and on the other frames")
        return {"videos": names, "variants": variants, "hero": hero_config(args).settings(),
                "work_size": args.work_size, "train": train}

    return experiment_main("anchor-only", args, body)
