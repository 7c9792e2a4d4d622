"""Per-token routing of the per-condition LoRAs (z2h/hero_stage/lora_routing.py)."""

import pytest

torch = pytest.importorskip("torch")
from diffusers import FluxTransformer2DModel  # noqa: E402

from z2h.hero_stage.lora_routing import add_condition_adapters, load_condition_adapters  # noqa: E402
from z2h.models.flux import tiny_flux_config  # noqa: E402

N_COND = 4  # tokens per condition; image-stream layout in these tests: [noisy 0:4 | cond1 4:8 | cond2 8:12]


METHODS = pytest.mark.parametrize("method", ["gather", "mask"])


def _transformer_with_adapters(rank: int = 4, alpha: float = 8.0, method: str = "gather"):
    torch.manual_seed(0)
    tr = FluxTransformer2DModel(**tiny_flux_config()).requires_grad_(False)
    router = add_condition_adapters(tr, ["cond1", "cond2"], rank=rank, alpha=alpha, method=method)
    # peft initialises lora_B to zero (a no-op adapter); give every adapter real weights
    g = torch.Generator().manual_seed(1)
    for n, p in tr.named_parameters():
        if "lora_B" in n:
            p.data = torch.randn(p.shape, generator=g) * 0.5
    return tr, router


def _lora_delta(layer, name, x):
    """B A x * scale from the weights themselves (calling lora_B would go through the routing hook)."""
    return x @ layer.lora_A[name].weight.T @ layer.lora_B[name].weight.T * layer.scaling[name]


@METHODS
def test_each_adapter_acts_only_on_its_own_tokens(method):
    tr, router = _transformer_with_adapters(method=method)
    layer = tr.transformer_blocks[0].attn.to_q
    x = torch.randn(1, 3 * N_COND, layer.in_features, generator=torch.Generator().manual_seed(2))
    router.off()
    base = layer(x)
    assert torch.equal(base, layer.base_layer(x))  # no routed token: exactly the base model

    router.set_spans({"cond1": (4, 8), "cond2": (8, 12)}, 12)
    routed = layer(x)
    torch.testing.assert_close(routed[:, :4], base[:, :4], rtol=0, atol=0)  # noisy tokens untouched
    d1 = _lora_delta(layer, "cond1", x)
    d2 = _lora_delta(layer, "cond2", x)
    torch.testing.assert_close(routed[:, 4:8], base[:, 4:8] + d1[:, 4:8])
    torch.testing.assert_close(routed[:, 8:12], base[:, 8:12] + d2[:, 8:12])
    assert (routed[:, 4:8] - base[:, 4:8]).abs().mean() > 0.1  # the adapter really does something


@METHODS
def test_zeroing_one_mask_leaves_other_tokens_at_the_base_model(method):
    tr, router = _transformer_with_adapters(method=method)
    layer = tr.single_transformer_blocks[0].attn.to_v
    x = torch.randn(1, 3 * N_COND, layer.in_features, generator=torch.Generator().manual_seed(3))
    router.off()
    base = layer(x)
    router.set_spans({"cond1": (4, 8)}, 12)  # cond2's mask is zero
    only1 = layer(x)
    torch.testing.assert_close(only1[:, 8:], base[:, 8:], rtol=0, atol=0)
    torch.testing.assert_close(only1[:, :4], base[:, :4], rtol=0, atol=0)
    assert not torch.allclose(only1[:, 4:8], base[:, 4:8])


@METHODS
def test_adapters_are_independent(method):
    tr, router = _transformer_with_adapters(method=method)
    layer = tr.transformer_blocks[0].attn.to_out[0]
    x = torch.randn(1, 3 * N_COND, layer.in_features, generator=torch.Generator().manual_seed(4))
    router.set_spans({"cond1": (4, 8), "cond2": (8, 12)}, 12)
    before = layer(x)
    with torch.no_grad():  # change cond2's weights: cond1's tokens must not notice
        layer.lora_A["cond2"].weight.add_(1.0)
    after = layer(x)
    torch.testing.assert_close(after[:, :8], before[:, :8], rtol=0, atol=0)
    assert not torch.allclose(after[:, 8:], before[:, 8:])


