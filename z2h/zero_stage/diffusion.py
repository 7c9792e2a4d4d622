"""The faithful Zero-Stage engine: Stable Diffusion 2.1 + DIFT correspondence + masked cross-image attention.

For each target frame (the anchor included, processed like any other frame):

1. DIFT features of the ORIGINAL target and the ORIGINAL anchor (t=261, ``up_blocks[1]``, 8 noise
   draws, empty prompt) -> cosine top-k anchor tokens per target token, at the three token grids of the
   decoder's self-attention layers (k at the DIFT grid = up_blocks[2], max(k//4, 1) at half =
   up_blocks[1], 4k at double = up_blocks[3]); anchor tokens index the reference (the edited anchor).
2. DDIM inversion (20 steps, empty prompt, guidance 0) of the reference, once per video, keeping the
   K/V of every attn1 layer of up_blocks 1-3 per timestep; and of the target, keeping its Q (for γ).
3. Denoise from the target's inverted latent AdaIN-matched (per-channel mean/std) to the reference's
   inverted latent, with those attn1 layers computing Q = τ·(γ·q_inv + (1−γ)·q_cur), K/V of the
   reference at the same timestep, masked to the top-k (k=1: a gather, no N×N scores); decode.

Reference-code settings implemented: SD 2.1-base, DDIM 20 steps, empty prompt, guidance 0, attn1 of
up_blocks 1-3 only, mask weight 100 (as an exact top-k softmax, see z2h/attention.py), γ, τ, the three
mask scales, DIFT t=261 / up-block 1 / 8 draws / cosine, AdaIN start latent, k=1 by default.

Deviations, all deliberate:
- K/V and Q come from the inversion passes themselves: the U-Net call of the inversion step that
  lands on timestep t (evaluated on the latent one step less noisy) is stored under t and reused by
  the denoising step at t. Injection runs at every denoising step.
- DIFT runs at the working resolution (longer side ``resolution``, 512 by default, sides rounded half
  up to multiples of 16 by z2h/sizes.py, the rule the Hero-Stage uses too: 1920x1080 -> 512x288) on
  the VAE posterior mean, with the same seeded noise draws for every frame; the reference DIFT code
  resizes to 768 and samples the posterior. Frames are resized back to their size.
- Without a text encoder in the weights folder the empty prompt is zeros (load_sd warns).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from z2h.attention_processors import CrossImageState, cross_image_attention
from z2h.correspondence import multiscale_topk
from z2h.models.sd import SDParts, load_sd
from z2h.progress import ProgressFn, no_progress
from z2h.sizes import working_size
from z2h.zero_stage.dift import dift_features
from z2h.zero_stage.inversion import ddim_denoise, ddim_invert


@dataclass
class DiffusionSettings:
    """Knobs of the diffusion engine; ``from_config`` reads same-named fields of a ZeroStageConfig."""

    zero_model: str | None = None  # SD 2.1-base folder (diffusers format) or hub id
    k: int = 1
    gamma: float = 1.0
    tau: float = 1.0
    steps: int = 20
    dift_t: int = 261
    dift_block: int = 1
    dift_ensemble: int = 8
    resolution: int = 512
    seed: int = 0
    device: str | None = None  # None: cuda when available, else cpu

    @classmethod
    def from_config(cls, config: Any = None, **overrides: Any) -> DiffusionSettings:
        vals = {f.name: getattr(config, f.name) for f in fields(cls)
                if config is not None and getattr(config, f.name, None) is not None}
        return cls(**{**vals, **overrides})


def adain(x: torch.Tensor, ref: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Give ``x`` (B, C, h, w) the per-channel mean and std of ``ref``."""
    mu, sd = x.mean((2, 3), keepdim=True), x.std((2, 3), keepdim=True)
    return (x - mu) / (sd + eps) * ref.std((2, 3), keepdim=True) + ref.mean((2, 3), keepdim=True)


