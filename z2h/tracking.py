"""Temporal identity: which pixels of every frame belong to what the user edited in the anchor.

Appearance matching cannot tell an edited object from an unedited look-alike; motion can. The edit region
is read off the anchor (where the reference differs from the original anchor) and carried frame by frame
with optical flow (OpenCV DIS) in both directions from the anchor:

- where the flow passes a forward-backward check and the colours agree, a pixel takes the label (and the
  anchor position) of the pixel it came from;
- where it fails (disocclusion, entering the frame, fast motion), the label is filled from nearby pixels
  that passed and look alike (an edge-aware, geodesic fill, so a revealed part of an object takes that
  object's label); where no such pixel is near, the label is re-detected from ``candidates``, the
  caller's correspondence-based guess (the Zero-Stage's own answer of "this looks like the edited part").

Besides the labels, the track carries each pixel's position in the anchor along chains of consistent
flow (``coords``/``valid``), for flow-based fusion (z2h/flow_fusion.py), and, the same way as the labels,
the anchor's look-alikes (unedited pixels that look like the edit): where the caller gives them, a known
look-alike is never re-detected as the edited object.

Flow convention: ``flow[y, x] = (dx, dy)`` maps a pixel of the TARGET frame to its position in the
SOURCE frame (``target(x) ~ source(x + flow(x))``), the direction ``cv2.remap`` needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PHOTO_TOLERANCE = 16.0  # levels: above it, a pixel did not come from where the flow says (occlusion)
FILL_SIGMA = 0.1  # colour distance (RGB in 0..1) at which the edge-aware fill's weight falls to 1/e
FILL_STEPS = 16  # geodesic fill reach, in half-resolution pixels
FILL_DECAY = 0.92  # support lost per half-resolution pixel: the fill closes bands, it does not find objects
REDETECT_WIDTH = 5  # px: narrower unexplained regions are edge slivers, not a re-appearing object
FILL_SUPPORT = 0.3  # below this fill strength, the label comes from the correspondence candidates


def dis_flow(target: np.ndarray, source: np.ndarray, full_resolution: bool = False) -> np.ndarray:
    """DIS (preset MEDIUM) flow from ``target`` to ``source`` (uint8 RGB): (H, W, 2) float32.

    MEDIUM's finest scale is half resolution; ``full_resolution`` goes one scale further (about twice the
    time), for the small residual flows where the last half pixel matters.
    """
    import cv2

    gray = [cv2.cvtColor(np.ascontiguousarray(im), cv2.COLOR_RGB2GRAY) for im in (target, source)]
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    if full_resolution:
        dis.setFinestScale(0)
    return dis.calc(gray[0], gray[1], None)


def _grid(h: int, w: int) -> np.ndarray:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack([xs, ys], -1)


def remap(image: np.ndarray, positions: np.ndarray, nearest: bool = False) -> np.ndarray:
    """Sample ``image`` (H, W[, C]) float32 at ``positions`` (H', W', 2) (x, y); border samples clamp."""
    import cv2

    mode = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    return cv2.remap(np.ascontiguousarray(image, dtype=np.float32), positions[..., 0], positions[..., 1],
                     mode, borderMode=cv2.BORDER_REPLICATE)


def fb_check(flow_ts: np.ndarray, flow_st: np.ndarray, alpha: float = 0.01, beta: float = 0.5) -> np.ndarray:
    """Forward-backward check (Sundaram et al. 2010) of target->source flow against source->target.

    True where going t->s->t returns to the start and the source position lies inside the frame.
    """
    h, w = flow_ts.shape[:2]
    pos = _grid(h, w) + flow_ts
    back = remap(flow_st, pos)
    err = np.sum((flow_ts + back) ** 2, -1)
    bound = alpha * (np.sum(flow_ts**2, -1) + np.sum(back**2, -1)) + beta
    inside = (pos[..., 0] >= 0) & (pos[..., 0] <= w - 1) & (pos[..., 1] >= 0) & (pos[..., 1] <= h - 1)
    return (err < bound) & inside


def photo_check(target: np.ndarray, source: np.ndarray, positions: np.ndarray,
                tolerance: float = PHOTO_TOLERANCE) -> np.ndarray:
    """True where ``target`` looks like ``source`` around ``positions``: each channel of the target lies
    within ``tolerance`` levels of the source's 3x3 min..max range there (so sub-pixel flow errors on
    texture pass). A disoccluded pixel whose smooth flow still passes the forward-backward check lands on
    a different surface, and fails here."""
    import cv2

    src = source.astype(np.float32)
    k = np.ones((3, 3), np.uint8)
    lo, hi = remap(cv2.erode(src, k), positions), remap(cv2.dilate(src, k), positions)
    a = target.astype(np.float32)
    return np.maximum(np.maximum(lo - a, a - hi), 0).max(-1) < tolerance


def edit_region(original: np.ndarray, reference: np.ndarray, threshold: float = 10.0) -> np.ndarray:
    """Where the reference differs from the original anchor: a (H, W) float32 mask in {0, 1}.

    The per-pixel difference (max over channels, after a 3x3 blur against render/JPEG noise) is
    thresholded in 0..255 units, then closed (holes inside an edited object, e.g. unchanged stripes,
    belong to it) and opened (isolated noise pixels do not).
    """
    import cv2

    a = cv2.blur(original.astype(np.float32), (3, 3))
    b = cv2.blur(reference.astype(np.float32), (3, 3))
    mask = (np.abs(a - b).max(-1) > threshold).astype(np.uint8)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, k)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))
    return mask.astype(np.float32)


def geodesic_fill(
    labels: np.ndarray, known: np.ndarray, guide: np.ndarray,
    steps: int = FILL_STEPS, sigma: float = FILL_SIGMA,
) -> tuple[np.ndarray, np.ndarray]:
    """Spread ``labels`` (H, W) or (H, W, C) from ``known`` pixels into the others along paths of similar
    ``guide`` colour.

    Works at half resolution. Each step, a pixel takes the labels of the neighbour offering the strongest
    support (the neighbour's support times exp(-|Δcolour|²/σ²)). Returns (filled labels, support in 0..1)
    at full resolution; known pixels keep their labels and support 1.
    """
    import cv2

    h, w = labels.shape[:2]
    stacked = labels.reshape(h, w, -1).astype(np.float32)
    small = (max(1, w // 2), max(1, h // 2))
    lab = cv2.resize(stacked * known[..., None], small, interpolation=cv2.INTER_AREA)
    lab = lab.reshape(small[1], small[0], -1)
    sup = cv2.resize(known.astype(np.float32), small, interpolation=cv2.INTER_AREA)
    lab = np.where(sup[..., None] > 0, lab / np.maximum(sup, 1e-6)[..., None], 0).astype(np.float32)
    sup = (sup > 0.99).astype(np.float32)
    fixed = sup > 0
    img = cv2.resize(guide.astype(np.float32) / 255, small, interpolation=cv2.INTER_AREA)
    shifts = ((0, 1), (0, -1), (1, 1), (1, -1))  # (axis, shift): from the neighbour above, below, left, right
    gains = [np.exp(-np.sum((img - np.roll(img, shift, axis)) ** 2, -1) / sigma**2) * FILL_DECAY
             for axis, shift in shifts]
    for _ in range(steps):
        for (axis, shift), g in zip(shifts, gains, strict=True):
            cand = np.roll(sup, shift, axis) * g
            better = (cand > sup) & ~fixed
            sup = np.where(better, cand, sup)
            lab = np.where(better[..., None], np.roll(lab, shift, axis), lab)
    lab = cv2.resize(lab, (w, h), interpolation=cv2.INTER_LINEAR).reshape(h, w, -1)
    sup = cv2.resize(sup, (w, h), interpolation=cv2.INTER_LINEAR)
    known = known > 0.5
    filled = np.where(known[..., None], stacked, lab).reshape(labels.shape)
    return filled, np.where(known, 1.0, sup).astype(np.float32)


def refine(frame: np.ndarray, anchor_frame: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Sub-pixel refinement of chained anchor positions against the anchor itself (no drift).

    Chained flow accumulates a fraction of a pixel per step. The anchor is warped to ``frame`` by the
    chained positions, and the small residual flow between the two corrects them (at full resolution: the
    residual is sub-pixel, and on a fine texture half a pixel is the whole error).
    """
    warped = np.clip(remap(anchor_frame.astype(np.float32), coords), 0, 255).astype(np.uint8)
    residual = dis_flow(frame, warped, full_resolution=True)
    h, w = coords.shape[:2]
    return remap(coords, _grid(h, w) + residual)


@dataclass
class Track:
    labels: np.ndarray  # (T, H, W) float32 in 0..1: belongs to the edited region
    coords: np.ndarray  # (T, H, W, 2) float32: position (x, y) in the anchor along consistent flow
    valid: np.ndarray  # (T, H, W) bool: coords are backed by an unbroken chain of consistent flow
    consistent: np.ndarray  # (T,) fraction of pixels whose step passed the forward-backward check


def redetect(candidates: np.ndarray | None, ok: np.ndarray, support: np.ndarray) -> np.ndarray:
    """Labels from the correspondence candidates where neither flow nor the fill explains a pixel.

    Only regions at least REDETECT_WIDTH pixels wide count (a morphological opening): the thin sliver a
    moving look-alike uncovers at its edge every frame must not be taken for the edited object coming
    back, while an object re-entering the view or emerging from behind an occluder shows a wider part.
    """
    import cv2

    if candidates is None:
        return np.zeros(ok.shape, np.float32)
    unexplained = (~ok & (support <= FILL_SUPPORT) & (candidates > 0.5)).astype(np.uint8)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (REDETECT_WIDTH, REDETECT_WIDTH))
    return cv2.morphologyEx(unexplained, cv2.MORPH_OPEN, k).astype(np.float32)