@METHODS
def test_text_prefix_of_single_stream_blocks_is_never_adapted(method):
    tr, router = _transformer_with_adapters(method=method)
    layer = tr.single_transformer_blocks[1].attn.to_k
    n_text = 3
    x = torch.randn(1, n_text + 3 * N_COND, layer.in_features, generator=torch.Generator().manual_seed(5))
    router.off()
    base = layer(x)
    router.set_spans({"cond1": (4, 8), "cond2": (8, 12)}, 12)  # masks over image tokens only
    routed = layer(x)
    torch.testing.assert_close(routed[:, : n_text + 4], base[:, : n_text + 4], rtol=0, atol=0)
    assert not torch.allclose(routed[:, n_text + 4 :], base[:, n_text + 4 :])


def test_targets_exclude_norm_and_text_projections():
    tr, _ = _transformer_with_adapters()
    adapted = {n.rsplit(".lora_A", 1)[0] for n, _ in tr.named_parameters() if ".lora_A." in n}
    assert "transformer_blocks.0.attn.to_out.0" in adapted
    assert "single_transformer_blocks.0.attn.to_q" in adapted
    assert not any("norm" in n or "add_" in n or "ff" in n or "proj_out" in n for n in adapted)


@METHODS
def test_bad_masks_are_rejected(method):
    tr, router = _transformer_with_adapters(method=method)
    with pytest.raises(KeyError, match="cond3"):
        router.set_spans({"cond3": (0, 4)}, 12)
    router.set_spans({"cond1": (0, 4)}, 12)
    layer = tr.transformer_blocks[0].attn.to_q
    with pytest.raises(RuntimeError, match="12 tokens, layer sees 5"):
        layer(torch.randn(1, 5, layer.in_features))


def test_save_and_load_round_trip(tmp_path):
    tr, router = _transformer_with_adapters(rank=4, alpha=8.0)
    router.set_spans({"cond1": (4, 8), "cond2": (8, 12)}, 12)
    layer = tr.transformer_blocks[0].attn.to_v
    x = torch.randn(1, 12, layer.in_features, generator=torch.Generator().manual_seed(6))
    want = layer(x)
    router.save(tmp_path / "lora", meta={"mode": 2})

    torch.manual_seed(0)
    fresh = FluxTransformer2DModel(**tiny_flux_config()).requires_grad_(False)
    router2, info = load_condition_adapters(fresh, tmp_path / "lora")
    assert info["adapters"] == ["cond1", "cond2"] and info["mode"] == 2
    assert fresh.transformer_blocks[0].attn.to_v.scaling["cond1"] == pytest.approx(2.0)  # alpha 8 / rank 4
    router2.set_spans({"cond1": (4, 8), "cond2": (8, 12)}, 12)
    torch.testing.assert_close(fresh.transformer_blocks[0].attn.to_v(x), want, rtol=0, atol=0)


def test_load_names_the_missing_file(tmp_path):
    tr = FluxTransformer2DModel(**tiny_flux_config())
    with pytest.raises(FileNotFoundError, match="adapters.json"):
        load_condition_adapters(tr, tmp_path)
    (tmp_path / "adapters.json").write_text('{"adapters": ["cond1"]}')
    with pytest.raises(FileNotFoundError, match="cond1"):
        load_condition_adapters(tr, tmp_path)


def _full_forward(tr, router, seed=7, routed=True):
    """One tiny-FLUX forward over [noisy 0:4 | cond1 4:8 | cond2 8:12] image tokens + 3 text tokens, with
    a loss on every output token; returns the output and the LoRA gradients."""
    from z2h.models.flux import latent_ids

    g = torch.Generator().manual_seed(seed)
    cfg = tiny_flux_config()
    x = torch.randn(1, 3 * N_COND, cfg["in_channels"], generator=g)
    text = torch.randn(1, 3, cfg["joint_attention_dim"], generator=g)
    pooled = torch.randn(1, cfg["pooled_projection_dim"], generator=g)
    ids = torch.cat([latent_ids(4, 4)] * 3)
    if routed:
        router.set_spans({"cond1": (4, 8), "cond2": (8, 12)}, 12)
    else:
        router.off()
    params = router.parameters()
    for p in params:
        p.requires_grad_(True)
        p.grad = None
    out = tr(hidden_states=x, encoder_hidden_states=text, pooled_projections=pooled,
             timestep=torch.tensor([0.3]), img_ids=ids, txt_ids=torch.zeros(3, 3),
             guidance=torch.tensor([1.0])).sample
    if routed:  # unrouted, the output does not depend on any adapter (nothing to differentiate)
        (out ** 2).mean().backward()
    return out.detach(), [None if p.grad is None else p.grad.clone() for p in params]


