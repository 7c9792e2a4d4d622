"""`z2h eval table`: paper-style tables from RESULTS/metrics.csv and RESULTS/run.json.

Averaging: frames -> per-video mean (anchor frame excluded) -> mean (± std) over videos. Best values
(at the displayed precision) are bold; every table carries notes naming the protocol, the engine of the
z2h methods, each baseline's source, the bins, and any method that failed on some videos.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Motion bins: object displacement from the anchor as a fraction of the image width.
MOTION_BINS = (0.03, 0.10)
MOTION_LABELS = ("small", "medium", "large")
DISTANCE_BINS = ((1, 2), (3, 5), (6, 10), (11, None))
PSNR_CAP = 100.0  # identical frames have infinite PSNR; counted as this so that means stay finite


@dataclass(frozen=True)
class Metric:
    column: str
    label: str
    higher_is_better: bool
    digits: int
    scale: float = 1.0


METRICS = (
    Metric("psnr", "PSNR", True, 2),
    Metric("ssim", "SSIM", True, 4),
    Metric("lpips", "LPIPS", False, 4),
    Metric("psnr_masked", "PSNR-m", True, 2),
    Metric("ssim_masked", "SSIM-m", True, 4),
    Metric("lpips_masked", "LPIPS-m", False, 4),
    Metric("warp_error", "Ewarp x1e3", False, 3, 1e3),
    Metric("flow_epe", "EPE px", False, 3),
    Metric("seconds_per_frame", "s/frame", False, 3),  # only with timing=True (run.json's wall time)
)
TRUTH = "ground truth"  # the reference row: the ground-truth edited video's own Ewarp (never bold)


def load_results(results: str | Path) -> tuple[Any, dict[str, Any]]:
    """metrics.csv as a DataFrame and run.json as a dict."""
    import pandas as pd

    results = Path(results)
    for name in ("metrics.csv", "run.json"):
        if not (results / name).is_file():
            raise FileNotFoundError(f"{results / name} not found: run `z2h eval run BENCH --out {results}`")
    record = json.loads((results / "run.json").read_text())
    try:
        df = pd.read_csv(results / "metrics.csv")
    except pd.errors.EmptyDataError:
        df = pd.DataFrame(columns=["method", "video", "frame", "anchor"])
    for col in ("psnr", "psnr_masked"):
        if col in df and (df[col] > PSNR_CAP).any():
            df[col] = df[col].clip(upper=PSNR_CAP)
            record["psnr_capped"] = True
    return df, record


def motion_bin(df: Any) -> Any:
    """'small'/'medium'/'large' per row from displacement_px relative to the image width."""
    import numpy as np
    import pandas as pd

    rel = df["displacement_px"] / df["width"]
    small, large = MOTION_BINS
    labels = np.select([rel < small, rel < large, rel >= large], MOTION_LABELS, "n/a")
    return pd.Series(pd.Categorical(labels, [*MOTION_LABELS, "n/a"]), index=df.index)


def distance_bin(df: Any) -> Any:
    import pandas as pd

    labels = [f"{lo}-{hi}" if hi else f"{lo}+" for lo, hi in DISTANCE_BINS]
    edges = [lo - 0.5 for lo, _ in DISTANCE_BINS] + [float("inf")]
    return pd.cut(df["distance"], edges, labels=labels)


def summarize(df: Any, by: str | None = None, per_video: bool = False, anchor: bool = False) -> Any:
    """Rows: [group,] [video,] method; columns: (metric, 'mean'|'std') over videos of per-video means."""
    import pandas as pd

    df = df[df["anchor"].astype(bool) == anchor].copy()
    metrics = [m.column for m in METRICS if m.column in df and df[m.column].notna().any()]
    keys = ["method"]
    if by == "motion":
        df["group"] = motion_bin(df)
    elif by == "distance":
        df["group"] = distance_bin(df)
    elif by == "tag":
        df["group"] = df["tags"].fillna("").astype(str).str.split(";")
        df = df.explode("group")
        df = df[df["group"] != ""]
    elif by is not None:
        raise ValueError(f"--by must be motion, distance or tag, not {by!r}")
    if by:
        keys = ["group", *keys]
    per_video_means = df.groupby([*keys, "video"], observed=True)[metrics].mean()
    if per_video:
        out = per_video_means.reorder_levels([*keys[:-1], "video", "method"]).sort_index()
        return pd.concat({"mean": out, "std": out * float("nan")}, axis=1).swaplevel(0, 1, axis=1)
    grouped = per_video_means.groupby(level=keys, observed=True)
    return pd.concat({"mean": grouped.mean(), "std": grouped.std()}, axis=1).swaplevel(0, 1, axis=1)


def _best(values: Any, metric: Metric) -> Any:
    """Boolean mask of the best values at display precision (ties all count)."""
    rounded = (values * metric.scale).round(metric.digits)
    target = rounded.max() if metric.higher_is_better else rounded.min()
    return rounded == target


def best_flags(means: Any, metric: Metric) -> Any:
    """Best per group: every index level but the last (method) defines a group."""
    groups = list(means.index.names)[:-1]
    if not groups:
        return _best(means, metric).fillna(False)
    return means.groupby(level=groups, observed=True).transform(lambda s: _best(s, metric)).fillna(False)


def add_timing(df: Any, record: dict[str, Any]) -> Any:
    """A seconds_per_frame column from run.json (per method x video; NaN where none was recorded)."""
    methods = record.get("methods", {})
    times = [((methods.get(m) or {}).get("videos", {}).get(v) or {}).get("seconds_per_frame")
             for m, v in zip(df["method"], df["video"], strict=True)]
    return df.assign(seconds_per_frame=[float("nan") if t is None else t for t in times])


def add_truth_rows(df: Any) -> Any:
    """Rows of a pseudo-method TRUTH whose Ewarp is the ground truth's own (its other metrics are NaN)."""
    import pandas as pd

    if "warp_error_gt" not in df or not df["warp_error_gt"].notna().any():
        return df
    truth = df.drop_duplicates(["video", "frame"]).copy()
    for m in METRICS:
        if m.column in truth:
            truth[m.column] = float("nan")
    truth["method"], truth["warp_error"] = TRUTH, truth["warp_error_gt"]
    return pd.concat([df, truth], ignore_index=True)


