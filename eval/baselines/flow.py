"""Optical-flow warping of the reference (the edited anchor) to every frame.

Estimators: OpenCV DIS (presets) and Farneback, scikit-image TV-L1, torchvision RAFT (the RAFT authors'
weights converted by ``z2h weights fetch``, or a local file).
Modes: ``direct`` (flow from each frame straight to the anchor) and ``chained`` (frame-to-frame flows
composed back to the anchor, so the reference is resampled once). Occlusion handling: ``none`` (warp
everything, out-of-frame samples clamp to the border) or ``fb`` (a forward-backward consistency check;
inconsistent or out-of-frame pixels are filled from the original frame).

Flow convention everywhere: ``flow[y, x] = (dx, dy)`` maps a pixel of the TARGET frame to its position in
the SOURCE frame, i.e. ``target(x) ~ source(x + flow(x))`` -- the direction ``cv2.remap`` needs.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from z2h.progress import ProgressFn

ESTIMATORS = ("dis", "farneback", "tvl1", "raft")
MODES = ("direct", "chained")
OCCLUSIONS = ("none", "fb")
DIS_PRESETS = ("ultrafast", "fast", "medium")


def _sampling_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return xs, ys


def warp(image: np.ndarray, flow: np.ndarray, nearest: bool = False) -> np.ndarray:
    """Sample ``image`` at ``x + flow(x)`` (bilinear; out-of-frame samples clamp to the border)."""
    import cv2

    xs, ys = _sampling_grid(*flow.shape[:2])
    mx, my = xs + flow[..., 0], ys + flow[..., 1]
    interp = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    return cv2.remap(np.ascontiguousarray(image), mx, my, interp, borderMode=cv2.BORDER_REPLICATE)


def in_frame(flow: np.ndarray) -> np.ndarray:
    """Pixels whose source position lies inside the frame."""
    h, w = flow.shape[:2]
    xs, ys = _sampling_grid(h, w)
    mx, my = xs + flow[..., 0], ys + flow[..., 1]
    return (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)


def compose(f_ab: np.ndarray, f_bc: np.ndarray) -> np.ndarray:
    """Flow a->c from flows a->b and b->c."""
    return f_ab + warp(f_bc, f_ab)


def fb_consistent(f_ab: np.ndarray, f_ba: np.ndarray, alpha: float = 0.01, beta: float = 0.5) -> np.ndarray:
    """Forward-backward check (Sundaram et al. 2010): going a->b->a must return to the start."""
    back = warp(f_ba, f_ab)
    err = np.sum((f_ab + back) ** 2, -1)
    bound = alpha * (np.sum(f_ab**2, -1) + np.sum(back**2, -1)) + beta
    return (err < bound) & in_frame(f_ab)


def _gray(image: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)


class DIS:
    """OpenCV Dense Inverse Search."""

    def __init__(self, preset: str = "medium"):
        if preset not in DIS_PRESETS:
            raise ValueError(f"DIS preset must be one of {DIS_PRESETS}, not {preset!r}")
        self.preset = preset
        self.key = f"dis-{preset}"

    def source(self) -> str:
        import cv2

        return f"OpenCV {cv2.__version__} DISOpticalFlow preset {self.preset.upper()}"

    def __call__(self, target: np.ndarray, source: np.ndarray) -> np.ndarray:
        import cv2

        preset = getattr(cv2, f"DISOPTICAL_FLOW_PRESET_{self.preset.upper()}")
        return cv2.DISOpticalFlow_create(preset).calc(_gray(target), _gray(source), None)


class Farneback:
    """OpenCV Farneback polynomial-expansion flow (OpenCV sample settings, 10 iterations: small frames get
    few pyramid levels, and 3 iterations leave 6 px shifts unresolved)."""

    key = "farneback"
    params = dict(pyr_scale=0.5, levels=5, winsize=15, iterations=10, poly_n=5, poly_sigma=1.2, flags=0)

    def source(self) -> str:
        import cv2

        return f"OpenCV {cv2.__version__} calcOpticalFlowFarneback " + ", ".join(
            f"{k}={v}" for k, v in self.params.items())

    def __call__(self, target: np.ndarray, source: np.ndarray) -> np.ndarray:
        import cv2

        return cv2.calcOpticalFlowFarneback(_gray(target), _gray(source), None, **self.params)


class TVL1:
    """scikit-image TV-L1 (default parameters)."""

    key = "tvl1"

    def source(self) -> str:
        import skimage

        return f"scikit-image {skimage.__version__} optical_flow_tvl1, default parameters"

    def __call__(self, target: np.ndarray, source: np.ndarray) -> np.ndarray:
        from skimage.registration import optical_flow_tvl1

        # skimage returns (row, col) displacements with moving(x + d) ~ reference(x).
        v, u = optical_flow_tvl1(_gray(target) / np.float32(255), _gray(source) / np.float32(255))
        return np.stack([u, v], -1).astype(np.float32)


# Flows RAFT computed in this process, for the end-point-error check only (see RAFT.recall): the
# benchmark's EPE pairs (t+1 -> t) are the chained warp's steps, and RAFT costs seconds per pair on a CPU.
_RECALL: OrderedDict[tuple[str, bytes, bytes], np.ndarray] = OrderedDict()
_RECALL_BYTES = 256 << 20


def _digest(image: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(image).tobytes(), digest_size=16).digest()


def _raft_size(state: dict[str, Any]) -> str:
    """raft_large predicts convex-upsampling masks; raft_small upsamples bilinearly and has none."""
    return "large" if "mask_predictor.conv.weight" in state else "small"


class RAFT:
    """torchvision RAFT. ``weights``: "sintel" (default), "kitti" or "small" -- the RAFT authors' checkpoints
    converted by ``z2h weights fetch`` -- or a local torchvision raft_large/raft_small state dict
    (.pth/.pt or .safetensors; the size is read from its keys)."""

    def __init__(self, weights: str | Path | None = None, iters: int = 12):
        from z2h import raft_weights

        weights = str(weights or raft_weights.DEFAULT)
        if weights in raft_weights.CHECKPOINTS:
            self.path, self.label = raft_weights.raft_weights_path(weights), weights
        else:
            self.path, self.label = Path(weights), Path(weights).stem
            if not self.path.is_file():
                raise FileNotFoundError(f"RAFT weights file not found: {self.path} (pass sintel, kitti, "
                                        "small or a torchvision RAFT state dict)")
        self.iters, self.key = iters, f"raft-{self.label}"
        self.sha256 = hashlib.sha256(self.path.read_bytes()).hexdigest()[:16]
        self._model: Any = None
        self.size = ""

    def source(self) -> str:
        import torchvision

        self.model()
        return (f"torchvision {torchvision.__version__} raft_{self.size}, {self.iters} updates, "
                f"weights {self.path.name} (sha256 {self.sha256})")

    def model(self) -> Any:
        if self._model is None:
            import torch
            from torchvision.models.optical_flow import raft_large, raft_small

            if self.path.suffix == ".safetensors":
                from safetensors.torch import load_file

                state = load_file(self.path)
            else:
                state = torch.load(self.path, map_location="cpu", weights_only=True)
            if not isinstance(state, dict):
                raise ValueError(f"{self.path} is not a RAFT state dict")
            self.size = _raft_size(state)
            model = (raft_small if self.size == "small" else raft_large)(weights=None, progress=False)
            try:
                model.load_state_dict(state)
            except RuntimeError as e:
                raise ValueError(f"{self.path} is not a raft_{self.size} state dict: {e}") from None
            self._model = model.eval()
        return self._model

    def __call__(self, target: np.ndarray, source: np.ndarray) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        h, w = target.shape[:2]
        pair = torch.from_numpy(np.stack([target, source])).permute(0, 3, 1, 2).float() / 127.5 - 1
        # RAFT needs sizes divisible by 8 and at least 128 px (its correlation pyramid)
        pair = F.pad(pair, (0, max(128, w + -w % 8) - w, 0, max(128, h + -h % 8) - h), mode="replicate")
        with torch.no_grad():
            flow = self.model()(pair[:1], pair[1:], num_flow_updates=self.iters)[-1]
        flow = flow[0, :, :h, :w].permute(1, 2, 0).numpy().astype(np.float32)
        _RECALL[(f"{self.sha256}-{self.iters}", _digest(target), _digest(source))] = flow
        while sum(f.nbytes for f in _RECALL.values()) > _RECALL_BYTES:
            _RECALL.popitem(last=False)
        return flow

    def recall(self, target: np.ndarray, source: np.ndarray) -> np.ndarray:
        """The flow this process already computed for the pair (deterministic), else a new one.

        Only the EPE check uses it: a method's own timing always includes its flows."""
        flow = _RECALL.get((f"{self.sha256}-{self.iters}", _digest(target), _digest(source)))
        return flow.copy() if flow is not None else self(target, source)


