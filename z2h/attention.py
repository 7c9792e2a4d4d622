"""Masked cross-image attention: the core of the Zero-Stage.

Queries come from the target frame, keys/values from the reference (edited anchor). Each target token
may attend only to its top-k anchor matches ``idx`` (from :mod:`z2h.correspondence`). The reference
code adds ``100 * M`` (M = 1 on the k selected keys, 0 elsewhere) to the scores before the softmax;
the other keys then weigh at most ``e^-100`` relative to the selected ones, so the result equals a
softmax over the k selected keys only. That is what :func:`topk_attention` computes in O(N·k), and for
k = 1 the softmax is one-hot, so :func:`gather_attention` just copies V at the match (no scores at all).

Shapes: ``q`` (B, heads, Nq, d); ``k``, ``v`` (B, heads, Nk, d); ``idx`` (B, Nq, k) long, indices into
the Nk keys, the same for every head. Tokens are flattened row-major from (h, w).

Two knobs of the method belong to the caller (the attention processor), not to this module:
- γ (query blend): ``q = γ · q_inverted_target + (1 - γ) · q_current`` before calling here;
- τ (query temperature): ``q = q * τ`` (equivalently ``scale = τ / sqrt(d)``); with k = 1 neither matters.
"""

from __future__ import annotations

import math

import torch


def _scale(q: torch.Tensor, scale: float | None) -> float:
    return 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale


def _check(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, idx: torch.Tensor) -> None:
    if q.ndim != 4 or k.ndim != 4 or v.shape[:3] != k.shape[:3]:
        raise ValueError(f"expected q (B, heads, Nq, d) and k/v (B, heads, Nk, d), got {tuple(q.shape)}, "
                         f"{tuple(k.shape)}, {tuple(v.shape)}")
    if idx.ndim != 3 or idx.shape[:2] != (q.shape[0], q.shape[2]):
        raise ValueError(f"idx must be (B, Nq, k) = ({q.shape[0]}, {q.shape[2]}, k), got {tuple(idx.shape)}")


def selection_mask(idx: torch.Tensor, num_keys: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """M (B, Nq, Nk): 1 on each query's selected keys ``idx`` (B, Nq, k), 0 elsewhere."""
    mask = torch.zeros(*idx.shape[:2], num_keys, dtype=dtype, device=idx.device)
    return mask.scatter_(-1, idx, 1.0)


def dense_masked_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, idx: torch.Tensor, *,
    mask_weight: float = 100.0, scale: float | None = None,
) -> torch.Tensor:
    """softmax(q·kᵀ·scale + mask_weight·M) · v with the full (Nq × Nk) score matrix, as the reference code.

    O(Nq·Nk) time and memory: kept for checking the fast paths. Weights below the smallest normal float
    (the e^-100 of unselected keys) are set to 0: as denormals they make the CPU matmul ~100x slower.
    """
    _check(q, k, v, idx)
    scores = torch.matmul(q, k.transpose(-1, -2)).mul_(_scale(q, scale))
    scores.add_(selection_mask(idx, k.shape[2], scores.dtype).mul_(mask_weight).unsqueeze(1))
    probs = scores.softmax(dim=-1)
    del scores
    probs.masked_fill_(probs < torch.finfo(probs.dtype).tiny, 0.0)
    return torch.matmul(probs, v)


def gather_attention(v: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """k = 1: the one-hot softmax picks V at each query's match. v (B, h, Nk, d), idx (B, Nq[, 1])."""
    if idx.ndim == 3:
        if idx.shape[-1] != 1:
            raise ValueError(f"gather_attention needs one match per query, got idx {tuple(idx.shape)}")
        idx = idx[..., 0]
    b, h, _, d = v.shape
    return torch.gather(v, 2, idx[:, None, :, None].expand(b, h, idx.shape[1], d))


def topk_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, idx: torch.Tensor, *,
    scale: float | None = None, chunk: int = 1024,
) -> torch.Tensor:
    """Softmax over only each query's k selected keys (exact top-k attention), in query chunks.

    Per chunk it gathers the selected keys/values (O(chunk·k·d) memory); when k·d exceeds Nk it is
    cheaper to compute the chunk's full scores and mask the rest with -inf, which gives the same result.
    """
    _check(q, k, v, idx)
    s = _scale(q, scale)
    b, h, nq, d = q.shape
    nk, kk = k.shape[2], idx.shape[2]
    out = torch.empty(b, h, nq, v.shape[-1], dtype=v.dtype, device=v.device)
    for i in range(0, nq, chunk):
        qc, ic = q[:, :, i:i + chunk], idx[:, i:i + chunk]
        n = qc.shape[2]
        if kk * d >= nk:
            scores = torch.matmul(qc, k.transpose(-1, -2)).mul_(s)
            keep = selection_mask(ic, nk, torch.bool).unsqueeze(1)
            scores.masked_fill_(~keep, float("-inf"))
            out[:, :, i:i + n] = torch.matmul(scores.softmax(dim=-1), v)
        else:
            flat = ic.reshape(b, 1, n * kk, 1)
            kg = torch.gather(k, 2, flat.expand(b, h, n * kk, d)).view(b, h, n, kk, d)
            vg = torch.gather(v, 2, flat.expand(b, h, n * kk, v.shape[-1])).view(b, h, n, kk, -1)
            w = torch.einsum("bhqd,bhqkd->bhqk", qc, kg).mul_(s).softmax(dim=-1)
            out[:, :, i:i + n] = torch.einsum("bhqk,bhqkd->bhqd", w, vg)
    return out


def masked_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, idx: torch.Tensor, *, scale: float | None = None,
) -> torch.Tensor:
    """Masked cross-image attention by the cheapest exact path: a gather for k = 1, else top-k."""
    _check(q, k, v, idx)
    if idx.shape[-1] == 1:
        return gather_attention(v, idx)
    return topk_attention(q, k, v, idx, scale=scale)