def _cells(summary: Any, std: bool, bold: tuple[str, str]) -> tuple[list[str], list[list[str]]]:
    """Header labels, cell texts and best flags for every row of a summary."""
    metrics = [m for m in METRICS if (m.column, "mean") in summary.columns]
    levels = list(summary.index.names)
    headers = [n.capitalize() for n in levels]
    headers += [f"{m.label} {'↑' if m.higher_is_better else '↓'}" for m in metrics]
    is_truth = summary.index.get_level_values(-1) == TRUTH  # a reference, not a contender
    best = {m.column: best_flags(summary[(m.column, "mean")].mask(is_truth), m).to_numpy() for m in metrics}
    rows = []
    for i, (idx, row) in enumerate(summary.iterrows()):
        idx = idx if isinstance(idx, tuple) else (idx,)
        cells = [str(v) for v in idx]
        for m in metrics:
            mean, sd = row[(m.column, "mean")], row[(m.column, "std")]
            if mean != mean:
                cells.append("–")
                continue
            text = f"{mean * m.scale:.{m.digits}f}"
            if std and sd == sd:
                text += f" ± {sd * m.scale:.{m.digits}f}"
            cells.append(f"{bold[0]}{text}{bold[1]}" if best[m.column][i] else text)
        rows.append(cells)
    return headers, rows


CUT_SHORT = " †"  # appended to a method whose training a time budget cut short on some video


def cut_short(record: dict[str, Any]) -> dict[str, list[str]]:
    """Method -> videos on which a time budget cut its training short (run.json's stats.train)."""
    out: dict[str, list[str]] = {}
    for name, entry in record.get("methods", {}).items():
        hit = sorted(v for v, info in entry.get("videos", {}).items()
                     if ((info.get("stats") or {}).get("train") or {}).get("budget_hit"))
        if hit:
            out[name] = hit
    return out


