"""The offline Zero-Stage engine: VGG16 + colour correspondence and masked cross-image attention.

Per target frame (the anchor included, processed like any other):

1. Tokens of the ORIGINAL target and the ORIGINAL anchor on a grid of stride ``feature_stride`` at the
   working size: VGG16 activations (each layer resized to the grid and L2-normalised) plus the frame's
   Lab colour. The match score of target token t and anchor token a is
   ``mean_l cos(f_t^l, f_a^l) - λ·‖(Lab_t - Lab_a) / 100‖²``, written as one dot product of augmented
   tokens, so the top-k search and the attention scores are exact matrix products.
2. Masked cross-image attention (:mod:`z2h.attention`): Q from the target, K from the anchor, V from
   the reference, restricted to the top-k matches (k = 1: a gather, no N×N scores).
3. V is the anchor's colour CHANGE per token, which the target then applies to its own pixels so it
   keeps its shading and texture: ``ratio`` (log gain in linear RGB), ``residual`` (sRGB offset), or
   ``copy`` (the reference colour itself). The attended values are bilinearly upsampled to full size.

No training, no temporal smoothing: each frame depends only on itself, the anchor and the reference.
γ has no meaning here (there is no denoising pass to blend queries with); τ scales the scores (k > 1).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from z2h.attention import masked_attention
from z2h.correspondence import dot_topk
from z2h.frames import FrameSequence
from z2h.models.vgg import STRIDES, VGGFeatures
from z2h.progress import ProgressFn, no_progress
from z2h.sizes import working_size
from z2h.zero_stage.config import ZeroStageConfig

SCORE_SCALE = 20.0  # softmax logits = τ·20·score: score gaps of 0.05-0.3 between candidates become 1-6
LOG_GAIN_LIMIT = 4.0  # |log gain| cap: dark anchor pixels would otherwise give unbounded ratios
GAIN_EPS = 0.01  # linear-RGB floor of the gain (x + eps)·g - eps: keeps dark pixels editable

_RGB_TO_XYZ = torch.tensor([[0.412453, 0.357580, 0.180423],
                            [0.212671, 0.715160, 0.072169],
                            [0.019334, 0.119193, 0.950227]])
_WHITE = torch.tensor([0.950456, 1.0, 1.088754])


def srgb_to_linear(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055).clamp_min(0) ** 2.4)


def linear_to_srgb(x: torch.Tensor) -> torch.Tensor:
    x = x.clamp(0, 1)
    return torch.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055)


def linear_to_lab(x: torch.Tensor) -> torch.Tensor:
    """Linear RGB (B, 3, h, w) -> CIE Lab (D65), L in [0, 100]."""
    xyz = torch.einsum("ij,bjhw->bihw", _RGB_TO_XYZ.to(x), x) / _WHITE.to(x).view(1, 3, 1, 1)
    f = torch.where(xyz > 0.008856, xyz.clamp_min(1e-12) ** (1 / 3), 7.787 * xyz + 16 / 116)
    return torch.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], dim=1)


def check_inputs(frames: np.ndarray | FrameSequence, anchor: int, reference: np.ndarray) -> None:
    """Clear ValueErrors for an empty video, a bad anchor index or a reference of the wrong size.

    ``frames`` may be any frame sequence with ``shape``/``ndim``/``dtype`` (z2h/frames.py): nothing is read.
    """
    if not all(hasattr(frames, a) for a in ("shape", "ndim", "dtype")):
        frames = np.asarray(frames)
    reference = np.asarray(reference)
    if frames.ndim != 4 or frames.shape[0] == 0:
        raise ValueError(f"the video is empty or not (T, H, W, 3) frames: got shape {frames.shape}")
    if frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 RGB (T, H, W, 3), got {frames.dtype} {frames.shape}")
    t, h, w = frames.shape[:3]
    if isinstance(anchor, bool) or not isinstance(anchor, int | np.integer) or not 0 <= anchor < t:
        raise ValueError(f"anchor frame {anchor!r} is out of range: the video has {t} frames (0..{t - 1})")
    if reference.shape != (h, w, 3) or reference.dtype != np.uint8:
        rh, rw = (reference.shape + (0, 0))[:2]
        raise ValueError(f"the reference image is {rw}x{rh} ({reference.dtype}, shape {reference.shape}) but "
                         f"the video frames are {w}x{h}: the reference must be the edited anchor frame, "
                         "uint8 RGB of the same size")


@dataclass
class Prepared:
    """The anchor/reference side of the offline Zero-Stage (see :meth:`OfflineZeroStage.prepare`)."""

    size: tuple[int, int]  # working size
    grid: tuple[int, int]  # token grid
    basis: torch.Tensor | None
    k_anc: torch.Tensor
    v_anc: torch.Tensor
    ks: list[int]


def _to_tensor(images: np.ndarray, device: torch.device) -> torch.Tensor:
    images = np.ascontiguousarray(images)
    if not images.flags.writeable:  # a shared, read-only frame (z2h/frames.py)
        images = images.copy()
    return torch.from_numpy(images).to(device).permute(0, 3, 1, 2).float() / 255


class OfflineZeroStage:
    """``OfflineZeroStage(config)(frames, anchor, reference, progress) -> frames`` uint8 (T, H, W, 3)."""

    def __init__(self, config: ZeroStageConfig | None = None, model: VGGFeatures | None = None):
        self.config = config or ZeroStageConfig()
        self.device = torch.device(self.config.device or "cpu")
        self._model = model

    @property
    def model(self) -> VGGFeatures:
        if self._model is None:  # loads the weights: raises FileNotFoundError naming `z2h weights fetch`
            self._model = VGGFeatures(self.config.layers)
        return self._model.to(self.device)

    def tokens(
        self, images: torch.Tensor, size: tuple[int, int], basis: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(query, key) tokens (B, N, C) of images (B, 3, H, W) in [0, 1] on the grid of working ``size``.

        query·key = mean layer cosine - λ·‖ΔLab/100‖² + (a per-query constant, irrelevant to top-k/softmax).
        ``basis`` (C_vgg, d) projects the VGG part onto d principal directions (see :meth:`basis`).
        """
        c = self.config
        grid = (size[0] // c.feature_stride, size[1] // c.feature_stride)
        x = F.interpolate(images, size=size, mode="bilinear", antialias=True, align_corners=False)
        feats = self.model(x)
        parts, start = [], 0
        for f in feats.values():
            channels = f.shape[1]
            f = F.normalize(f, dim=1) / math.sqrt(len(feats))  # unit norm at the layer's own resolution
            if basis is not None:  # project before upsampling: both are linear, and it is cheaper
                f = torch.einsum("bchw,cd->bdhw", f, basis[start:start + channels])
            start += channels
            if f.shape[-2:] != grid:
                f = F.interpolate(f, size=grid, mode="bilinear", align_corners=False)
            parts.append(f)
        feat = torch.stack(parts).sum(0) if basis is not None else torch.cat(parts, 1)
        lab = linear_to_lab(F.interpolate(srgb_to_linear(images), size=grid, mode="area")) / 100
        lam, ones = c.colour_weight, torch.ones_like(lab[:, :1])
        q = torch.cat([feat, 2 * lam * lab, ones], 1)
        k = torch.cat([feat, lab, -lam * lab.pow(2).sum(1, keepdim=True)], 1)
        return q.flatten(2).transpose(1, 2), k.flatten(2).transpose(1, 2)

    def basis(self, anchor: torch.Tensor, size: tuple[int, int]) -> torch.Tensor | None:
        """The anchor's top ``feature_dim`` principal directions of VGG tokens (uncentred), or None.

        Dot products in that subspace keep the matches (measured) at a fraction of the correlation cost,
        which otherwise rivals the VGG forward pass (4096² tokens × 768 channels per frame).
        """
        d = self.config.feature_dim
        if not d:
            return None
        q, _ = self.tokens(anchor, size)
        feat = q[0, :, :-4]  # drop the colour part (3 Lab + 1 constant)
        if d >= min(feat.shape):  # nothing to gain (few tokens or channels)
            return None
        # float64: eigh of a near-singular float32 Gram can fail. With fewer tokens than channels the
        # token Gram is smaller, and LAPACK is slow on the rank-deficient channel Gram (measured 7 s).
        f64 = feat.double()
        if f64.shape[0] < f64.shape[1]:
            vals, u = torch.linalg.eigh(f64 @ f64.T)  # ascending: the last d are the top ones
            vecs = f64.T @ u[:, -d:] / vals[-d:].clamp_min(1e-12).sqrt()
        else:
            vecs = torch.linalg.eigh(f64.T @ f64)[1][:, -d:]
        return vecs.flip(1).to(feat.dtype).contiguous()

    def values(self, anchor: torch.Tensor, reference: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """The colour change of the edit per anchor token: (1, N, 3), or (1, N, 3·stride²) with ``patch``."""
        c = self.config
        s = 1 if c.patch else c.feature_stride
        res = (size[0] // s, size[1] // s)
        if c.transfer == "ratio":
            gain = (F.interpolate(srgb_to_linear(reference), size=res, mode="area") + GAIN_EPS) / (
                F.interpolate(srgb_to_linear(anchor), size=res, mode="area") + GAIN_EPS)
            v = gain.log().clamp(-LOG_GAIN_LIMIT, LOG_GAIN_LIMIT)
        elif c.transfer == "residual":
            v = F.interpolate(reference - anchor, size=res, mode="area")
        else:
            v = F.interpolate(reference, size=res, mode="area")
        if c.patch:
            v = F.pixel_unshuffle(v, c.feature_stride)
        return v.flatten(2).transpose(1, 2)

    def apply(self, frames: torch.Tensor, change: torch.Tensor) -> torch.Tensor:
        """Apply the attended change (B, 3, h, w) upsampled to frames (B, 3, H, W) in [0, 1]."""
        change = F.interpolate(change, size=frames.shape[-2:], mode="bilinear", align_corners=False)
        if self.config.transfer == "ratio":
            # The same floor as in the gain, so a pixel equal to the anchor's maps exactly to the reference
            # (a black pixel can still become coloured).
            return linear_to_srgb((srgb_to_linear(frames) + GAIN_EPS) * change.exp() - GAIN_EPS)
        if self.config.transfer == "residual":
            return (frames + change).clamp(0, 1)
        return change.clamp(0, 1)

    def __call__(
        self, frames: np.ndarray, anchor: int, reference: np.ndarray, progress: ProgressFn | None = None,
    ) -> np.ndarray:
        return next(iter(self.run_ks(frames, anchor, reference, [self.config.k], progress).values()))

    @torch.inference_mode()
    def prepare(
        self, anchor_frame: np.ndarray, reference: np.ndarray, ks: list[int] | None = None
    ) -> Prepared:
        """Everything the per-frame pass needs from the anchor and the reference (computed once)."""
        c, dev = self.config, self.device
        h, w = anchor_frame.shape[:2]
        multiple = max(c.feature_stride, *(STRIDES[name] for name in c.layers))
        size = working_size(h, w, c.work_size, multiple)
        grid = (size[0] // c.feature_stride, size[1] // c.feature_stride)
        anc = _to_tensor(anchor_frame[None], dev)
        basis = self.basis(anc, size)
        _, k_anc = self.tokens(anc, size, basis)
        v_anc = self.values(anc, _to_tensor(reference[None], dev), size)
        ks = sorted({min(max(int(k), 1), grid[0] * grid[1]) for k in (ks or [c.k])})
        return Prepared(size, grid, basis, k_anc, v_anc, ks)

    @torch.inference_mode()
    def run_batch(self, prep: Prepared, frames: np.ndarray) -> dict[int, np.ndarray]:
        """Outputs (B, H, W, 3) uint8 per k for a batch of frames (B, H, W, 3) of one video."""
        c = self.config
        x = _to_tensor(frames, self.device)
        b = x.shape[0]
        q, k = self.tokens(x, prep.size, prep.basis)[0], prep.k_anc.expand(b, -1, -1)
        idx = dot_topk(q, k, prep.ks[-1])  # sorted best first: the top-k of every smaller k is a prefix
        v = prep.v_anc.expand(b, -1, -1)[:, None]
        out = {}
        for kk in prep.ks:
            attended = masked_attention(q[:, None], k[:, None], v, idx[..., :kk].contiguous(),
                                        scale=SCORE_SCALE * c.tau)[:, 0]
            change = attended.transpose(1, 2).reshape(b, -1, *prep.grid)
            if c.patch:
                change = F.pixel_shuffle(change, c.feature_stride)
            y = self.apply(x, change)
            out[kk] = (y * 255).round().clamp(0, 255).byte().permute(0, 2, 3, 1).cpu().numpy()
        return out

    def stream(
        self, frames: FrameSequence, anchor: int, reference: np.ndarray, order: list[int] | None = None,
        progress: ProgressFn | None = None,
    ) -> Iterator[tuple[int, np.ndarray]]:
        """``(i, output frame)`` in ``order`` (default 0..T-1), ``batch_size`` frames in memory at a time."""
        check_inputs(frames, anchor, reference)
        progress = progress or no_progress
        order = list(range(len(frames))) if order is None else list(order)
        prep = self.prepare(frames[anchor], np.asarray(reference))
        progress(0, len(order))
        bs = self.config.batch_size
        for start in range(0, len(order), bs):
            ids = order[start:start + bs]
            out = self.run_batch(prep, np.stack([frames[i] for i in ids]))[prep.ks[0]]
            for j, i in enumerate(ids):
                yield i, out[j]
            progress(start + len(ids), len(order))

    def run_ks(
        self, frames: np.ndarray, anchor: int, reference: np.ndarray, ks: list[int],
        progress: ProgressFn | None = None,
    ) -> dict[int, np.ndarray]:
        """Outputs for several k at the cost of one: features and one top-max(k) search per frame.

        Each k is clipped to the number of anchor tokens; the result is keyed by the clipped k.
        """
        check_inputs(frames, anchor, reference)
        frames, reference = np.asarray(frames), np.asarray(reference)
        progress = progress or no_progress
        prep = self.prepare(frames[anchor], reference, ks)
        n_frames = len(frames)
        out = {k: np.empty_like(frames) for k in prep.ks}
        progress(0, n_frames)
        for i in range(0, n_frames, self.config.batch_size):
            batch = self.run_batch(prep, frames[i:i + self.config.batch_size])
            for kk, y in batch.items():
                out[kk][i:i + len(y)] = y
            progress(i + len(y), n_frames)
        return out
