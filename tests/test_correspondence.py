"""Cosine top-k correspondence and its multi-scale variant."""

import pytest
import torch
import torch.nn.functional as F

from z2h.correspondence import cosine_topk, multiscale_topk, scaled_k


def test_chunking_does_not_change_results():
    g = torch.Generator().manual_seed(0)
    ft, fa = torch.randn(2, 16, 12, 10, generator=g), torch.randn(2, 16, 9, 11, generator=g)
    full = cosine_topk(ft, fa, 4, chunk=10_000)
    for chunk in (1, 7, 64):
        assert torch.equal(cosine_topk(ft, fa, 4, chunk=chunk), full)
    assert full.shape == (2, 120, 4) and full.dtype == torch.long


def test_shifted_features_match_their_source():
    # A translated feature map: token (y, x) of the target must match anchor token (y, x - 3).
    g = torch.Generator().manual_seed(1)
    fa = torch.randn(1, 64, 8, 12, generator=g)
    ft = torch.roll(fa, shifts=3, dims=-1)
    idx = cosine_topk(ft, fa, 1)[0, :, 0]
    ys, xs = torch.meshgrid(torch.arange(8), torch.arange(12), indexing="ij")
    assert torch.equal(idx, (ys * 12 + (xs - 3) % 12).flatten())


def test_cosine_ignores_feature_magnitude():
    g = torch.Generator().manual_seed(2)
    ft, fa = torch.randn(1, 8, 4, 4, generator=g), torch.randn(1, 8, 4, 4, generator=g)
    scale = torch.rand(1, 1, 4, 4, generator=g) * 10 + 0.1
    assert torch.equal(cosine_topk(ft * scale, fa, 3), cosine_topk(ft, fa, 3))


def test_scaled_k_follows_the_reference_scales():
    assert scaled_k(1, (32, 32), (16, 16)) == 1
    assert scaled_k(16, (32, 32), (16, 16)) == 4
    assert scaled_k(7, (32, 32), (16, 16)) == 1
    assert scaled_k(16, (32, 32), (64, 64)) == 64
    assert scaled_k(16, (32, 32), (32, 32)) == 16
    assert scaled_k(100, (4, 4), (8, 8)) == 64  # clipped to the token count


def test_multiscale_topk_sizes_and_resizing():
    g = torch.Generator().manual_seed(3)
    ft, fa = torch.randn(1, 16, 8, 8, generator=g), torch.randn(1, 16, 8, 8, generator=g)
    out = multiscale_topk(ft, fa, 4, [(8, 8), (4, 4), (16, 16)])
    assert {s: tuple(i.shape) for s, i in out.items()} == {(8, 8): (1, 64, 4), (4, 4): (1, 16, 1),
                                                            (16, 16): (1, 256, 16)}
    assert torch.equal(out[(8, 8)], cosine_topk(ft, fa, 4))
    down = F.interpolate(ft, size=(4, 4), mode="bilinear", align_corners=False)
    down_a = F.interpolate(fa, size=(4, 4), mode="bilinear", align_corners=False)
    assert torch.equal(out[(4, 4)], cosine_topk(down, down_a, 1))


def test_bad_k_and_shapes():
    f = torch.randn(1, 4, 3, 3)
    with pytest.raises(ValueError, match="k must be in 1..9"):
        cosine_topk(f, f, 10)
    with pytest.raises(ValueError, match="share batch size and channels"):
        cosine_topk(f, torch.randn(1, 5, 3, 3), 1)
