"""Diffusion Hero-Stage on a tiny random FLUX (diffusion.py, condition_attention.py, models/flux.py)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from diffusers.models.transformers.transformer_flux import (  # noqa: E402
    FluxAttention,
    FluxAttnProcessor,
    FluxPosEmbed,
    FluxTransformer2DModel,
)

from z2h.hero_stage.condition_attention import ConditionAttnProcessor, ConditionKV, condition_mask  # noqa: E402
from z2h.hero_stage.diffusion import DiffusionHeroStage, DiffusionSettings  # noqa: E402
from z2h.models.flux import (  # noqa: E402
    MissingWeightsError,
    latent_ids,
    load_flux,
    pack_latents,
    save_tiny_flux,
    tiny_flux_config,
    unpack_latents,
)


def _triplet(h=32, w=32):
    """Original anchor (gradient), reference (a square recoloured) and a degraded Zero-Stage output."""
    yy, xx = np.mgrid[0:h, 0:w]
    orig = np.stack([xx * 255 // w, yy * 255 // h, np.full_like(xx, 100)], -1).astype(np.uint8)
    ref = orig.copy()
    ref[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = [250, 30, 30]
    zero = ref.copy()
    zero[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = [200, 60, 60]
    return zero, orig, ref


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_flux(tmp_path_factory.mktemp("flux") / "tiny")


def _settings(model_dir, **kw):
    base = dict(
        hero_model=str(model_dir), steps=30, lr=2e-2, rank=8, resolution=16, cond_resolution=16,
        sample_steps=3, warmup_steps=3,
    )
    return DiffusionSettings(**{**base, **kw})


@pytest.fixture(scope="module")
def trained(model_dir):
    stage = DiffusionHeroStage(_settings(model_dir, mode=2))
    calls = []
    stats = stage.fit(*_triplet(), progress=lambda d, t: calls.append((d, t)))
    return stage, stats, calls


# --- loading -----------------------------------------------------------------------------------------


def test_missing_weights_name_the_option(tmp_path):
    with pytest.raises(MissingWeightsError, match="--hero-model PATH"):
        load_flux(None)
    with pytest.raises(MissingWeightsError, match="no such folder"):
        load_flux(tmp_path / "nope")
    (tmp_path / "half" / "transformer").mkdir(parents=True)
    with pytest.raises(MissingWeightsError, match="lacks vae/, scheduler/"):
        load_flux(tmp_path / "half")
    stage = DiffusionHeroStage(DiffusionSettings(hero_model=None))
    with pytest.raises(MissingWeightsError, match="--hero-model"):
        stage.fit(*_triplet())


def test_uncached_hub_id_names_the_option(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # no hub here: fail fast
    with pytest.raises(MissingWeightsError, match="--hero-model nobody/no-such-flux: could not load"):
        load_flux("nobody/no-such-flux")


def test_tiny_parts_round_trip(model_dir):
    parts = load_flux(model_dir)
    assert dict(parts.transformer.config)["num_single_layers"] == tiny_flux_config()["num_single_layers"]
    torch.manual_seed(0)  # save_tiny_flux builds the transformer right after seeding
    fresh = FluxTransformer2DModel(**tiny_flux_config()).state_dict()
    loaded = parts.transformer.state_dict()
    assert fresh.keys() == loaded.keys()
    assert all(torch.equal(fresh[k], loaded[k]) for k in fresh)
    assert parts.prompt_embeds.shape == (1, 4, 32) and parts.pooled_prompt_embeds.shape == (1, 32)
    assert parts.vae_scale_factor == 2 and parts.scheduler.config.use_dynamic_shifting


def test_prompt_is_encoded_with_the_checkpoints_text_encoders(tmp_path):
    path = save_tiny_flux(tmp_path / "with-text", text_encoders=True)
    assert not (path / "prompt_embeds.safetensors").exists() and (path / "tokenizer_2").is_dir()
    red = load_flux(path, prompt="a red cube", max_sequence_length=8)
    blue = load_flux(path, prompt="a blue cube", max_sequence_length=8)
    assert red.prompt_embeds.shape == (1, 8, 32) and red.pooled_prompt_embeds.shape == (1, 32)
    assert (red.prompt_embeds - blue.prompt_embeds).abs().max() > 1e-3  # T5 sequence
    assert (red.pooled_prompt_embeds - blue.pooled_prompt_embeds).abs().max() > 1e-3  # CLIP pooled
    torch.testing.assert_close(
        load_flux(path, prompt="a red cube", max_sequence_length=8).prompt_embeds, red.prompt_embeds
    )


def test_pack_unpack_and_ids():
    z = torch.randn(2, 4, 6, 8)
    tokens = pack_latents(z)
    assert tokens.shape == (2, 12, 16)
    assert torch.equal(unpack_latents(tokens, 6, 8), z)
    ids = latent_ids(6, 8)
    assert ids[-1].tolist() == [0.0, 2.0, 3.0]
    stretched = latent_ids(4, 4, target_hw=(8, 8))  # a half-size condition spans the target's grid
    assert stretched[-1].tolist() == [0.0, 2.0, 2.0]


# --- condition attention -------------------------------------------------------------------------------


def _attention_setup(double: bool):
    torch.manual_seed(3)
    dim, heads = 32, 2
    attn = FluxAttention(
        query_dim=dim,
        dim_head=16,
        heads=heads,
        out_dim=dim,
        bias=True,
        added_kv_proj_dim=dim if double else None,
        context_pre_only=False if double else None,
        pre_only=not double,
        processor=FluxAttnProcessor(),
    ).eval()
    n_text, n_noisy, lens = (3 if double else 0), 6, [4, 4]
    ids = torch.cat([torch.zeros(n_text, 3), latent_ids(4, 6), latent_ids(4, 4), latent_ids(4, 4)])
    rope = FluxPosEmbed(theta=10000, axes_dim=[4, 6, 6])(ids)
    g = torch.Generator().manual_seed(4)
    text = torch.randn(1, n_text, dim, generator=g)
    noisy = torch.randn(1, n_noisy, dim, generator=g)
    conds = torch.randn(1, sum(lens), dim, generator=g)
    return attn, rope, text, noisy, conds, n_text, n_noisy, lens


def _one_pass_reference(attn, rope, text, noisy, conds, n_text, n_noisy, lens):
    """EasyControl's formulation: one sequence; conditions see only themselves, all others see all."""
    total = n_text + n_noisy + sum(lens)
    mask = torch.ones(total, total, dtype=torch.bool)
    mask[n_text + n_noisy :, :] = False
    mask[n_text + n_noisy :, n_text + n_noisy :] = condition_mask(lens)[0, 0]
    image = torch.cat([noisy, conds], dim=1)
    if n_text:
        out, ctx = attn(
            image, encoder_hidden_states=text, image_rotary_emb=rope, attention_mask=mask[None, None]
        )
        return ctx, out[:, :n_noisy], out[:, n_noisy:]
    out = attn(torch.cat([text, image], dim=1), image_rotary_emb=rope, attention_mask=mask[None, None])
    return None, out[:, :n_noisy], out[:, n_noisy:]


