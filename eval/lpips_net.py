"""The LPIPS metric with the offline weights of ``z2h weights fetch`` (no download).

``lpips.LPIPS`` is built with a random backbone (``pnet_rand=True``) and no linear layers, then both are
loaded from the converted cache. :func:`lpips_distance` runs the backbone once per image pair and returns
the standard distance AND the per-pixel map (the ``spatial=True`` map) used for masked LPIPS.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import lpips
    import torch

NETS = {"alex": "alex", "alexnet": "alex", "vgg": "vgg", "vgg16": "vgg"}


@functools.cache
def _build(net: str) -> lpips.LPIPS:
    import warnings

    import lpips

    from z2h.weights import load_backbone, load_lpips_linear

    backbone, lins = load_backbone(net), load_lpips_linear(net)  # FileNotFoundError names the fix
    with warnings.catch_warnings():  # torchvision's "pretrained is deprecated" from inside lpips
        warnings.simplefilter("ignore")
        model = lpips.LPIPS(net=net, pretrained=False, pnet_rand=True, verbose=False)
    # lpips slices keep torchvision's layer indices: "slice2.3.weight" is features "3.weight".
    state = {key: backbone[key.split(".", 1)[1]] for key in model.net.state_dict()}
    if len(state) != len(backbone):
        raise ValueError(f"LPIPS {net}: backbone has {len(backbone)} tensors, lpips expects {len(state)}")
    model.net.load_state_dict(state, strict=True)
    missing, unexpected = model.load_state_dict(lins, strict=False)
    if unexpected or any(key.startswith("lin") and not key.startswith("lins.") for key in missing):
        raise ValueError(f"LPIPS {net}: linear layers do not match (missing {missing}, extra {unexpected})")
    model.eval().requires_grad_(False)
    return model


def lpips_model(net: str = "alex") -> lpips.LPIPS:
    """``lpips.LPIPS`` ("alex" or "vgg") with the converted ImageNet backbone; one instance per process."""
    if net not in NETS:
        raise ValueError(f"unknown LPIPS network {net!r}; expected alex or vgg")
    return _build(NETS[net])


def lpips_distance(
    model: lpips.LPIPS, x0: torch.Tensor, x1: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """LPIPS of image batches (N, 3, H, W) in [-1, 1]: (distances (N,), per-pixel maps (N, H, W)).

    The distance equals ``model(x0, x1)``; the map equals the ``spatial=True`` output (each layer's
    map bilinearly upsampled to H×W and summed). Both come from one backbone pass over both batches.
    """
    import torch
    import torch.nn.functional as F
    from lpips import normalize_tensor

    n, (h, w) = x0.shape[0], x0.shape[2:]
    with torch.inference_mode():
        feats = model.net(model.scaling_layer(torch.cat([x0, x1])))
        dist = x0.new_zeros(n)
        dmap = x0.new_zeros(n, 1, h, w)
        for layer, f in zip(model.lins, feats, strict=True):
            f = normalize_tensor(f)
            d = layer((f[:n] - f[n:]) ** 2)  # (N, 1, h_l, w_l)
            dist += d.mean(dim=(1, 2, 3))
            dmap += F.interpolate(d, size=(h, w), mode="bilinear", align_corners=False)
    return dist, dmap[:, 0]