def test_route_before_compute_equals_the_masked_adapters():
    """Gather -> per-condition LoRA -> scatter gives the masked implementation's outputs and gradients."""
    tr, router = _transformer_with_adapters(method="mask")
    want, want_grads = _full_forward(tr, router)
    router.detach()
    from z2h.hero_stage.lora_routing import TokenRouter

    gather = TokenRouter(tr, ["cond1", "cond2"], "gather")
    gather.attach()
    got, got_grads = _full_forward(tr, gather)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
    assert len(got_grads) == len(want_grads) == 40
    for a, b in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    assert max(float(g.abs().max()) for g in want_grads) > 1e-3  # the gradients are not trivially zero
    gather.off()
    base, _ = _full_forward(tr, gather, routed=False)
    assert (got - base).abs().max() > 1e-3  # the adapters do act on the output


@METHODS
def test_noisy_pass_costs_no_adapter_compute_only_when_gathering(method):
    """Routes off (the noisy/text pass): gather runs no LoRA matmul; the mask method runs all of them."""
    tr, router = _transformer_with_adapters(method=method)
    rows = []
    for module in tr.modules():
        if hasattr(module, "lora_A"):
            for a in module.lora_A.values():
                a.register_forward_hook(lambda m, i, o: rows.append(i[0].shape[-2]))
    off, _ = _full_forward(tr, router, routed=False)
    noisy_rows, rows[:] = sum(rows), []
    routed, _ = _full_forward(tr, router)
    if method == "gather":
        assert noisy_rows == 0
        # each adapter sees only its own 4 tokens (x2 adapters) in every routed layer
        assert set(rows) == {N_COND}
    else:
        assert noisy_rows > 0 and N_COND not in set(rows)  # every adapter on every token
    router.detach()
    tr.disable_adapters()
    plain = tr(hidden_states=torch.zeros(1, 12, 16), encoder_hidden_states=torch.zeros(1, 3, 32),
               pooled_projections=torch.zeros(1, 32), timestep=torch.tensor([0.3]),
               img_ids=torch.zeros(12, 3), txt_ids=torch.zeros(3, 3), guidance=torch.tensor([1.0])).sample
    assert plain.shape == off.shape


def test_bf16_base_with_bf16_adapters_matches_the_masked_adapters():
    outs = {}
    for method in ("mask", "gather"):
        tr, router = _transformer_with_adapters(method=method)
        tr.to(torch.bfloat16)
        with torch.no_grad():
            outs[method] = _full_forward_nograd(tr, router)
        assert all(p.dtype == torch.bfloat16 for p in router.parameters())
    torch.testing.assert_close(outs["gather"], outs["mask"], rtol=2e-2, atol=2e-2)


def _full_forward_nograd(tr, router):
    from z2h.models.flux import latent_ids

    g = torch.Generator().manual_seed(7)
    router.set_spans({"cond1": (4, 8), "cond2": (8, 12)}, 12)
    return tr(hidden_states=torch.randn(1, 12, 16, generator=g).bfloat16(),
              encoder_hidden_states=torch.randn(1, 3, 32, generator=g).bfloat16(),
              pooled_projections=torch.randn(1, 32, generator=g).bfloat16(),
              timestep=torch.tensor([0.3]).bfloat16(), img_ids=torch.cat([latent_ids(4, 4)] * 3),
              txt_ids=torch.zeros(3, 3), guidance=torch.tensor([1.0]).bfloat16()).sample.float()
