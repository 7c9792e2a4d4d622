"""DIFT features (Tang et al. 2023) from a Stable Diffusion U-Net, for the Zero-Stage's correspondence.

The clean VAE latent is noised to timestep ``t`` (261 for SD 2.1) with ``ensemble`` noise draws in one
batch, the U-Net runs with the empty prompt, and the output of ``up_blocks[block]`` (after its upsampler,
stride 16 of the image for SD) is averaged over the draws. The forward pass is cut right after that
block, since nothing later is needed.
"""

from __future__ import annotations

import torch

from z2h.models.sd import SDParts


class _Stop(Exception):
    """Raised by the hook to end the U-Net forward once the wanted block has run."""


@torch.no_grad()
def dift_features(
    parts: SDParts, latent: torch.Tensor, *, t: int = 261, block: int = 1, ensemble: int = 8,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """DIFT features (B, C, h, w) of clean latents (B, 4, H/8, W/8), averaged over ``ensemble`` draws."""
    unet = parts.unet
    if not 0 <= block < len(unet.up_blocks):
        raise ValueError(f"DIFT block must be in 0..{len(unet.up_blocks) - 1}, got {block}")
    b = latent.shape[0]
    x = latent.repeat_interleave(ensemble, dim=0)
    noise = torch.randn(x.shape, generator=generator, device="cpu", dtype=torch.float32)
    tt = torch.tensor([t], dtype=torch.long)
    noisy = parts.scheduler.add_noise(x.float().cpu(), noise, tt).to(x.device, parts.dtype)
    feats: list[torch.Tensor] = []

    def hook(module, args, output):
        feats.append(output[0] if isinstance(output, tuple) else output)
        raise _Stop

    handle = unet.up_blocks[block].register_forward_hook(hook)
    try:
        unet(noisy, t, encoder_hidden_states=parts.empty_embeds.expand(noisy.shape[0], -1, -1))
    except _Stop:
        pass
    finally:
        handle.remove()
    f = feats[0].float()
    return f.view(b, ensemble, *f.shape[1:]).mean(dim=1)