def notes(df: Any, record: dict[str, Any], by: str | None) -> list[str]:
    """Protocol, engines, sources, bins and failures, one sentence each."""
    from z2h.eval.metrics import protocol_note

    targets = df[~df["anchor"].astype(bool)] if len(df) else df
    protocol = protocol_note(record.get("protocol", "default"), record.get("lpips"))
    out = [protocol[:1].upper() + protocol[1:] + ".",
           f"Mean over {df['video'].nunique() if len(df) else 0} videos of per-video means over "
           f"{len(targets)} non-anchor method-frames; the anchor frame is excluded (reported separately)."]
    if record.get("psnr_capped"):
        out.append(f"PSNR of frames equal to the ground truth (infinite) is counted as {PSNR_CAP:.0f} dB.")
    methods = record.get("methods", {})
    shown = sorted(set(df["method"])) if len(df) else []
    engines = [f"{n}: {methods[n]['engine']}" for n in shown if methods.get(n, {}).get("engine")]
    if engines:
        out.append("Engine: " + "; ".join(engines) + ".")
    for n in shown:
        if methods.get(n, {}).get("source"):
            out.append(f"{n}: {methods[n]['source']}.")
    if "warp_error_gt" in df and df["warp_error_gt"].notna().any():
        gt = targets.groupby("video")["warp_error_gt"].mean().mean() * 1e3
        out.append(f"Ewarp: MSE (RGB in [0,1], x1e3) between frame t+1 and frame t warped along the TRUE "
                   f"motion, visible pixels only; the ground-truth edited video's own Ewarp is {gt:.3f}.")
    if "flow_epe" in df and df["flow_epe"].notna().any():
        out.append("EPE: end-point error (px) of a flow baseline's estimator on consecutive frames vs the "
                   "true motion (visible pixels); the same for every variant of one estimator.")
    if by == "motion":
        small, large = MOTION_BINS
        out.append(f"Motion bins (object displacement from the anchor / image width): small < {small:.0%}, "
                   f"medium {small:.0%}-{large:.0%}, large >= {large:.0%}.")
    if by == "distance":
        out.append("Distance bins: frames from the anchor, "
                   + ", ".join(f"{lo}-{hi}" if hi else f"{lo}+" for lo, hi in DISTANCE_BINS) + ".")
    if by == "tag":
        out.append("Tags: a video counts in every tag it carries.")
    if len(df):  # a method scored on fewer videos than the table: its means are over other videos
        covered = df.groupby("method")["video"].nunique()
        total = df["video"].nunique()
        for n, k in covered[covered < total].items():
            out.append(f"{n}: scored on {k} of the {total} videos only; its means are not comparable.")
    for n, videos in sorted(cut_short(record).items()):
        if n in shown:
            out.append(f"{n}{CUT_SHORT.strip()}: a time budget cut its training short on {', '.join(videos)} "
                       "(fewer steps than set; the result depends on machine load).")
    for n, entry in sorted(methods.items()):
        failed = sorted(v for v, info in entry.get("videos", {}).items() if info.get("status") == "error")
        if failed:
            first = entry["videos"][failed[0]].get("error", "")
            where = "every video (not in the table)" if n not in shown else \
                f"{', '.join(failed)} (its means cover the other videos only)"
            out.append(f"{n} FAILED on {where}: {first}.")
    return out