def _two_pass(attn, rope, text, noisy, conds, n_text, n_noisy, lens):
    proc = ConditionAttnProcessor("layer")
    cos, sin = rope
    cond_rope = (cos[n_text + n_noisy :], sin[n_text + n_noisy :])
    main_rope = (cos[: n_text + n_noisy], sin[: n_text + n_noisy])
    kv = ConditionKV("record", mask=condition_mask(lens))
    if n_text:
        cond_out, _ = proc(attn, conds, text[:, :0], image_rotary_emb=cond_rope, cond_kv=kv)
        out, ctx = proc(attn, noisy, text, image_rotary_emb=main_rope, cond_kv=ConditionKV("use", kv.store))
        return ctx, out, cond_out
    cond_out = proc(attn, conds, image_rotary_emb=cond_rope, cond_kv=kv)
    out = proc(attn, noisy, image_rotary_emb=main_rope, cond_kv=ConditionKV("use", kv.store))
    return None, out, cond_out


@pytest.mark.parametrize("double", [True, False], ids=["double-stream", "single-stream"])
def test_two_pass_attention_equals_the_masked_joint_attention(double):
    setup = _attention_setup(double)
    with torch.no_grad():
        ref = _one_pass_reference(*setup)
        got = _two_pass(*setup)
    for r, g in zip(ref, got, strict=True):
        if r is not None:
            torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-5)


