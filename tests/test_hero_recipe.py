"""The diffusion Hero-Stage follows the reference recipe by default (guidance, timesteps, caption, sizes)
and its memory options work, on a tiny random FLUX (z2h/hero_stage/diffusion.py, z2h/models/flux.py)."""

import argparse
import gc
import weakref

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from z2h.hero_stage import HeroConfig  # noqa: E402
from z2h.hero_stage.diffusion import DiffusionHeroStage, DiffusionSettings, sample_timestep  # noqa: E402
from z2h.models.flux import load_flux, on_device, save_tiny_flux  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _triplet(h=32, w=32):
    yy, xx = np.mgrid[0:h, 0:w]
    orig = np.stack([xx * 255 // w, yy * 255 // h, np.full_like(xx, 100)], -1).astype(np.uint8)
    ref = orig.copy()
    ref[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = [250, 30, 30]
    return ref // 2 + orig // 2, orig, ref


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_flux(tmp_path_factory.mktemp("flux") / "tiny")


@pytest.fixture(scope="module")
def text_model_dir(tmp_path_factory):
    return save_tiny_flux(tmp_path_factory.mktemp("flux") / "text", text_encoders=True)


def _settings(model_dir, **kw):
    base = dict(hero_model=str(model_dir), steps=2, lr=1e-2, rank=4, resolution=16, cond_resolution=16,
                sample_steps=2, warmup_steps=1, eval_draws=0)
    return DiffusionSettings(**{**base, **kw})


class _Calls:
    """Records the keyword inputs of every transformer forward (which pass, guidance, text, tokens)."""

    def __init__(self, transformer):
        self.calls = []
        self.handle = transformer.register_forward_pre_hook(self, with_kwargs=True)

    def __call__(self, module, args, kwargs):
        g = kwargs.get("guidance")
        self.calls.append({"noisy": kwargs["encoder_hidden_states"].shape[1] > 0,
                           "tokens": kwargs["hidden_states"].shape[1],
                           "guidance": None if g is None else float(g[0]),
                           "text": kwargs["encoder_hidden_states"].detach().clone(),
                           "pooled": kwargs["pooled_projections"].detach().clone()})


# --- defaults pinned to the reference recipe ----------------------------------------------------------


def test_defaults_are_the_reference_recipe():
    s = DiffusionSettings()
    assert (s.guidance, s.train_guidance) == (3.5, 1.0)  # sample at 3.5, train at 1.0
    assert s.timesteps == "uniform"
    assert (s.prompt, s.caption_dropout) == ("", 0.1)
    assert s.cond_resolution == 512 and s.target_resolution == 768  # Mode 2: conditions 512, target 768
    assert DiffusionSettings(mode=1).target_resolution == 512
    assert DiffusionSettings(resolution=640).target_resolution == 640
    assert (s.rank, s.lr, s.steps, s.sample_steps, s.lora_dtype) == (128, 1e-4, 600, 25, "fp32")
    assert (s.routing, s.base_storage) == ("gather", "bf16")
    assert not (s.offload or s.vae_tiling or s.vae_slicing)
    from_config = DiffusionSettings.from_hero(HeroConfig(engine="diffusion"))
    assert from_config == s  # HeroConfig's defaults are the same recipe


def test_hero_config_reaches_every_option_and_checks_it():
    cfg = HeroConfig(engine="diffusion", mode=1, prompt="a red cube", caption_dropout=0.0,
                     cond_resolution=256, resolution=384, train_guidance=2.0, timesteps="logit_normal",
                     lora_dtype="bf16", offload=True, vae_tiling=True, vae_slicing=True)
    s = DiffusionSettings.from_hero(cfg)
    assert (s.prompt, s.caption_dropout, s.cond_resolution) == ("a red cube", 0.0, 256)
    assert s.target_resolution == 384
    assert (s.train_guidance, s.timesteps, s.lora_dtype) == (2.0, "logit_normal", "bf16")
    assert s.offload and s.vae_tiling and s.vae_slicing
    assert "prompt" in cfg.settings() and "prompt" not in HeroConfig().settings()  # offline keys unchanged
    for bad, match in [(dict(timesteps="sigmoid"), "timesteps"), (dict(lora_dtype="fp16"), "lora_dtype"),
                       (dict(caption_dropout=1.5), "caption_dropout"), (dict(cond_resolution=8), "cond_res")]:
        with pytest.raises(ValueError, match=match):
            HeroConfig(engine="diffusion", **bad)
    for bad in (dict(timesteps="sigmoid"), dict(lora_dtype="fp16"), dict(caption_dropout=-0.1),
                dict(routing="peft"), dict(base_storage="int4")):
        with pytest.raises(ValueError, match=next(iter(bad))):
            DiffusionSettings(**bad)


def test_cli_reaches_caption_sizes_and_memory_options():
    from z2h.edit_cli import add_arguments, build_config

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    base = ["--video", "v", "--anchor", "0", "--reference", "r", "--out", "o", "--engine", "diffusion"]
    hero = build_config(parser.parse_args(base)).hero
    assert (hero.prompt, hero.resolution, hero.cond_resolution, hero.offload) == ("", None, 512, False)
    args = parser.parse_args([*base, "--caption", "a red car", "--hero-resolution", "640",
                              "--cond-resolution", "320", "--low-memory", "--fp8-base"])
    hero = build_config(args).hero
    assert (hero.prompt, hero.resolution, hero.cond_resolution) == ("a red car", 640, 320)
    assert hero.offload and hero.vae_tiling and hero.vae_slicing and hero.base_storage == "fp8"


def test_uniform_timesteps_give_small_t_its_share():
    g = torch.Generator().manual_seed(0)
    uniform = torch.cat([sample_timestep("uniform", g) for _ in range(20000)])
    logit = torch.cat([sample_timestep("logit_normal", g) for _ in range(20000)])
    assert abs(float((uniform < 0.1).float().mean()) - 0.10) < 0.01
    assert abs(float((logit < 0.1).float().mean()) - 0.014) < 0.004  # Phi(logit(0.1)) = 1.4%
    assert 0 < float(uniform.min()) and float(uniform.max()) < 1
    with pytest.raises(ValueError, match="uniform or logit_normal"):
        sample_timestep("shifted", g)


# --- behaviour ----------------------------------------------------------------------------------------------


def test_training_uses_guidance_1_and_sampling_3_5(model_dir, monkeypatch):
    import z2h.hero_stage.diffusion as engine

    densities = []
    real = engine.sample_timestep
    monkeypatch.setattr(engine, "sample_timestep", lambda d, *a: densities.append(d) or real(d, *a))
    stage = DiffusionHeroStage(_settings(model_dir, mode=2))
    stage._load()
    calls = _Calls(stage.parts.transformer)
    stage.fit(*_triplet())
    assert densities == ["uniform", "uniform"]  # t drawn from the configured density every step
    trained, calls.calls = calls.calls, []
    zero, orig, _ = _triplet()
    stage.restore(zero[None], orig[None])
    assert len(trained) == 4 and {c["guidance"] for c in trained} == {1.0}  # 2 steps x (conditions, noisy)
    assert len(calls.calls) == 3 and {c["guidance"] for c in calls.calls} == {3.5}  # conditions once, 2 steps


def test_conditions_and_target_have_their_own_sizes(model_dir):
    stage = DiffusionHeroStage(_settings(model_dir, mode=2, resolution=32, cond_resolution=16, steps=1))
    stage._load()
    calls = _Calls(stage.parts.transformer)
    stats = stage.fit(*_triplet(48, 48))
    record, noisy = calls.calls
    assert stats["resolution"] == [32, 32]
    assert noisy["tokens"] == (32 // 4) ** 2 and record["tokens"] == 2 * (16 // 4) ** 2  # 2x2 latent patches


def test_caption_is_used_and_dropped_on_its_share_of_steps(text_model_dir):
    stage = DiffusionHeroStage(_settings(text_model_dir, prompt="a red cube", caption_dropout=0.5, steps=24))
    stage._load()
    parts = stage.parts
    empty, empty_pooled = parts.empty_embeds()
    assert (parts.prompt_embeds - empty).abs().max() > 1e-3  # the caption is not the empty prompt
    calls = _Calls(parts.transformer)
    stage.fit(*_triplet())
    noisy = [c for c in calls.calls if c["noisy"]]
    dropped = [torch.equal(c["text"], empty) for c in noisy]
    assert len(noisy) == 24 and 3 <= sum(dropped) <= 21  # seeded: both kinds of step happen
    cond_pooled = [torch.equal(c["pooled"], empty_pooled) for c in calls.calls if not c["noisy"]]
    assert cond_pooled == dropped  # the condition pass of a dropped step sees the empty prompt too
    kept = [c for c, d in zip(noisy, dropped, strict=True) if not d]
    assert all(torch.equal(c["text"], parts.prompt_embeds) for c in kept)
    calls.calls = []
    zero, orig, _ = _triplet()
    stage.restore(zero[None], orig[None])
    assert all(torch.equal(c["text"], parts.prompt_embeds) for c in calls.calls if c["noisy"])  # sampling

    stage.cfg.caption_dropout, stage.cfg.steps = 0.0, 6
    calls.calls = []
    stage.fit(*_triplet())
    assert all(torch.equal(c["text"], parts.prompt_embeds) for c in calls.calls if c["noisy"])


def test_a_caption_needs_the_text_encoders(model_dir):
    with pytest.raises(ValueError, match="empty prompt only; a caption"):
        load_flux(model_dir, prompt="a red cube")


def test_text_encoders_are_freed_after_encoding(text_model_dir, monkeypatch):
    from diffusers import FluxPipeline

    refs = []
    original = FluxPipeline.from_pretrained.__func__

    def spy(cls, *args, **kwargs):
        pipe = original(cls, *args, **kwargs)
        refs.extend(weakref.ref(m) for m in (pipe.text_encoder, pipe.text_encoder_2))
        return pipe

    monkeypatch.setattr(FluxPipeline, "from_pretrained", classmethod(spy))
    parts = load_flux(text_model_dir, prompt="a blue cube", max_sequence_length=8)
    gc.collect()
    assert len(refs) == 2 and all(r() is None for r in refs)
    assert parts.prompt_embeds.shape == parts.empty_prompt_embeds.shape == (1, 8, 32)


class _Recorder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.moves = []

    def to(self, device):
        self.moves.append(str(device))
        return self


def test_on_device_visits_and_returns_even_on_error():
    m = _Recorder()
    with on_device(m, "cuda"):
        assert m.moves == ["cuda"]
    assert m.moves == ["cuda", "cpu"]
    with pytest.raises(RuntimeError, match="boom"), on_device(m, "cuda:1"):
        raise RuntimeError("boom")
    assert m.moves[-2:] == ["cuda:1", "cpu"]
    with on_device(m, "cuda", enabled=False), on_device(m, "cpu"):
        pass
    assert len(m.moves) == 4  # disabled, or already on the CPU: nothing moves


def test_memory_options_reach_the_vae_and_keep_results(model_dir, monkeypatch):
    import z2h.models.flux as flux

    seen = []
    real = flux.on_device

    def spy(module, device, enabled=True):
        seen.append((type(module).__name__, enabled))
        return real(module, device, enabled)

    monkeypatch.setattr(flux, "on_device", spy)
    zero, orig, ref = _triplet()
    plain = DiffusionHeroStage(_settings(model_dir))
    plain.fit(zero, orig, ref)
    want = plain.restore(zero[None], orig[None])
    assert seen and not any(enabled for _, enabled in seen)
    seen.clear()
    low = DiffusionHeroStage(_settings(model_dir, offload=True, vae_tiling=True, vae_slicing=True))
    low.fit(zero, orig, ref)
    got = low.restore(zero[None], orig[None])
    assert low.parts.vae.use_tiling and low.parts.vae.use_slicing
    assert seen and all(name == "AutoencoderKL" and enabled for name, enabled in seen)  # every VAE call
    np.testing.assert_array_equal(got, want)  # frames below the tile size: the same numbers


def test_bf16_adapters_train(model_dir):
    stage = DiffusionHeroStage(_settings(model_dir, lora_dtype="bf16", steps=3))
    stats = stage.fit(*_triplet())
    lora = stage.router.parameters()
    assert lora and all(p.dtype == torch.bfloat16 for p in lora)
    assert np.isfinite(stats["losses"]).all()
    assert any(p.abs().max() > 0 for n, p in stage.parts.transformer.named_parameters() if "lora_B" in n)


def test_fp8_base_storage_trains_and_reloads_full_precision_adapters(model_dir, tmp_path):
    stage = DiffusionHeroStage(_settings(model_dir, base_storage="fp8", steps=3))
    stats = stage.fit(*_triplet())
    tr = stage.parts.transformer
    assert tr.transformer_blocks[0].attn.to_q.base_layer.weight.dtype == torch.float8_e4m3fn
    assert all(p.dtype == torch.float32 for p in stage.router.parameters())  # never stored in float8
    assert np.isfinite(stats["losses"]).all()
    zero, orig, _ = _triplet()
    want = stage.restore(zero[None], orig[None])
    saved = stage.save_adapters(tmp_path / "lora")
    fresh = DiffusionHeroStage(_settings(model_dir, base_storage="fp8"))
    fresh.load_adapters(saved)
    assert all(p.dtype == torch.float32 for p in fresh.router.parameters())
    np.testing.assert_array_equal(fresh.restore(zero[None], orig[None]), want)
    assert HeroConfig(engine="diffusion", base_storage="fp8").base_storage == "fp8"
    with pytest.raises(ValueError, match="base_storage"):
        HeroConfig(engine="diffusion", base_storage="int4")