def _markdown(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(["---"] * len(headers)) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def _latex_escape(text: str) -> str:
    for a, b in (("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#")):
        text = text.replace(a, b)
    return text.replace("±", r"$\pm$").replace("↑", r"$\uparrow$").replace("↓", r"$\downarrow$")


def _latex(headers: list[str], rows: list[list[str]]) -> str:
    numeric = sum(h[-1] in "↑↓" for h in headers)
    spec = "l" * (len(headers) - numeric) + "r" * numeric
    body = [r"\begin{tabular}{" + spec + "}", r"\toprule"]
    body += [" & ".join(_latex_escape(c) for c in r) + r" \\" for r in [headers, *rows]]
    body.insert(3, r"\midrule")
    return "\n".join(body + [r"\bottomrule", r"\end{tabular}"])


def _prepare(results: str | Path, by: str | None, methods: list[str] | None, timing: bool,
             truth_row: bool) -> tuple[Any, dict[str, Any], list[str]]:
    """Scores of the chosen methods, with timing and the truth rows if asked, and the table's notes."""
    df, record = load_results(results)
    if methods is not None:
        unknown = sorted(set(methods) - set(df["method"]))
        if unknown:
            raise ValueError(f"{Path(results) / 'metrics.csv'} has no scores of {', '.join(unknown)}")
        df = df[df["method"].isin(methods)]
    if not len(df):
        raise ValueError(f"{Path(results) / 'metrics.csv'} holds no scores (see run.json for errors)")
    note_lines = notes(df, record, by)
    if timing:
        df = add_timing(df, record)
        note_lines.append("s/frame: wall-clock seconds per frame of the method's run on its video, mean over "
                          "videos (run.json; machine load at the time shapes it).")
    if truth_row:
        df = add_truth_rows(df)
    flagged = cut_short(record)
    if flagged:
        df = df.assign(method=[m + CUT_SHORT if m in flagged else m for m in df["method"]])
    return df, record, note_lines


def markdown_rows(results: str | Path, methods: list[str] | None = None, by: str | None = None,
                  timing: bool = False, truth_row: bool = True) -> str:
    """Only the Markdown table (no notes), rows in ``methods`` order: what docs/README embed."""
    df, _, _ = _prepare(results, by, methods, timing, truth_row)
    headers, rows = _cells(_ordered(summarize(df, by=by), methods), False, ("**", "**"))
    return _markdown(headers, rows)


def _ordered(summary: Any, methods: list[str] | None) -> Any:
    """Rows of each group in ``methods`` order (the truth row last); as they are without ``methods``."""
    if methods is None:
        return summary
    rank = {m: i for i, m in enumerate([*methods, TRUTH])}
    names = [str(m).replace(CUT_SHORT, "") for m in summary.index.get_level_values(-1)]
    groups = [tuple(i[:-1]) if summary.index.nlevels > 1 else () for i in summary.index]
    order = sorted(range(len(summary)), key=lambda i: (groups[i], rank[names[i]]))
    return summary.iloc[order]


def table(results: str | Path, fmt: str = "md", per_video: bool = False, std: bool = False,
          by: str | None = None, methods: list[str] | None = None, timing: bool = False,
          truth_row: bool = True) -> str:
    """The table as text in ``fmt`` (md, latex or csv); ``methods`` picks rows, ``timing`` adds s/frame,
    ``truth_row`` the ground truth's own Ewarp as a reference row."""
    df, record, note_lines = _prepare(results, by, methods, timing, truth_row and fmt != "csv")
    summary = summarize(df, by=by, per_video=per_video)
    summary = summary if per_video else _ordered(summary, methods)
    if fmt == "csv":
        return _csv(summary, note_lines)
    bold = ("**", "**") if fmt == "md" else (r"\textbf{", "}")
    if fmt not in ("md", "latex"):
        raise ValueError(f"--format must be md, latex or csv, not {fmt!r}")
    headers, rows = _cells(summary, std, bold)
    anchor = summarize(df[df["method"] != TRUTH], anchor=True)
    anchor = anchor[[c for c in anchor.columns if c[0] in ("psnr", "ssim", "lpips")]]
    a_headers, a_rows = _cells(anchor, False, bold)
    if fmt == "md":
        return "\n".join([_markdown(headers, rows), "", *[f"- {n}" for n in note_lines], "",
                          "Anchor frame (reconstruction of the reference; excluded above):", "",
                          _markdown(a_headers, a_rows), ""])
    note_tex = "\n".join(r"\item " + _latex_escape(n) for n in note_lines)
    return "\n".join([r"\begin{table}[t]\centering\small", _latex(headers, rows),
                      r"\begin{itemize}\footnotesize", note_tex, r"\end{itemize}", r"\end{table}", "",
                      r"% Anchor frame (reconstruction of the reference; excluded above)",
                      _latex(a_headers, a_rows), ""])


def _csv(summary: Any, note_lines: list[str]) -> str:
    """Plain numbers (mean and std columns) plus a 'best' column naming the metrics where a row is best."""
    flat = summary.copy()
    flat.columns = [c if s == "mean" else f"{c}_std" for c, s in flat.columns]
    best = {m.column: best_flags(flat[m.column], m).to_numpy() for m in METRICS if m.column in flat}
    flat["best"] = [";".join(c for c in best if best[c][i]) for i in range(len(flat))]
    return flat.reset_index().to_csv(index=False) + "".join(f"# {n}\n" for n in note_lines)
