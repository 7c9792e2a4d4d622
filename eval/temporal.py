"""Temporal consistency along the benchmark's TRUE motion, and flow accuracy of the flow baselines.

Warping error (Lai et al. 2018): frame t of a video is warped to t+1 along the true motion and compared
with frame t+1, over pixels that the true flow's forward-backward check marks as visible in both frames;
mean squared error of RGB in [0, 1]. A method's warping error is read next to the ground-truth edited
video's own (renders are noisy, so zero is not reachable).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from z2h.eval.baselines.flow import fb_consistent, warp
from z2h.eval.data import Flow


def visible_pairs(flow: Flow) -> np.ndarray:
    """(T-1, H, W) bool: pixels of frame t+1 whose true match in frame t is visible (fb consistent)."""
    return np.stack([fb_consistent(b, f) for f, b in zip(flow.forward, flow.backward, strict=True)])


def warp_error(frames: np.ndarray, flow: Flow, visible: np.ndarray | None = None) -> np.ndarray:
    """Per consecutive pair (T-1,): MSE between frame t+1 and frame t warped along the true motion."""
    visible = visible_pairs(flow) if visible is None else visible
    out = np.full(len(frames) - 1, np.nan)
    for t in range(len(frames) - 1):
        warped = warp(frames[t].astype(np.float32) / 255, flow.backward[t])
        diff = np.sum((warped - frames[t + 1].astype(np.float32) / 255) ** 2, -1) / 3
        if visible[t].any():
            out[t] = float(diff[visible[t]].mean())
    return out


def flow_epe(estimate: Callable[[np.ndarray, np.ndarray], np.ndarray], frames: np.ndarray, flow: Flow,
             visible: np.ndarray | None = None) -> np.ndarray:
    """Per consecutive pair (T-1,): end-point error (px) of ``estimate(frame t+1, frame t)`` vs the truth."""
    visible = visible_pairs(flow) if visible is None else visible
    out = np.full(len(frames) - 1, np.nan)
    for t in range(len(frames) - 1):
        est = estimate(frames[t + 1], frames[t])
        epe = np.linalg.norm(est - flow.backward[t], axis=-1)
        if visible[t].any():
            out[t] = float(epe[visible[t]].mean())
    return out
