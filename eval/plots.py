"""`z2h eval plot`: PNG plots from RESULTS (matplotlib, no display needed).

- ``<metric>_vs_distance.png``: mean over videos per frame distance from the anchor, one line per method;
- ``<metric>_by_motion.png``: methods x motion bins, annotated heat map (reads well with 20 methods);
- ``strip_<video>.png``: original, ground truth and each method for a few frames.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from z2h.eval.report import METRICS, MOTION_LABELS, load_results, motion_bin


def _save(fig: Any, path: Path) -> Path:
    from z2h.io import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())
    return path


def _label(metric: str) -> str:
    m = next((m for m in METRICS if m.column == metric), None)
    return metric if m is None else f"{m.label} {'↑' if m.higher_is_better else '↓'}"


def _style(i: int, method: str) -> dict[str, Any]:
    """tab20 colours (neighbouring methods share a hue); occlusion-checked variants dashed."""
    from matplotlib import colormaps

    return {"color": colormaps["tab20"](i % 20), "linestyle": "--" if method.endswith("-fb") else "-",
            "marker": "os^vD"[i % 5], "markersize": 3}


def plot_vs_distance(df: Any, metric: str, path: Path) -> Path:
    """Metric against frame distance from the anchor (anchor excluded), one line per method."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    targets = df[~df["anchor"].astype(bool)]
    per_video = targets.groupby(["method", "distance", "video"])[metric].mean()
    curves = per_video.groupby(level=["method", "distance"]).mean()
    fig = Figure(figsize=(8, 4.5))
    ax = fig.add_subplot()
    for i, method in enumerate(sorted(curves.index.get_level_values(0).unique())):
        c = curves.loc[method]
        ax.plot(c.index, c.values, label=method, **_style(i, method))
    ax.set(xlabel="frames from the anchor", ylabel=_label(metric),
           title=f"{_label(metric)} vs distance from the anchor")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return _save(fig, path)


def plot_by_motion(df: Any, metric: str, path: Path) -> Path:
    """Methods x motion bins heat map of the metric (mean over videos of per-video means)."""
    from matplotlib.figure import Figure

    targets = df[~df["anchor"].astype(bool)].copy()
    targets["motion"] = motion_bin(targets)
    per_video = targets.groupby(["method", "motion", "video"], observed=True)[metric].mean()
    grid = per_video.groupby(level=["method", "motion"], observed=True).mean().unstack("motion")
    grid = grid[[c for c in (*MOTION_LABELS, "n/a") if c in grid.columns]]
    fig = Figure(figsize=(1.6 * grid.shape[1] + 3, 0.32 * len(grid) + 1.4))
    ax = fig.add_subplot()
    higher = next((m.higher_is_better for m in METRICS if m.column == metric), True)
    image = ax.imshow(grid.values, aspect="auto", cmap="viridis" if higher else "viridis_r")
    mid = (np.nanmin(grid.values) + np.nanmax(grid.values)) / 2
    for (r, c), v in np.ndenumerate(grid.values):
        if v == v:  # dark cells get white text
            dark = v < mid if higher else v > mid
            ax.text(c, r, f"{v:.3g}", ha="center", va="center", fontsize=7, color="w" if dark else "k")
    ax.set_xticks(range(grid.shape[1]), [str(c) for c in grid.columns])
    ax.set_yticks(range(len(grid)), list(grid.index), fontsize=7)
    ax.set(xlabel="object motion from the anchor (bins: table notes)", title=f"{_label(metric)} by motion")
    fig.colorbar(image, ax=ax, fraction=0.04)
    return _save(fig, path)


def plot_strip(bench: Path, results: Path, video: str, methods: list[str], frames: list[int] | None,
               path: Path) -> Path:
    """Rows: original, ground truth, each method; columns: frames (the anchor marked)."""
    from matplotlib.figure import Figure

    from z2h.eval.data import load_video
    from z2h.io import read_image

    v = load_video(bench, video, with_flow=False)
    if frames is None:
        frames = sorted({v.anchor, *np.linspace(0, v.frames - 1, 4).round().astype(int).tolist()})
    bad = [f for f in frames if not 0 <= f < v.frames]
    if bad:
        raise ValueError(f"frames {bad} outside 0..{v.frames - 1} of video {video!r}")
    rows = [("original", lambda t: v.original[t]), ("ground truth", lambda t: v.edited[t])]
    for m in methods:
        if (results / m / video / "0000.png").is_file():
            rows.append((m, lambda t, m=m: read_image(results / m / video / f"{t:04d}.png")))
    h, w = v.original.shape[1:3]
    scale = 1.6 / max(h, w) * 1.0
    fig = Figure(figsize=(len(frames) * w * scale + 1.5, len(rows) * h * scale + 0.5))
    axes = fig.subplots(len(rows), len(frames), squeeze=False)
    for r, (label, get) in enumerate(rows):
        for c, t in enumerate(frames):
            ax = axes[r][c]
            ax.imshow(get(t))
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"frame {t}" + (" (anchor)" if t == v.anchor else ""), fontsize=8)
            if c == 0:
                ax.set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center")
    fig.subplots_adjust(wspace=0.03, hspace=0.05)
    return _save(fig, path)


def plot_all(results: str | Path, out: str | Path | None = None, metric: str = "psnr_masked",
             methods: list[str] | None = None, frames: list[int] | None = None) -> list[Path]:
    """Every plot for RESULTS; returns the PNG paths."""
    results = Path(results)
    df, record = load_results(results)
    if metric not in df or df[metric].isna().all():
        available = [m.column for m in METRICS if m.column in df and df[m.column].notna().any()]
        raise ValueError(f"no values for {metric!r} in {results / 'metrics.csv'}; available: {available}")
    if methods:
        unknown = sorted(set(methods) - set(df["method"]))
        if unknown:
            raise ValueError(f"methods not in {results / 'metrics.csv'}: {', '.join(unknown)}")
        df = df[df["method"].isin(methods)]
    out = Path(out) if out else results / "plots"
    paths = [plot_vs_distance(df, metric, out / f"{metric}_vs_distance.png")]
    if "displacement_px" in df and df["displacement_px"].notna().any():
        paths.append(plot_by_motion(df, metric, out / f"{metric}_by_motion.png"))
    bench = Path(record.get("bench", ""))
    if (bench / "manifest.json").is_file():
        shown = sorted(set(df["method"]))
        for video in sorted(set(df["video"])):
            paths.append(plot_strip(bench, results, video, shown, frames, out / f"strip_{video}.png"))
    return paths