def make_estimator(name: str, preset: str = "medium", raft_weights: str | Path | None = None,
                   raft_iters: int = 12) -> Any:
    """The flow estimator called ``name`` (one of ESTIMATORS)."""
    if name == "dis":
        return DIS(preset)
    if name == "farneback":
        return Farneback()
    if name == "tvl1":
        return TVL1()
    if name == "raft":
        return RAFT(raft_weights, raft_iters)
    raise ValueError(f"unknown flow estimator {name!r}; one of {ESTIMATORS}")


@dataclass
class FlowWarpConfig:
    estimator: str = "dis"
    mode: str = "chained"
    occlusion: str = "none"
    preset: str = "medium"
    raft_weights: str | None = None
    raft_iters: int = 12
    fb_alpha: float = 0.01
    fb_beta: float = 0.5


class FlowWarp:
    """Warp the reference to every frame along estimated flow; ``estimator`` is exposed for EPE checks."""

    def __init__(self, **options: Any):
        self.config = c = FlowWarpConfig(**options)
        if c.mode not in MODES or c.occlusion not in OCCLUSIONS:
            raise ValueError(f"mode must be one of {MODES} and occlusion one of {OCCLUSIONS}")
        self.estimator = make_estimator(c.estimator, c.preset, c.raft_weights, c.raft_iters)
        self.name = f"flow-{c.estimator}-{c.mode}" + ("-fb" if c.occlusion == "fb" else "")

    def settings(self) -> dict[str, Any]:
        c = self.config
        s: dict[str, Any] = {"estimator": c.estimator, "mode": c.mode, "occlusion": c.occlusion}
        if c.estimator == "dis":
            s["preset"] = c.preset
        if c.estimator == "raft":
            e = self.estimator
            s.update(raft_weights=e.label, raft_iters=c.raft_iters, raft_sha256=e.sha256)
        if c.occlusion == "fb":
            s.update(fb_alpha=c.fb_alpha, fb_beta=c.fb_beta)
        fill = ("; forward-backward check, inconsistent pixels from the original frame"
                if c.occlusion == "fb" else "; no occlusion check")
        s["source"] = f"{self.estimator.source()}; {c.mode}{fill}"
        return s

    def _step(self, target: np.ndarray, source: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Flow target->source and, with ``fb``, the mask of pixels that pass the consistency check."""
        flow = self.estimator(target, source)
        if self.config.occlusion == "none":
            return flow, None
        back = self.estimator(source, target)
        return flow, fb_consistent(flow, back, self.config.fb_alpha, self.config.fb_beta)

    def flows_to_anchor(self, frames: np.ndarray, anchor: int,
                        progress: ProgressFn | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Flows (T, H, W, 2) from every frame to the anchor and their validity masks (T, H, W)."""
        t_count, h, w = frames.shape[:3]
        flows = np.zeros((t_count, h, w, 2), np.float32)
        valid = np.ones((t_count, h, w), bool)
        order = sorted(range(t_count), key=lambda t: abs(t - anchor))  # anchor first, then outwards
        for done, t in enumerate(order, 1):
            if t != anchor:
                if self.config.mode == "direct":
                    flow, ok = self._step(frames[t], frames[anchor])
                    flows[t] = flow
                    valid[t] = in_frame(flow) if ok is None else ok
                else:
                    prev = t - 1 if t > anchor else t + 1  # the neighbour one step closer to the anchor
                    step, ok = self._step(frames[t], frames[prev])
                    flows[t] = compose(step, flows[prev])
                    carried = warp(valid[prev].astype(np.uint8), step, nearest=True).astype(bool)
                    valid[t] = carried & (in_frame(step) if ok is None else ok) & in_frame(flows[t])
            if progress:
                progress(done, t_count)
        return flows, valid

    def __call__(
        self, frames: np.ndarray, anchor: int, reference: np.ndarray, progress: ProgressFn | None = None
    ) -> np.ndarray:
        flows, valid = self.flows_to_anchor(frames, anchor, progress)
        out = np.stack([warp(reference, f) for f in flows])
        out[anchor] = reference
        if self.config.occlusion == "fb":
            out[~valid] = frames[~valid]
        return out


def _variant(estimator: str, mode: str, occlusion: str):
    def make(**options: Any) -> FlowWarp:
        return FlowWarp(estimator=estimator, mode=mode, occlusion=occlusion, **options)

    make.__doc__ = f"flow-{estimator}-{mode}{'-fb' if occlusion == 'fb' else ''}"
    return make


# One factory per registered variant (eval/methods.py names them as "module:factory").
dis_direct = _variant("dis", "direct", "none")
dis_direct_fb = _variant("dis", "direct", "fb")
dis_chained = _variant("dis", "chained", "none")
dis_chained_fb = _variant("dis", "chained", "fb")
farneback_direct = _variant("farneback", "direct", "none")
farneback_direct_fb = _variant("farneback", "direct", "fb")
farneback_chained = _variant("farneback", "chained", "none")
farneback_chained_fb = _variant("farneback", "chained", "fb")
tvl1_direct = _variant("tvl1", "direct", "none")
tvl1_direct_fb = _variant("tvl1", "direct", "fb")
tvl1_chained = _variant("tvl1", "chained", "none")
tvl1_chained_fb = _variant("tvl1", "chained", "fb")
raft_direct = _variant("raft", "direct", "none")
raft_direct_fb = _variant("raft", "direct", "fb")
raft_chained = _variant("raft", "chained", "none")
raft_chained_fb = _variant("raft", "chained", "fb")
