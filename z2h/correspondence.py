"""Correspondence between a target frame and the anchor: cosine similarity -> top-k anchor tokens.

Features are (B, C, h, w); tokens are flattened row-major (index = y * w + x), the order attention
layers use. The result ``idx`` (B, Nq, k) feeds :mod:`z2h.attention`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _tokens(f: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> unit-norm tokens (B, h*w, C)."""
    if f.ndim != 4:
        raise ValueError(f"features must be (B, C, h, w), got {tuple(f.shape)}")
    return F.normalize(f.flatten(2).transpose(1, 2), dim=-1)


def cosine_topk(f_tgt: torch.Tensor, f_anc: torch.Tensor, k: int, chunk: int = 2048) -> torch.Tensor:
    """For each target token, the indices (B, Nq, k) of its k most cosine-similar anchor tokens, best first.

    The correlation is computed ``chunk`` target tokens at a time, so memory is O(chunk·Na), not Nq·Na.
    """
    if f_tgt.shape[:2] != f_anc.shape[:2]:
        raise ValueError(f"target features {tuple(f_tgt.shape)} and anchor features {tuple(f_anc.shape)} "
                         "must share batch size and channels")
    return dot_topk(_tokens(f_tgt), _tokens(f_anc), k, chunk=chunk)


def dot_topk(q: torch.Tensor, keys: torch.Tensor, k: int, chunk: int = 2048) -> torch.Tensor:
    """Indices (B, Nq, k) of the k largest dot products q·keysᵀ for tokens q (B, Nq, C), keys (B, Na, C).

    Any score that is a dot product of augmented tokens works (see the offline engine's colour term).
    """
    if not 1 <= k <= keys.shape[1]:
        raise ValueError(f"k must be in 1..{keys.shape[1]} (anchor tokens), got {k}")
    keys_t, c = keys.transpose(1, 2), chunk
    if k == 1:  # argmax is cheaper than topk
        return torch.cat([torch.matmul(q[:, i:i + c], keys_t).argmax(-1, keepdim=True)
                          for i in range(0, q.shape[1], c)], dim=1)
    out = [torch.matmul(q[:, i:i + c], keys_t).topk(k, dim=-1).indices for i in range(0, q.shape[1], c)]
    return torch.cat(out, dim=1)


def scaled_k(k: int, feature_size: tuple[int, int], size: tuple[int, int]) -> int:
    """k for a token grid of ``size`` given k at ``feature_size``: scaled with the token count.

    Half the resolution -> max(k // 4, 1), double -> 4k (the reference code's three scales); clipped to
    the number of tokens.
    """
    ratio = (size[0] * size[1]) / (feature_size[0] * feature_size[1])
    return int(min(max(round(k * ratio), 1), size[0] * size[1])) if ratio >= 1 else max(int(k * ratio), 1)


def multiscale_topk(
    f_tgt: torch.Tensor, f_anc: torch.Tensor, k: int, sizes: list[tuple[int, int]], chunk: int = 2048,
) -> dict[tuple[int, int], torch.Tensor]:
    """Top-k indices for attention layers at several token resolutions ``sizes`` ((h, w) each).

    Features are bilinearly resized to each resolution and k scales with the token count (see
    :func:`scaled_k`), so a layer at half the feature resolution gets max(k // 4, 1) matches and one at
    double resolution 4k.
    """
    base = tuple(f_tgt.shape[-2:])
    out = {}
    for size in dict.fromkeys(tuple(s) for s in sizes):
        ft, fa = f_tgt, f_anc
        if size != base:
            ft = F.interpolate(f_tgt, size=size, mode="bilinear", align_corners=False)
            fa = F.interpolate(f_anc, size=size, mode="bilinear", align_corners=False)
        out[size] = cosine_topk(ft, fa, scaled_k(k, base, size), chunk=chunk)
    return out