class Tracker:
    """The frame-by-frame form of :func:`track`, for streaming: call :meth:`step` in anchor order
    (z2h.frames.anchor_order: every frame after its neighbour towards the anchor). It keeps only the states
    a later frame still needs (the anchor's and each direction's latest), so memory does not grow with T.
    """

    def __init__(
        self, anchor: int, anchor_frame: np.ndarray, seed: np.ndarray, lookalike: np.ndarray | None = None,
    ):
        h, w = seed.shape
        self.anchor, self.anchor_frame = anchor, anchor_frame
        self.grid = _grid(h, w)
        like = np.zeros((h, w), np.float32) if lookalike is None else lookalike.astype(np.float32)
        self.states: dict[int, tuple[np.ndarray, ...]] = {
            anchor: (anchor_frame, seed.astype(np.float32), self.grid.copy(), np.ones((h, w), bool), like)}
        self.consistent: list[float] = []
        # the latest step's flow (frame t -> previous) and where it passed both checks: a caller can carry
        # its own per-frame state along it (the fusion's temporal smoothing)
        self.last_flow: tuple[np.ndarray, np.ndarray] | None = None
        self.lookalike = like  # the latest step's tracked look-alikes (H, W) in 0..1

    def step(
        self, t: int, frame: np.ndarray, previous: int | None, candidates: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(labels, coords, valid) of frame ``t``, carried from frame ``previous`` (None for the anchor).

        The look-alikes given to the constructor (unedited pixels that look like the edit) are carried the
        same way into :attr:`lookalike`. Where the flow is unconfirmed and nothing near explains a pixel, it
        keeps the look-alike mark its flow brings (a shadow falling on a twin breaks the photometric check,
        not the twin's identity), and a known look-alike is never re-detected as the edited object.
        """
        if previous is None:
            _, lab, coords, valid, self.lookalike = self.states[self.anchor]
            return lab, coords, valid
        if previous not in self.states:
            raise ValueError(f"frame {t}: frame {previous} was not tracked before it (use anchor order)")
        prev_frame, prev_lab, prev_coords, prev_valid, prev_like = self.states[previous]
        if previous != self.anchor:  # only frame t (further out) needed it
            del self.states[previous]
        f_ts, f_st = dis_flow(frame, prev_frame), dis_flow(prev_frame, frame)
        ok = fb_check(f_ts, f_st) & photo_check(frame, prev_frame, self.grid + f_ts)
        self.consistent.append(float(ok.mean()))
        self.last_flow = (f_ts, ok)
        state = np.concatenate([prev_lab[..., None], prev_coords, prev_valid[..., None].astype(np.float32),
                                prev_like[..., None]], -1)
        moved = remap(state, self.grid + f_ts)
        coords = refine(frame, self.anchor_frame, moved[..., 1:3])
        valid = ok & (moved[..., 3] > 0.99)
        filled, support = geodesic_fill(moved[..., [0, 4]], ok.astype(np.float32), frame)
        explained = ok | (support > FILL_SUPPORT)
        like = np.where(explained, filled[..., 1], moved[..., 4])
        if candidates is not None:
            candidates = np.where(like > 0.5, 0, candidates)
        lab = np.where(explained, filled[..., 0], redetect(candidates, ok, support))
        # re-sharpen: bilinear sampling softens the labels' edges a little every step
        lab, like = (np.clip(1.5 * (x - 0.5) + 0.5, 0, 1).astype(np.float32) for x in (lab, like))
        self.states[t] = (frame, lab, coords, valid, like)
        self.lookalike = like
        return lab, coords, valid


def track(
    frames: np.ndarray, anchor: int, seed: np.ndarray, candidates: np.ndarray | None = None,
) -> Track:
    """Carry the anchor's edit region ``seed`` (H, W) through ``frames`` (T, H, W, 3) uint8.

    ``candidates`` (T, H, W) in 0..1 is the re-detection fallback (see the module docstring); without it,
    unexplained pixels get label 0.
    """
    from z2h.frames import anchor_order

    n, h, w = frames.shape[:3]
    labels = np.zeros((n, h, w), np.float32)
    coords = np.zeros((n, h, w, 2), np.float32)
    valid = np.zeros((n, h, w), bool)
    tracker = Tracker(anchor, frames[anchor], seed)
    consistent = np.ones(n, np.float32)
    for t, previous in anchor_order(n, anchor):
        labels[t], coords[t], valid[t] = tracker.step(
            t, frames[t], previous, None if candidates is None else candidates[t])
        if previous is not None:
            consistent[t] = tracker.consistent[-1]
    return Track(labels, coords, valid, consistent)