def test_conditions_ignore_noisy_tokens_and_each_other():
    attn, rope, text, noisy, conds, n_text, n_noisy, lens = _attention_setup(double=True)
    with torch.no_grad():
        _, out, cond_out = _one_pass_reference(attn, rope, text, noisy, conds, n_text, n_noisy, lens)
        _, out2, cond_out2 = _one_pass_reference(attn, rope, text, noisy + 1.0, conds, n_text, n_noisy, lens)
        torch.testing.assert_close(cond_out2, cond_out, rtol=0, atol=1e-6)  # noisy tokens perturbed
        other = conds.clone()
        other[:, lens[0] :] += 1.0  # perturb condition 2 only
        _, out3, cond_out3 = _one_pass_reference(attn, rope, text, noisy, other, n_text, n_noisy, lens)
    torch.testing.assert_close(cond_out3[:, : lens[0]], cond_out[:, : lens[0]], rtol=0, atol=1e-6)
    assert (cond_out3[:, lens[0] :] - cond_out[:, lens[0] :]).abs().max() > 1e-3
    assert (out3 - out).abs().max() > 1e-3  # the noisy tokens do see the conditions


def test_full_model_condition_pass_is_per_condition(trained):
    stage = trained[0]
    zero, orig, _ = _triplet()
    with torch.no_grad():
        conds, ids, size = stage._conditions(zero, orig)
        kv = stage._record(conds, ids, 3.5)
        n1 = conds[0].shape[1]
        kv2 = stage._record([conds[0], conds[1] + 1.0], ids, 3.5)
        x = torch.randn(1, conds[0].shape[1], 16)
        img_ids = latent_ids(size[0] // 2, size[1] // 2)
        v1 = stage._predict(x, torch.tensor(0.5), img_ids, kv, 3.5)
        v2 = stage._predict(x, torch.tensor(0.5), img_ids, kv2, 3.5)
    for layer, (k, _) in kv.store.items():
        k2, _ = kv2.store[layer]
        torch.testing.assert_close(k2[:, :n1], k[:, :n1], rtol=0, atol=1e-5, msg=layer)
        assert (k2[:, n1:] - k[:, n1:]).abs().max() > 1e-4
    assert (v2 - v1).abs().max() > 1e-4  # the prediction depends on condition 2


# --- training, restoring, persistence -------------------------------------------------------------------


def test_training_lowers_the_flow_matching_loss(trained):
    stage, stats, calls = trained
    losses = np.array(stats["losses"])
    assert len(losses) == 30 and np.isfinite(losses).all()
    assert calls[-1] == (30, 30) and len(calls) == 30
    # Loss over fixed (t, noise) draws on the anchor triplet: a low-variance before/after measure.
    # Only the condition LoRAs train and the tiny base is random and frozen, so the noisy path keeps
    # its random output: measured floor here ~0.72 of the initial loss (30-60 steps, lr 2e-2..5e-2).
    assert stats["anchor_loss_after"] < 0.8 * stats["anchor_loss_before"], stats
    assert losses[-10:].mean() < 0.85 * losses[:10].mean(), losses
    # peft starts lora_B at zero: the gradient reached both adapters in every routed layer except the
    # last block's condition queries, whose outputs feed nothing (only condition keys/values are used)
    lora_b = {n: p for n, p in stage.parts.transformer.named_parameters() if "lora_B" in n}
    dead = {n for n in lora_b if n.startswith("single_transformer_blocks.1.attn.to_q.")}
    assert len(lora_b) == 20 and len(dead) == 2
    assert all(lora_b[n].abs().max() > 0 for n in lora_b if n not in dead)
    assert all(lora_b[n].abs().max() == 0 for n in dead)


@pytest.mark.slow
def test_longer_training_learns_this_reference(model_dir):
    stage = DiffusionHeroStage(_settings(model_dir, steps=200, lr=1e-2))
    zero, orig, ref = _triplet()
    stats = stage.fit(zero, orig, ref)
    assert stats["anchor_loss_after"] < 0.7 * stats["anchor_loss_before"], stats  # measured 0.667
    # it fits THIS target, not just a generic shift: the original anchor as target scores worse
    # (measured 1.64 vs 1.72 with the reference recipe: guidance 1.0, uniform t; 1.62 vs 1.75 before)
    assert stage.anchor_loss(zero, orig, ref) < 0.97 * stage.anchor_loss(zero, orig, orig)


def test_adapters_save_and_load_to_identical_output(trained, model_dir, tmp_path):
    stage = trained[0]
    zero, orig, _ = _triplet(20, 28)
    want = stage.restore(zero[None], orig[None])
    out_dir = stage.save_adapters(tmp_path / "lora")
    assert sorted(p.name for p in out_dir.iterdir()) == ["adapters.json", "cond1", "cond2"]
    with pytest.raises(FileExistsError, match="not empty"):
        stage.save_adapters(tmp_path / "lora")

    fresh = DiffusionHeroStage(_settings(model_dir, mode=2))
    info = fresh.load_adapters(out_dir)
    assert info["mode"] == 2 and info["rank"] == 8
    np.testing.assert_array_equal(fresh.restore(zero[None], orig[None]), want)
    with pytest.raises(ValueError, match="mode 2"):
        DiffusionHeroStage(_settings(model_dir, mode=1)).load_adapters(out_dir)


def test_restore_mode2_uses_both_conditions(trained):
    stage = trained[0]
    zero, orig, _ = _triplet(20, 28)  # not a multiple of the latent grid: resized and back
    frames = np.stack([zero, np.roll(zero, 3, axis=1)])
    origs = np.stack([orig, np.roll(orig, 3, axis=1)])
    calls = []
    out = stage.restore(frames, origs, progress=lambda d, t: calls.append((d, t)))
    assert out.shape == frames.shape and out.dtype == np.uint8
    assert calls == [(1, 2), (2, 2)]
    assert out.std() > 1.0  # an image, not a constant
    other = stage.restore(frames[:1], 255 - origs[:1])
    assert np.abs(other.astype(int) - out[:1]).max() > 0  # condition 2 matters in Mode 2


def test_restore_mode1_ignores_condition_2(model_dir):
    stage = DiffusionHeroStage(_settings(model_dir, mode=1, steps=3, eval_draws=0))
    stage.fit(*_triplet())
    assert stage.router.names == ["cond1"]
    zero, orig, _ = _triplet()
    a = stage.restore(zero[None], orig[None])
    b = stage.restore(zero[None], 255 - orig[None])
    assert a.shape == (1, 32, 32, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    c = stage.restore(np.roll(zero, 5, axis=0)[None], orig[None])
    assert np.abs(c.astype(int) - a).max() > 0  # condition 1 does matter


def test_restore_needs_adapters_and_valid_frames(model_dir, trained):
    zero, orig, _ = _triplet()
    with pytest.raises(RuntimeError, match="fit\\(\\) or load_adapters"):
        DiffusionHeroStage(_settings(model_dir)).restore(zero[None], orig[None])
    with pytest.raises(ValueError, match="do not match"):
        trained[0].restore(zero[None], orig[None, :16])


def test_hero_stage_front_delegates_to_the_diffusion_engine(model_dir):
    from z2h.hero_stage import HeroConfig, HeroStage

    cfg = HeroConfig(engine="diffusion", mode=1, hero_model=str(model_dir), steps=2, lora_rank=4)
    cfg.resolution, cfg.cond_resolution, cfg.sample_steps = 16, 16, 2
    hero = HeroStage(cfg)
    assert hero.impl.cfg.rank == 4 and hero.impl.cfg.lr == cfg.lora_lr and hero.impl.cfg.mode == 1
    stats = hero.fit(*_triplet())
    assert stats["engine"] == "diffusion" and stats["steps"] == 2
    zero, orig, _ = _triplet()
    assert hero.restore(zero[None], orig[None]).shape == (1, 32, 32, 3)


def test_diffusion_engine_leaves_the_process_thread_count_alone(model_dir):
    from z2h.hero_stage import HeroConfig, HeroStage

    before = torch.get_num_threads()
    cfg = HeroConfig(engine="diffusion", mode=1, hero_model=str(model_dir), steps=1, lora_rank=4,
                     threads=before + 1)
    cfg.resolution, cfg.cond_resolution, cfg.sample_steps = 16, 16, 1
    hero = HeroStage(cfg)
    hero.fit(*_triplet())
    assert torch.get_num_threads() == before  # fit() used to set it for good


def test_bf16_weights_train_with_fp32_adapters(model_dir):
    """The GPU path (bf16 base, gradient checkpointing) on the CPU: LoRA stays fp32, output is finite."""
    parts = load_flux(model_dir, dtype=torch.bfloat16)
    settings = _settings(model_dir, steps=2, sample_steps=1, gradient_checkpointing=True, eval_draws=0)
    stage = DiffusionHeroStage(settings, parts=parts)
    stats = stage.fit(*_triplet())
    assert np.isfinite(stats["losses"]).all() and stats["steps"] == 2 and stats["anchor_loss_after"] is None
    assert not parts.transformer.gradient_checkpointing  # switched off again for sampling
    lora = [p for n, p in parts.transformer.named_parameters() if "lora_" in n]
    assert lora and all(p.dtype == torch.float32 for p in lora)
    assert parts.transformer.x_embedder.weight.dtype == torch.bfloat16
    zero, orig, _ = _triplet()
    out = stage.restore(zero[None], orig[None])
    assert out.shape == (1, 32, 32, 3) and out.std() > 1.0


def _lora_grads(stage, zero, orig, ref):
    conds, cond_ids, size = stage._conditions(zero, orig)
    x0 = stage._encode(ref[None], size)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(9))
    params = stage.router.parameters()
    for p in params:
        p.grad = None
    img_ids = latent_ids(size[0] // 2, size[1] // 2)
    stage._loss(conds, cond_ids, x0, img_ids, torch.tensor([0.4]), noise).backward()
    return {id(p): torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in params}


def test_gradient_checkpointing_replays_the_routing(trained):
    """Checkpointed blocks are recomputed in backward, after the routing moved on to the noisy pass."""
    stage = trained[0]
    tr = stage.parts.transformer
    zero, orig, ref = _triplet()
    tr.train()
    try:
        want = _lora_grads(stage, zero, orig, ref)
        tr.enable_gradient_checkpointing(stage.router.checkpoint_func())
        got = _lora_grads(stage, zero, orig, ref)
        tr.enable_gradient_checkpointing()  # diffusers' default recomputes with the noisy pass's routing
        try:  # the condition pass is recomputed without its adapters: torch stops, or the gradients are lost
            wrong = _lora_grads(stage, zero, orig, ref)
        except torch.utils.checkpoint.CheckpointError:
            wrong = None
    finally:
        tr.disable_gradient_checkpointing()
        tr.eval()
    assert all(torch.allclose(got[k], want[k], rtol=1e-4, atol=1e-6) for k in want)
    assert max(float(want[k].abs().max()) for k in want) > 1e-4
    assert wrong is None or not all(torch.allclose(wrong[k], want[k], rtol=1e-2, atol=1e-6) for k in want)
