"""Per-frame score rows of one method on one video: everything metrics.csv holds for it.

Kept apart from the runner's bookkeeping on purpose: the eval cache keys every score on the source of
this module and of the z2h modules it imports (eval/cache.py), so changing how a score is computed
re-scores, while changing the runner's plumbing does not.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from z2h.eval.data import Video, per_frame_meta
from z2h.eval.metrics import frame_metrics
from z2h.eval.temporal import flow_epe, visible_pairs, warp_error


def truth_temporal(video: Video) -> dict[str, np.ndarray]:
    """Visibility masks of consecutive pairs and the ground truth's own warping error ({} without flow)."""
    if video.flow is None:
        return {}
    visible = visible_pairs(video.flow)
    return {"visible": visible, "gt": warp_error(video.edited, video.flow, visible)}


def estimator_epe(estimator: Any, video: Video, visible: np.ndarray) -> np.ndarray:
    """End-point error of a flow estimator on consecutive original frames against the true motion.

    ``recall`` (RAFT): a flow the method already computed for a pair is reused, not computed again."""
    return flow_epe(getattr(estimator, "recall", estimator), video.original, video.flow, visible)


def plain(value: Any) -> Any:
    """JSON-safe scalar: numpy scalars to Python, NaN to None."""
    value = value.item() if isinstance(value, np.generic) else value
    return None if isinstance(value, float) and value != value else value


def score_rows(
    name: str,
    video: Video,
    pred: np.ndarray,
    protocol: str = "default",
    lpips: str | None = "alex",
    batch_size: int = 8,
    temporal: dict[str, np.ndarray] | None = None,
    epe: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """One JSON-safe row per frame: metrics, temporal errors (pair (t-1, t) on frame t), motion, tags."""
    if len(pred) != video.frames:
        raise ValueError(f"method {name!r} has {len(pred)} frames for video {video.name!r}, "
                         f"which has {video.frames}")
    df = frame_metrics(pred, video.edited, video.masks, protocol=protocol, lpips_net=lpips,
                       batch_size=batch_size, label=f"method {name!r}, video {video.name!r}")
    if temporal:
        df["warp_error"] = np.r_[np.nan, warp_error(pred, video.flow, temporal["visible"])]
        df["warp_error_gt"] = np.r_[np.nan, temporal["gt"]]
        if epe is not None:
            df["flow_epe"] = np.r_[np.nan, epe]
    meta = per_frame_meta(video)
    w, h = video.meta.get("resolution") or [video.original.shape[2], video.original.shape[1]]
    rows = []
    for rec in df.to_dict("records"):
        t = int(rec["frame"])
        rows.append({
            "method": name, "video": video.name, **rec, "frame": t, "anchor": t == video.anchor,
            "offset": t - video.anchor, "distance": abs(t - video.anchor),
            "displacement_px": meta[t].get("displacement_px", np.nan),
            "rotation_deg": meta[t].get("rotation_deg", np.nan), "mask_area": int(video.masks[t].sum()),
            "width": w, "height": h, "tags": ";".join(video.meta.get("tags", [])),
            "edit_kind": (video.meta.get("edit") or {}).get("kind", ""),
        })
    return [{k: plain(v) for k, v in r.items()} for r in rows]
