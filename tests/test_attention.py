"""The fast attention paths equal the dense masked softmax of the reference code."""

import pytest
import torch

from z2h.attention import (
    dense_masked_attention,
    gather_attention,
    masked_attention,
    selection_mask,
    topk_attention,
)
from z2h.correspondence import cosine_topk


def _qkv(b=2, h=4, nq=96, nk=80, d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, h, nq, d, generator=g), torch.randn(b, h, nk, d, generator=g),
            torch.randn(b, h, nk, d, generator=g))


def _random_idx(b, nq, nk, k, seed=1):
    g = torch.Generator().manual_seed(seed)
    rows = [torch.stack([torch.randperm(nk, generator=g)[:k] for _ in range(nq)]) for _ in range(b)]
    return torch.stack(rows)


def test_gather_equals_dense_for_k1():
    q, k, v = _qkv()
    idx = _random_idx(2, 96, 80, 1)
    dense = dense_masked_attention(q, k, v, idx)
    assert (gather_attention(v, idx) - dense).abs().max() <= 1e-5
    assert (masked_attention(q, k, v, idx) - dense).abs().max() <= 1e-5
    # The gather really is V at the match: row 5 of batch 1, head 2.
    assert torch.equal(gather_attention(v, idx)[1, 2, 5], v[1, 2, idx[1, 5, 0]])


@pytest.mark.parametrize("kk", [2, 7, 40, 80])
def test_topk_equals_dense(kk):
    q, k, v = _qkv()
    idx = _random_idx(2, 96, 80, kk)
    dense = dense_masked_attention(q, k, v, idx)
    # chunk=16 covers the chunk loop (96 queries -> 6 chunks); kk*d >= nk takes the masked-dense branch.
    for chunk in (16, 1024):
        out = topk_attention(q, k, v, idx, chunk=chunk)
        assert (out - dense).abs().max() <= 1e-5
    assert (masked_attention(q, k, v, idx) - dense).abs().max() <= 1e-5


def test_gather_branch_of_topk_with_many_keys():
    # nk large relative to k*d forces the gather branch.
    q, k, v = _qkv(b=1, h=2, nq=50, nk=400, d=8)
    idx = _random_idx(1, 50, 400, 3)
    assert (topk_attention(q, k, v, idx, chunk=7) - dense_masked_attention(q, k, v, idx)).abs().max() <= 1e-5


def test_mask_selects_exactly_the_topk_of_the_correlation():
    g = torch.Generator().manual_seed(3)
    ft, fa = torch.randn(1, 32, 6, 7, generator=g), torch.randn(1, 32, 5, 9, generator=g)
    kk = 5
    idx = cosine_topk(ft, fa, kk)
    tn = torch.nn.functional.normalize(ft.flatten(2), dim=1)
    an = torch.nn.functional.normalize(fa.flatten(2), dim=1)
    corr = tn.transpose(1, 2) @ an  # (1, 42, 45)
    expected = torch.zeros_like(corr).scatter_(-1, corr.topk(kk, dim=-1).indices, 1.0)
    mask = selection_mask(idx, 45)
    assert torch.equal(mask, expected)
    assert mask.sum(-1).eq(kk).all()


def test_bad_shapes_are_rejected():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="idx must be"):
        masked_attention(q, k, v, torch.zeros(2, 95, 1, dtype=torch.long))
    with pytest.raises(ValueError, match="one match"):
        gather_attention(v, torch.zeros(2, 96, 2, dtype=torch.long))