def attention_grids(unet: Any, latent_size: tuple[int, int], blocks: tuple[int, ...] = (1, 2, 3)):
    """Token grids (h, w) of the attn1 layers of ``up_blocks[i]``: up block i runs at the resolution of
    down level n-1-i, and each downsampler (3x3 conv, stride 2, padding 1) maps a side s to ceil(s / 2),
    so for SD (4 levels) blocks 1, 2, 3 run at latent / 4, / 2, / 1, rounded up on odd grids (the
    U-Net then upsamples to the skip connection's size)."""
    n = len(unet.up_blocks)
    levels = [tuple(latent_size)]
    for _ in range(n - 1):
        levels.append(tuple(-(-s // 2) for s in levels[-1]))
    return [levels[n - 1 - i] for i in blocks]


def _check_inputs(frames: np.ndarray, anchor: int, reference: np.ndarray) -> None:
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise ValueError(f"frames must be a non-empty (T, H, W, 3) array, got shape {frames.shape}")
    if not 0 <= anchor < len(frames):
        raise ValueError(f"anchor {anchor} out of range for a video of {len(frames)} frames")
    if reference.shape != frames.shape[1:]:
        raise ValueError(f"reference has shape {reference.shape}, frames are {frames.shape[1:]}")


class DiffusionZeroStage:
    """``DiffusionZeroStage(config)(frames, anchor, reference, progress) -> frames`` uint8 (T, H, W, 3).

    Weights load on first use from ``config.zero_model`` (or pass preloaded ``parts``).
    """

    def __init__(self, config: Any = None, parts: SDParts | None = None, **overrides: Any):
        self.config = DiffusionSettings.from_config(config, **overrides)
        self._parts = parts

    @property
    def parts(self) -> SDParts:
        if self._parts is None:
            device = self.config.device or ("cuda" if torch.cuda.is_available() else "cpu")
            dtype = torch.float16 if torch.device(device).type == "cuda" else torch.float32
            self._parts = load_sd(self.config.zero_model, device=device, dtype=dtype)
        return self._parts

    def settings(self) -> dict[str, Any]:
        return {"engine": "diffusion", **asdict(self.config)}

    def _encode(self, img: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
        p = self.parts
        x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float() / 127.5 - 1
        if tuple(x.shape[-2:]) != size:
            x = F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False)
        x = x.clamp(-1, 1).to(p.device, p.dtype)
        # latents stay float32 between U-Net calls, whatever the model dtype
        return (p.vae.encode(x).latent_dist.mode() * p.vae.config.scaling_factor).float()

    def _decode(self, latent: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
        p = self.parts
        x = p.vae.decode((latent / p.vae.config.scaling_factor).to(p.dtype), return_dict=False)[0]
        x = x.float().cpu()
        if tuple(x.shape[-2:]) != size:
            x = F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False)
        x = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        return x[0].permute(1, 2, 0).numpy()

    def _dift(self, latent: torch.Tensor) -> torch.Tensor:
        c = self.config
        gen = torch.Generator().manual_seed(c.seed)
        return dift_features(self.parts, latent, t=c.dift_t, block=c.dift_block, ensemble=c.dift_ensemble,
                             generator=gen)

    def __call__(
        self, frames: np.ndarray, anchor: int, reference: np.ndarray, progress: ProgressFn | None = None
    ) -> np.ndarray:
        out = np.empty_like(np.asarray(frames))
        for i, frame in self.stream(frames, anchor, reference, progress=progress):
            out[i] = frame
        return out

    @torch.no_grad()
    def stream(
        self, frames: Any, anchor: int, reference: np.ndarray, order: list[int] | None = None,
        progress: ProgressFn | None = None,
    ) -> Iterator[tuple[int, np.ndarray]]:
        """``(i, output frame)`` in ``order`` (default 0..T-1); one frame in memory at a time."""
        reference = np.asarray(reference)
        _check_inputs(frames, anchor, reference)
        progress = progress or no_progress
        c, p = self.config, self.parts
        n_frames, h, w, _ = frames.shape
        order = list(range(n_frames)) if order is None else list(order)
        size = working_size(h, w, c.resolution, p.size_multiple)
        grids = attention_grids(p.unet, (size[0] // p.vae_scale, size[1] // p.vae_scale))
        state = CrossImageState(gamma=c.gamma, tau=c.tau)
        done = 0

        def on_step(t: int) -> None:
            state.t = t
            progress(done, len(order))  # lets a cancel land between U-Net calls

        progress(0, len(order))
        with cross_image_attention(p.unet, state):
            try:
                f_anchor = self._dift(self._encode(frames[anchor], size))
                state.set_mode("record_kv")
                ref_noisy = ddim_invert(p, self._encode(reference, size), c.steps, on_step)[-1]
                for i in order:
                    latent = self._encode(frames[i], size)
                    state.set_mode("off")
                    idx = multiscale_topk(self._dift(latent), f_anchor, c.k, grids)
                    state.index = {gh * gw: v for (gh, gw), v in idx.items()}
                    state.q.clear()
                    state.set_mode("record_q" if c.gamma else "off")
                    noisy = ddim_invert(p, latent, c.steps, on_step)[-1]
                    state.set_mode("inject")
                    clean = ddim_denoise(p, adain(noisy, ref_noisy), c.steps, on_step)
                    frame = self._decode(clean, (h, w))
                    done += 1
                    yield i, frame
                    progress(done, len(order))
            finally:
                state.kv.clear()
                state.q.clear()
