"""z2h v2's last step: per pixel, the most exact source of the edit that is reliable there, inside the
tracked edit region only.

Three sources of the edited colour for pixel p of frame t:

1. ``colour``: the anchor's edit as a colour lookup (z2h/color_transform.py), fitted on the edit region.
   Exact for recolouring; weighted by how consistently the anchor mapped p's colour to ONE colour.
2. ``flow``: the anchor's colour change (linear-RGB gain) at p's anchor position, carried along flow
   chains that passed every forward-backward check and whose original colours still agree
   (photometric check), inside the tracked label. Exact for small motion and for texture on surface seen
   in the anchor. Where the chain broke, a direct flow to the anchor is used if the colours at its end
   agree.
3. ``restored``: the Hero-Stage output (correspondence + learned restoration): everything else.

The mix of 2 and 3 is made temporally steadier: where the flow to the previous frame (towards the anchor)
is consistent, it is blended with that frame's (already steadied) mix carried along the flow, so the
restorer's frame-to-frame noise does not flicker and frames near the anchor guide later ones.

    y = w_colour·colour + (1 - w_colour)·steady(w_flow·flow + (1 - w_flow)·restored)
    out = original + gate·(y - original)

``w_colour`` is the lookup's reliability. Inside the tracked object, where no flow chain backs the mix (it is
the restorer's alone), it is raised to the inverse-error-variance weight when the restorer disagrees with
the lookup by more than the lookup's own expected error: the excess is the restorer's error (it confuses
twins, blurs an object that re-enters the frame), so the two are weighed by what each is expected to miss.

``gate`` is the tracked edit region (z2h/tracking.py) grown over the object it belongs to, so a look-alike
that was not edited keeps its original pixels exactly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from z2h.progress import ProgressFn, no_progress

GAIN_EPS = 0.01  # as in the offline Zero-Stage's ratio transfer
GATE_GROWTH = 3  # px the gate extends beyond the tracked label (its edge is soft and may lag)
CHANGED_LEVELS = 6  # a pixel the colour lookup changes by more than this (0..255) "looks edited"
GROW_LEVELS = 12  # ... and by more than this: clearly edited, the gate follows it further (thin parts)
GROW_REACH = 64  # px (geodesic, through clearly edited pixels) the gate may follow from the tracked label
DIRECT_RADIUS = 12.0  # px: a direct match to the anchor must land this close to where the broken chain points
QUANTISATION = 1.0  # levels²: the least squared error any source has (8-bit rounding, render noise)
UNEDITED_LEVELS = 4  # the reference differs from the anchor by at most this (0..255): left as it was
LOOKALIKE_MARGIN = 8  # px between the edit and a look-alike: DIS smooths flow over its 8-px patches


@dataclass
class FusionConfig:
    """The v2 additions on top of the paper's two stages; all off = the paper's method."""

    track: bool = True  # gate the output by the tracked edit region (temporal identity)
    colour: bool = True  # the anchor-learned colour lookup where it explains the edit
    flow: bool = True  # the flow-carried colour change where flow chains are consistent
    colour_spread: float = 6.0  # lookup residual (0..255 levels) at which its weight falls to 1/e
    photo_tolerance: float = 12.0  # max original-colour difference (0..255) for a flow-carried pixel
    region_margin: int = 8  # px around the edit region whose colours the lookup learns (the gate reaches 2x)
    temporal: float = 0.5  # weight of the previous frame's output (flow + restorer) carried along the flow
    direct: bool = True  # where the flow chain broke, match the frame to the anchor directly (photo-checked)
    arbitrate: bool = True  # inside the track, where the restorer is alone: weigh it and the lookup by error

    def __post_init__(self) -> None:
        if not 0 <= self.temporal < 1:
            raise ValueError(f"temporal must be in [0, 1), not {self.temporal}")

    @property
    def enabled(self) -> bool:
        return self.track or self.colour or self.flow or self.temporal > 0

    def settings(self) -> dict[str, Any]:
        return asdict(self)


def _lin(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float32) / 255
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def _srgb(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0, 1)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055) * 255


def candidates(zero: np.ndarray, frames: np.ndarray, low: float = 6.0, high: float = 20.0) -> np.ndarray:
    """Where the Zero-Stage changed a frame (its correspondence says "looks like the edited part"): 0..1."""
    d = np.abs(zero.astype(np.float32) - frames.astype(np.float32)).max(-1)
    return np.clip((d - low) / (high - low), 0, 1)


def lookalikes(anchor_frame: np.ndarray, reference: np.ndarray, looked_up: np.ndarray) -> np.ndarray:
    """(H, W) float32 in {0, 1}: anchor pixels the colour lookup changes clearly (they look like the edited
    part) but the user left as they were (the reference equals the anchor there, LOOKALIKE_MARGIN px from
    any edit).

    The margin is for the flow chains that lead here: DIS smooths flow over a patch, so where the edited
    object and its surroundings move differently (a still object before a moving background of its own
    colour), the chains of the object's edge pixels can end a few pixels off it. They must not be taken
    for a look-alike's.
    """
    import cv2

    anchor = anchor_frame.astype(np.float32)
    edited = (np.abs(reference.astype(np.float32) - anchor).max(-1) > UNEDITED_LEVELS).astype(np.uint8)
    size = 2 * LOOKALIKE_MARGIN + 1
    near_edit = cv2.dilate(edited, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))) > 0
    would = np.abs(looked_up.astype(np.float32) - anchor).max(-1) > GROW_LEVELS
    return (would & ~near_edit).astype(np.float32)


class Fuser:
    """Fusion frame by frame (streaming): ``fuser(t, frame, restored, zero, previous) -> frame``, called in
    anchor order (z2h.frames.anchor_order). Bounded memory: the tracker keeps two frames' states."""

    def __init__(self, anchor: int, anchor_frame: np.ndarray, reference: np.ndarray, config: FusionConfig):
        import cv2

        from z2h.color_transform import ColourTransform
        from z2h.tracking import Tracker, edit_region

        self.config = c = config
        self.seed = edit_region(anchor_frame, reference)
        self.k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * c.region_margin + 1,) * 2)
        self.k_far = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (4 * c.region_margin + 1,) * 2)
        self.k_small = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * GATE_GROWTH + 1,) * 2)
        self.k_margin = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * LOOKALIKE_MARGIN + 1,) * 2)
        self.empty = self.seed.sum() == 0  # the reference equals the anchor: nothing to propagate
        self.steadied: dict[int, np.ndarray] = {}  # the flow + restorer mix after smoothing, as tracked
        self.lookalike = None
        if c.colour:
            weight = cv2.dilate(self.seed.astype(np.uint8), self.k).astype(np.float32) if c.track else None
            self.ct = ColourTransform().fit(anchor_frame, reference, weight)
            if c.track:
                self.lookalike = lookalikes(anchor_frame, reference, self.ct.apply(anchor_frame))
        self.tracker = None
        if c.track or c.flow or c.temporal:
            self.tracker = Tracker(anchor, anchor_frame, self.seed, self.lookalike)
        if c.flow:
            self.gain = (_lin(reference) + GAIN_EPS) / (_lin(anchor_frame) + GAIN_EPS)
            self.anchor_blur = cv2.blur(anchor_frame.astype(np.float32), (3, 3))
        self.w_colour: list[float] = []
        self.w_flow: list[float] = []

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {"edit_region_px": int(self.seed.sum())}
        if self.tracker is not None and self.tracker.consistent:
            out["flow_consistent"] = round(float(np.mean(self.tracker.consistent)), 4)
        if self.w_colour:
            out["colour_weight_mean"] = round(float(np.mean(self.w_colour)), 4)
        if self.w_flow:
            out["flow_weight_mean"] = round(float(np.mean(self.w_flow)), 4)
        return out

    def gate(
        self, label: np.ndarray, looked_up: np.ndarray | None, orig: np.ndarray,
        veto: np.ndarray | None = None, marked: np.ndarray | None = None,
    ) -> np.ndarray:
        """Where the output may differ from the original frame: (H, W) float32 in 0..1.

        The tracked label marks the pixels the edit CHANGED. The gate is the object around them: the label
        grown by a few pixels, plus the pixels the colour lookup changes that are CONNECTED to the label
        within twice the margin (parts of the same object the chain lost), plus the pixels it changes
        clearly (GROW_LEVELS) along paths of such pixels up to GROW_REACH px from there: a thin part the
        chain lost, e.g. the end of a turning helix that comes into view, lies far from the label but is
        connected to it. Holes are filled. A look-alike stays out unless it touches the edited object;
        ``veto`` marks pixels known to be a look-alike (their flow chain leads to one in the anchor), which
        stay out even then. ``marked`` (H, W) in 0..1 is the tracker's look-alike mark, carried even where the
        chain broke (a twin crossing the object, a shadow): the gate does not grow through it further than
        LOOKALIKE_MARGIN px from the label, since within a DIS patch the lagging label's own edge may carry
        the mark of the background it passed over.
        """
        import cv2
        from scipy.ndimage import binary_fill_holes

        near = (label > 0.5).astype(np.uint8)
        if veto is not None:
            near[veto] = 0
        grown = cv2.dilate(near, self.k_small)
        if looked_up is not None:
            change = np.abs(looked_up - orig).max(-1)
            if veto is not None:
                change[veto] = 0  # nothing grows through a known look-alike
            growable = change
            if marked is not None:
                growable = np.where((marked > 0.5) & (cv2.dilate(near, self.k_margin) == 0), 0, change)
            grown |= (growable > CHANGED_LEVELS).astype(np.uint8) & cv2.dilate(near, self.k_far)
            _, comp = cv2.connectedComponents(grown, connectivity=8)
            keep = np.unique(comp[near > 0])
            grown = np.isin(comp, keep[keep > 0]).astype(np.uint8)
            allowed = (growable > GROW_LEVELS).astype(np.uint8) | grown
            step = np.ones((3, 3), np.uint8)
            for _ in range(GROW_REACH):  # geodesic growth, one pixel per step
                wider = cv2.dilate(grown, step) & allowed
                if np.array_equal(wider, grown):
                    break
                grown = wider
        # an object has no holes: stripes the edit left as they were (white squares of a recoloured
        # checker) and their anti-aliased edges belong to it
        grown = binary_fill_holes(grown).astype(np.uint8)
        # The soft (anti-aliased) edge lies outside the object, on pixels the lookup leaves about as they
        # are: every pixel of the object gets the whole edit, a clearly changed pixel outside (a twin) none.
        outer = cv2.dilate(grown, np.ones((3, 3), np.uint8)).astype(np.float32)
        gate = np.maximum(grown, cv2.blur(outer, (3, 3)))
        if looked_up is not None:
            gate[(change > CHANGED_LEVELS) & (grown == 0)] = 0
        if veto is not None:
            gate[veto] = 0
        return gate

    def match_anchor(
        self, frame: np.ndarray, coords: np.ndarray, valid: np.ndarray, edited: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Anchor positions where the flow chain broke inside the tracked label (``edited``), from a direct
        match of ``frame`` to the anchor's edit region.

        Chained flow drifts and breaks on a waving or turning texture, although the anchor still shows
        that surface. A direct DIS flow to the anchor is taken where the colours at its end agree
        (no forward-backward check: one flow per frame; the fusion's photometric test follows). The
        tracker's own chain, which decides identity, is left alone: a direct match cannot tell twins apart.
        """
        from z2h.tracking import dis_flow, photo_check, remap

        wanted = edited & ~valid
        if not wanted.any():  # every chain inside the label holds (most recolouring frames): no flow needed
            return coords, valid
        anchor_frame = self.tracker.anchor_frame
        matched = self.tracker.grid + dis_flow(frame, anchor_frame)
        on_edit = remap(self.seed, matched) > 0.5  # a match elsewhere is a look-alike, not the edited surface
        near_chain = np.linalg.norm(matched - coords, axis=-1) < DIRECT_RADIUS
        use = wanted & on_edit & near_chain & photo_check(frame, anchor_frame, matched)
        return np.where(use[..., None], matched, coords).astype(np.float32), valid | use

    @staticmethod
    def arbitrate(
        looked_up: np.ndarray, mix: np.ndarray, w_col: np.ndarray, e_l: np.ndarray, alone: np.ndarray,
    ) -> np.ndarray:
        """The lookup's weight (H, W, 1): ``w_col``, raised where the restorer speaks ``alone`` (H, W) to
        e_r² / (e_r² + e_l²), ``e_l`` the lookup's expected error at that colour and e_r² what the local (5x5)
        mean squared difference between ``mix`` and the lookup leaves unexplained by it."""
        import cv2

        e_l2 = e_l**2 + QUANTISATION
        d2 = cv2.blur(((mix - looked_up) ** 2).mean(-1), (5, 5))
        e_r2 = np.maximum(d2 - e_l2, 0)
        return np.maximum(w_col, (alone * e_r2 / (e_r2 + e_l2))[..., None])

    def steady(self, t: int, mix: np.ndarray, previous: int | None) -> np.ndarray:
        """Frame ``t``'s ``mix`` so far (restorer and flow) blended (weight ``temporal``) with the previous
        frame's steadied mix carried along the flow, where that flow passed the tracker's checks."""
        from z2h.tracking import remap

        out = mix.astype(np.float32)
        if previous is not None and self.tracker.last_flow is not None:
            flow, ok = self.tracker.last_flow
            carried = remap(self.steadied[previous], self.tracker.grid + flow)
            a = self.config.temporal
            out = np.where(ok[..., None], a * carried + (1 - a) * out, out)
            if previous != self.tracker.anchor:  # only frame t (further out) needed it
                del self.steadied[previous]
        self.steadied[t] = out
        return out

    def __call__(
        self, t: int, frame: np.ndarray, restored: np.ndarray, zero: np.ndarray, previous: int | None,
    ) -> np.ndarray:
        import cv2

        from z2h.tracking import remap

        c = self.config
        if self.empty:
            return restored
        orig = frame.astype(np.float32)
        y = restored.astype(np.float32)
        if c.colour:
            w_col, e_col = self.ct.assess(frame, c.colour_spread)
            w_col = w_col[..., None]
            looked_up = self.ct.apply(frame).astype(np.float32)
        if self.tracker is not None:
            # Re-detection where the chain breaks: what the Zero-Stage's correspondence changed, and what
            # the colour lookup changes where it is reliable (per-pixel colour correspondence).
            guess = candidates(zero[None], frame[None])[0]
            if c.colour:
                guess = np.maximum(guess, candidates(looked_up[None], frame[None])[0] * w_col[..., 0])
            label, coords, valid = self.tracker.step(t, frame, previous, guess)
            chain_coords, chain_valid = coords, valid  # identity (the veto) trusts the chain only
        w_flow = np.zeros(frame.shape[:2] + (1,), np.float32)
        if c.flow:
            if c.direct and previous is not None:
                coords, valid = self.match_anchor(frame, coords, valid, label > 0.5)
            photo = np.abs(cv2.blur(orig, (3, 3)) - remap(self.anchor_blur, coords)).max(-1)
            w_flow = valid & (photo < c.photo_tolerance)
            if c.track:  # flow on means a tracker (and a label)
                # Only inside the tracked label: a chain outside it came from an unedited anchor pixel and
                # carries "no change". Where the gate still takes the pixel for the object, the label lags
                # (DIS smooths flow across an edge whose colours match the background's): there the chain
                # is the background's, and the lookup and the restorer decide.
                w_flow &= label > 0.5
            w_flow = w_flow.astype(np.float32)[..., None]
            carried = _srgb((_lin(frame) + GAIN_EPS) * remap(self.gain, coords) - GAIN_EPS)
            y = w_flow * carried + (1 - w_flow) * y
            self.w_flow.append(float(w_flow.mean()))
        if c.temporal:
            y = self.steady(t, y, previous)
        if c.colour:
            if c.arbitrate and self.tracker is not None:
                w_col = self.arbitrate(looked_up, y, w_col, e_col, (label > 0.5) & (w_flow[..., 0] == 0))
            y = w_col * looked_up + (1 - w_col) * y
            self.w_colour.append(float(w_col.mean()))
        if c.track:
            veto = None
            if c.colour:  # chains that lead to an anchor pixel the user left as it was but the lookup changes
                veto = chain_valid & (remap(self.lookalike, chain_coords) > 0.5)
            gate = self.gate(label, looked_up if c.colour else None, orig, veto,
                             self.tracker.lookalike if c.colour else None)
            y = orig + gate[..., None] * (y - orig)
        return np.clip(np.rint(y), 0, 255).astype(np.uint8)


def fuse(
    frames: np.ndarray,
    anchor: int,
    reference: np.ndarray,
    restored: np.ndarray,
    zero: np.ndarray,
    config: FusionConfig,
    progress: ProgressFn | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """The fused video (T, H, W, 3) uint8 and statistics for run.json (in-memory form of :class:`Fuser`)."""
    from z2h.frames import anchor_order

    progress = progress or no_progress
    fuser = Fuser(anchor, frames[anchor], reference, config)
    out = np.empty_like(frames)
    progress(0, len(frames))
    for done, (t, previous) in enumerate(anchor_order(len(frames), anchor), 1):
        out[t] = fuser(t, frames[t], restored[t], zero[t], previous)
        progress(done, len(frames))
    return out, fuser.stats()
