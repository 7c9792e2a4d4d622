"""Deterministic DDIM (eta = 0) inversion and denoising with the empty prompt and no guidance.

Both directions use the same update, :func:`ddim_step`, between two noise levels; inversion walks the
timesteps upwards, evaluating the U-Net at the next (noisier) timestep on the current latent, which is
the usual DDIM-inversion approximation. ``on_step(t)`` runs before every U-Net call: the Zero-Stage sets
the attention processors' timestep there and checks for cancellation.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from z2h.models.sd import SDParts


def ddim_timesteps(scheduler, steps: int) -> list[int]:
    """The scheduler's DDIM timesteps for ``steps`` steps, noisiest first (e.g. 951 ... 1 for SD 2.1)."""
    if steps < 1:
        raise ValueError(f"DDIM steps must be >= 1, got {steps}")
    scheduler.set_timesteps(steps)
    return [int(t) for t in scheduler.timesteps]


def _alpha(scheduler, t: int | None) -> torch.Tensor:
    """alpha_cumprod at timestep t; None = the clean end of the chain (the scheduler's final alpha)."""
    return scheduler.final_alpha_cumprod if t is None else scheduler.alphas_cumprod[t]


def ddim_step(
    x: torch.Tensor, model_out: torch.Tensor, a_from: torch.Tensor, a_to: torch.Tensor, prediction_type: str
) -> torch.Tensor:
    """Move latent ``x`` from noise level ``a_from`` (alpha_cumprod) to ``a_to`` along the predicted noise."""
    a_from, a_to = a_from.to(x.device, torch.float32), a_to.to(x.device, torch.float32)
    x32, out = x.float(), model_out.float()
    if prediction_type == "epsilon":
        eps = out
        x0 = (x32 - (1 - a_from).sqrt() * eps) / a_from.sqrt()
    elif prediction_type == "v_prediction":
        x0 = a_from.sqrt() * x32 - (1 - a_from).sqrt() * out
        eps = a_from.sqrt() * out + (1 - a_from).sqrt() * x32
    else:
        raise ValueError(f"unsupported scheduler prediction_type {prediction_type!r} "
                         "(epsilon or v_prediction)")
    return (a_to.sqrt() * x0 + (1 - a_to).sqrt() * eps).to(x.dtype)


def _unet(parts: SDParts, x: torch.Tensor, t: int) -> torch.Tensor:
    emb = parts.empty_embeds.expand(x.shape[0], -1, -1)
    return parts.unet(x.to(parts.dtype), t, encoder_hidden_states=emb, return_dict=False)[0]


@torch.no_grad()
def ddim_invert(
    parts: SDParts, latent: torch.Tensor, steps: int, on_step: Callable[[int], None] | None = None
) -> list[torch.Tensor]:
    """Invert a clean latent; returns the latents [x_0, x_t1, ..., x_tn], least to most noisy.

    Latents keep their own dtype (use float32 even for a float16 U-Net: the chain accumulates error).
    """
    ts = ddim_timesteps(parts.scheduler, steps)[::-1]
    kind = parts.scheduler.config.prediction_type
    out, x, prev = [latent], latent, None
    for t in ts:
        if on_step:
            on_step(t)
        x = ddim_step(x, _unet(parts, x, t), _alpha(parts.scheduler, prev), _alpha(parts.scheduler, t), kind)
        out.append(x)
        prev = t
    return out


@torch.no_grad()
def ddim_denoise(
    parts: SDParts, latent: torch.Tensor, steps: int, on_step: Callable[[int], None] | None = None
) -> torch.Tensor:
    """Denoise a latent at the noisiest DDIM timestep down to a clean latent."""
    ts = ddim_timesteps(parts.scheduler, steps)
    kind = parts.scheduler.config.prediction_type
    x = latent
    for i, t in enumerate(ts):
        if on_step:
            on_step(t)
        nxt = ts[i + 1] if i + 1 < len(ts) else None
        x = ddim_step(x, _unet(parts, x, t), _alpha(parts.scheduler, t), _alpha(parts.scheduler, nxt), kind)
    return x
