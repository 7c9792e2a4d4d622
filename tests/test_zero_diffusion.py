"""The Zero-Stage diffusion engine on tiny random SD parts: processors, DIFT, DDIM inversion, end to end."""

from __future__ import annotations

import warnings
from collections import Counter

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from z2h.attention import dense_masked_attention
from z2h.attention_processors import (
    CrossImageAttnProcessor,
    CrossImageState,
    cross_image_attention,
    target_layers,
)
from z2h.correspondence import cosine_topk
from z2h.models.sd import load_sd, save_tiny_sd
from z2h.progress import Cancelled
from z2h.zero_stage.diffusion import DiffusionZeroStage, adain, working_size
from z2h.zero_stage.dift import dift_features
from z2h.zero_stage.inversion import ddim_denoise, ddim_invert

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FAST = dict(steps=3, resolution=32, dift_ensemble=2)


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    return save_tiny_sd(tmp_path_factory.mktemp("sd") / "tiny", seed=0)


def _load(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zero empty-prompt warning, tested in test_sd_models.py
        return load_sd(path)


@pytest.fixture(scope="module")
def parts(tiny_path):
    return _load(tiny_path)


@pytest.fixture(scope="module")
def video():
    """A textured square moving right over a gradient, and a recoloured anchor as the reference."""
    y, x = np.mgrid[:32, :32]
    frames = []
    for s in range(3):
        img = np.stack([x * 6, y * 6, np.full_like(x, 90)], -1).astype(np.uint8)
        patch = img[8:20, 6 + 3 * s:18 + 3 * s]
        patch[:] = [220, 40, 40]
        patch[..., 1] += (80 * ((y[8:20, :12] // 3) % 2)).astype(np.uint8)  # stripes
        frames.append(img)
    frames = np.stack(frames)
    reference = frames[1].copy()
    reference[8:20, 9:21] = reference[8:20, 9:21][..., ::-1]
    return frames, 1, reference


def _attn(dim=16, heads=2):
    from diffusers.models.attention_processor import Attention

    torch.manual_seed(0)
    return Attention(query_dim=dim, heads=heads, dim_head=dim // heads).eval()


def _stock(attn, h):
    """Plain self-attention of a diffusers Attention layer (its own default processor)."""
    from diffusers.models.attention_processor import AttnProcessor

    return AttnProcessor()(attn, h)


# --- installing the processors ------------------------------------------------------------------


def test_processors_go_on_decoder_attn1_of_up_blocks_1_to_3_only(parts):
    before = {k: type(p) for k, p in parts.unet.attn_processors.items()}
    state = CrossImageState()
    with cross_image_attention(parts.unet, state) as installed:
        now = parts.unet.attn_processors
        ours = {k for k, p in now.items() if isinstance(p, CrossImageAttnProcessor)}
        assert ours == {k for k in now if k.startswith(("up_blocks.1.", "up_blocks.2.", "up_blocks.3."))
                        and ".attn1." in k}
        assert len(ours) == 6 and set(installed) == {k.removesuffix(".processor") for k in ours}
        assert all(type(p) is before[k] for k, p in now.items() if k not in ours)
        x = torch.randn(1, 4, 16, 16)
        with torch.no_grad():
            parts.unet(x, 10, encoder_hidden_states=parts.empty_embeds)
        assert state.calls == Counter({(name, "off"): 1 for name in installed})
    assert {k: type(p) for k, p in parts.unet.attn_processors.items()} == before
    assert target_layers(list(before), blocks=(0,)) == []  # up_blocks[0] has no attention


def test_off_mode_matches_the_stock_unet(parts):
    x = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        stock = parts.unet(x, 500, encoder_hidden_states=parts.empty_embeds).sample
        with cross_image_attention(parts.unet, CrossImageState()):
            ours = parts.unet(x, 500, encoder_hidden_states=parts.empty_embeds).sample
    assert (ours - stock).abs().max() < 1e-5


# --- the processor's math -----------------------------------------------------------------------


def _recorded(attn, ref, tgt, gamma=1.0, tau=1.0):
    """A state with K/V recorded from ``ref`` and Q from ``tgt`` at timestep 7; returns (state, proc)."""
    state = CrossImageState(gamma=gamma, tau=tau, t=7)
    proc = CrossImageAttnProcessor("layer", state)
    with torch.no_grad():
        state.set_mode("record_kv")
        assert torch.allclose(proc(attn, ref), _stock(attn, ref), atol=1e-6)  # recording = plain attention
        state.set_mode("record_q")
        assert torch.allclose(proc(attn, tgt), _stock(attn, tgt), atol=1e-6)
    state.set_mode("inject")
    return state, proc


def test_inject_with_all_keys_is_plain_attention_on_reference_kv():
    attn, n = _attn(), 12
    g = torch.Generator().manual_seed(0)
    ref, tgt, cur = (torch.randn(1, n, 16, generator=g) for _ in range(3))
    state, proc = _recorded(attn, ref, tgt)
    state.index[n] = torch.arange(n).expand(1, n, n)  # every key allowed = no mask
    with torch.no_grad():
        out = proc(attn, cur)
        split = lambda x: x.view(1, n, 2, 8).transpose(1, 2)  # noqa: E731
        q, k, v = split(attn.to_q(tgt)), split(attn.to_k(ref)), split(attn.to_v(ref))
        expected = attn.to_out[0](F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(1, n, 16))
        assert (out - expected).abs().max() < 1e-5  # γ=1: the inverted-pass Q, not the current one
        state.tau = 2.0
        sharp = attn.to_out[0](F.scaled_dot_product_attention(2 * q, k, v).transpose(1, 2).reshape(1, n, 16))
        assert (proc(attn, cur) - sharp).abs().max() < 1e-5
        state.gamma, state.tau = 0.0, 1.0  # γ=0: the current Q
        q0 = split(attn.to_q(cur))
        plain = attn.to_out[0](F.scaled_dot_product_attention(q0, k, v).transpose(1, 2).reshape(1, n, 16))
        assert (proc(attn, cur) - plain).abs().max() < 1e-5
        # target == reference with all keys allowed reproduces the reference's own self-attention
        state2, proc2 = _recorded(attn, ref, ref)
        state2.index[n] = state.index[n]
        assert (proc2(attn, cur) - _stock(attn, ref)).abs().max() < 1e-5


def test_inject_k1_identity_copies_reference_values():
    attn, n = _attn(), 10
    g = torch.Generator().manual_seed(1)
    ref, tgt = torch.randn(1, n, 16, generator=g), torch.randn(1, n, 16, generator=g)
    state, proc = _recorded(attn, ref, tgt)
    perm = torch.randperm(n, generator=g)
    state.index[n] = perm.view(1, n, 1)
    with torch.no_grad():
        out = proc(attn, tgt)
        expected = attn.to_out[0](attn.to_v(ref))[:, perm]  # each token gets V of its match
    assert (out - expected).abs().max() < 1e-5


def test_inject_errors_name_what_is_missing():
    attn = _attn()
    ref = torch.randn(1, 4, 16)
    state, proc = _recorded(attn, ref, ref)
    with pytest.raises(RuntimeError, match="no correspondence index for 4 tokens"):
        proc(attn, ref)
    state.index[4] = torch.zeros(1, 4, 1, dtype=torch.long)
    state.t = 8
    with pytest.raises(RuntimeError, match="no reference K/V recorded for timestep 8"):
        proc(attn, ref)
    with pytest.raises(ValueError, match="mode must be one of"):
        state.set_mode("swap")


class _Sizes(TorchDispatchMode):
    """Records the largest tensor any op produces."""

    largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, tuple | list) else [out]:
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def test_k1_injection_never_builds_an_n_by_n_matrix():
    attn, n = _attn(dim=16, heads=2), 1024
    g = torch.Generator().manual_seed(2)
    ref = torch.randn(1, n, 16, generator=g)
    state, proc = _recorded(attn, ref, ref)
    idx = torch.randint(0, n, (1, n, 1), generator=g)
    state.index[n] = idx
    with torch.no_grad(), _Sizes() as sizes:
        proc(attn, ref)
    assert sizes.largest < n * n // 10  # largest is a (1, n, 16) activation
    with torch.no_grad(), _Sizes() as dense:  # the detector does see the dense path's scores
        k, v = state.kv["layer", 7]
        dense_masked_attention(k, k, v, idx)
    assert dense.largest >= n * n


# --- DIFT and DDIM ------------------------------------------------------------------------------


def test_dift_features_are_up_block_1_output_averaged_over_draws(parts):
    g = torch.Generator().manual_seed(0)
    latent = torch.randn(2, 4, 16, 16, generator=g)
    f = dift_features(parts, latent, t=261, ensemble=3, generator=torch.Generator().manual_seed(5))
    assert f.shape == (2, 64, 8, 8)  # channels of up_blocks[1], half the latent size
    # same draws by hand, with the full forward pass
    noise = torch.randn(6, 4, 16, 16, generator=torch.Generator().manual_seed(5))
    noisy = parts.scheduler.add_noise(latent.repeat_interleave(3, 0), noise, torch.tensor([261]))
    seen = []
    h = parts.unet.up_blocks[1].register_forward_hook(lambda m, a, o: seen.append(o))
    with torch.no_grad():
        parts.unet(noisy, 261, encoder_hidden_states=parts.empty_embeds.expand(6, -1, -1))
    h.remove()
    assert (f - seen[0].view(2, 3, 64, 8, 8).mean(1)).abs().max() < 1e-5
    # an image matches itself: the top-1 anchor token of every token is the token itself
    idx = cosine_topk(f[:1], f[:1], 1)
    assert torch.equal(idx[0, :, 0], torch.arange(64))


def _reconstruction_error(parts, latent, steps):
    inverted = ddim_invert(parts, latent, steps)
    assert len(inverted) == steps + 1 and torch.equal(inverted[0], latent)
    rec = ddim_denoise(parts, inverted[-1], steps)
    return ((rec - latent).norm() / latent.norm()).item()


def test_ddim_inversion_then_denoising_reconstructs(tiny_path):
    """DDIM inversion is exact up to how much the predicted noise changes between neighbouring latents.

    - A U-Net whose output ignores the latent (conv_in zeroed; it still depends on t) must reconstruct
      to float precision: this checks that inversion mirrors the denoising steps exactly (a timestep or
      alpha off by one step gives errors of order 1). Measured ~1e-7.
    - The error is first order in the U-Net's sensitivity to its input: the random tiny U-Net (not a
      denoiser at all) gives ~0.9 relative error, the same U-Net with its output scaled by 0.1 (noise
      predictions of a realistic size) ~0.05; starting from fresh noise instead gives ~5.
    """
    latent = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(0)) * 0.8
    flat = _load(tiny_path)
    with torch.no_grad():
        flat.unet.conv_in.weight.zero_()
    assert _reconstruction_error(flat, latent, 4) < 1e-5

    raw = _load(tiny_path)
    err_raw = _reconstruction_error(raw, latent, 4)
    with torch.no_grad():
        raw.unet.conv_out.weight.mul_(0.1)
        raw.unet.conv_out.bias.mul_(0.1)
    err_small = _reconstruction_error(raw, latent, 4)
    assert err_small < 0.1
    assert err_small < 0.15 * err_raw
    fresh = ddim_denoise(raw, torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(1)), 4)
    assert ((fresh - latent).norm() / latent.norm()).item() > 10 * err_small


def test_adain_and_working_size():
    g = torch.Generator().manual_seed(0)
    x, ref = torch.randn(1, 4, 8, 8, generator=g) * 3 + 1, torch.randn(1, 4, 8, 8, generator=g) * 0.5 - 2
    y = adain(x, ref)
    assert torch.allclose(y.mean((2, 3)), ref.mean((2, 3)), atol=1e-5)
    assert torch.allclose(y.std((2, 3)), ref.std((2, 3)), atol=1e-4)
    assert working_size(256, 256, 512, 64) == (512, 512)
    assert working_size(300, 480, 512, 64) == (320, 512)
    assert working_size(20, 400, 32, 16) == (16, 32)


# --- end to end ---------------------------------------------------------------------------------


def test_engine_end_to_end_calls_every_processor_as_planned(parts, video, monkeypatch):
    frames, anchor, reference = video
    calls: Counter = Counter()
    original = CrossImageAttnProcessor.__call__

    def counting(self, attn, hidden_states, *args, **kwargs):
        calls[self.name.split(".")[1], self.state.mode] += 1
        return original(self, attn, hidden_states, *args, **kwargs)

    monkeypatch.setattr(CrossImageAttnProcessor, "__call__", counting)
    seen = []
    engine = DiffusionZeroStage(None, parts=parts, **FAST)
    out = engine(frames, anchor, reference, lambda d, n: seen.append((d, n)))
    assert out.shape == frames.shape and out.dtype == np.uint8
    assert out.std() > 5 and all(np.abs(o.astype(int) - out[0]).mean() > 0 for o in out[1:])
    t, steps = len(frames), FAST["steps"]
    # 2 attn1 layers per up block; DIFT stops after up_blocks[1], so only its layers run there
    assert calls == Counter({
        ("1", "off"): 2 * (t + 1), ("1", "record_kv"): 2 * steps, ("2", "record_kv"): 2 * steps,
        ("3", "record_kv"): 2 * steps,
        **{(b, m): 2 * steps * t for b in "123" for m in ("record_q", "inject")},
    })
    assert seen[0] == (0, t) and seen[-1] == (t, t)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert all(not isinstance(p, CrossImageAttnProcessor) for p in parts.unet.attn_processors.values())


def test_engine_output_depends_on_the_reference(parts, video):
    frames, anchor, reference = video
    engine = DiffusionZeroStage(None, parts=parts, k=4, gamma=0.5, **FAST)
    a = engine(frames[:1], 0, reference)
    b = engine(frames[:1], 0, 255 - reference)
    assert np.abs(a.astype(int) - b).mean() > 1.0
    assert engine.settings()["k"] == 4 and engine.settings()["engine"] == "diffusion"


def test_engine_cancels_between_steps_and_restores_processors(parts, video):
    frames, anchor, reference = video
    calls = []

    def progress(done, total):
        calls.append(done)
        if len(calls) > 5:
            raise Cancelled("stop")

    with pytest.raises(Cancelled):
        DiffusionZeroStage(None, parts=parts, **FAST)(frames, anchor, reference, progress)
    assert len(calls) == 6  # stopped inside the first inversion, not at the end of a frame
    assert all(not isinstance(p, CrossImageAttnProcessor) for p in parts.unet.attn_processors.values())


def test_engine_bad_input_and_missing_weights(parts, video, tmp_path):
    frames, anchor, reference = video
    engine = DiffusionZeroStage(None, parts=parts, **FAST)
    with pytest.raises(ValueError, match="reference has shape"):
        engine(frames, anchor, reference[:16])
    with pytest.raises(ValueError, match="anchor 3 out of range"):
        engine(frames, 3, reference)
    with pytest.raises(ValueError, match="non-empty"):
        engine(frames[:0], 0, reference)
    with pytest.raises(FileNotFoundError, match="--zero-model"):
        DiffusionZeroStage(None, zero_model=str(tmp_path / "missing"))(frames, anchor, reference)


def test_engine_loads_weights_from_config(tiny_path, video):
    frames, anchor, reference = video

    class Config:  # the fields a ZeroStageConfig carries
        zero_model, k, gamma, tau, seed = str(tiny_path), 1, 1.0, 1.0, 0
        device = "cpu"

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = DiffusionZeroStage(Config(), **FAST)(frames[:1], 0, reference)
    assert out.shape == (1, 32, 32, 3) and out.dtype == np.uint8


def test_zero_stage_and_eval_method_run_the_diffusion_engine(tiny_path, video):
    from z2h.eval.methods import get_method
    from z2h.zero_stage import ZeroStage, ZeroStageConfig

    frames, anchor, reference = video
    config = ZeroStageConfig(engine="diffusion", zero_model=str(tiny_path), device="cpu", **FAST)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = ZeroStage(config)(frames[:2], anchor, reference)
        method = get_method("z2h-zero", engine="diffusion", zero_model=str(tiny_path), device="cpu", **FAST)
        again = method(frames[:2], anchor, reference)
    assert out.shape == (2, 32, 32, 3) and out.dtype == np.uint8
    assert np.array_equal(out, again)  # seeded: same settings, same frames
    assert method.settings()["engine"] == "diffusion" and method.settings()["steps"] == FAST["steps"]


def test_sd21_architecture_layers_and_grids_on_the_meta_device():
    """The real SD 2.1-base U-Net shape (no weights: meta tensors, no compute) at 512 px: 9 attn1 layers
    get processors, DIFT features are 32x32 and the layers' token counts are the engine's three grids."""
    from diffusers import UNet2DConditionModel

    from z2h.zero_stage.diffusion import attention_grids

    with torch.device("meta"):
        unet = UNet2DConditionModel(sample_size=64, block_out_channels=(320, 640, 1280, 1280),
                                    layers_per_block=2, cross_attention_dim=1024,
                                    attention_head_dim=(5, 10, 20, 20), use_linear_projection=True)
    grids = attention_grids(unet, (64, 64))
    assert grids == [(16, 16), (32, 32), (64, 64)]
    state = CrossImageState(t=1, mode="record_kv")
    feats = []
    unet.up_blocks[1].register_forward_hook(lambda m, a, o: feats.append(o))
    with cross_image_attention(unet, state) as layers, torch.no_grad():
        unet(torch.empty(1, 4, 64, 64, device="meta"), 1,
             encoder_hidden_states=torch.empty(1, 77, 1024, device="meta"))
    assert len(layers) == 9 and feats[0].shape == (1, 1280, 32, 32)  # DIFT grid = the middle grid
    assert sorted(k.shape[2] for k, _ in state.kv.values()) == [256] * 3 + [1024] * 3 + [4096] * 3
    # 1920x1080 at 768 px: 432x768, latent 54x96; the downsamplers give 27x48, then 14x24 (odd: rounded up)
    grids = attention_grids(unet, (54, 96))
    assert grids == [(14, 24), (27, 48), (54, 96)]
    state.kv.clear()
    with cross_image_attention(unet, state), torch.no_grad():
        unet(torch.empty(1, 4, 54, 96, device="meta"), 1,
             encoder_hidden_states=torch.empty(1, 77, 1024, device="meta"))
    assert sorted({k.shape[2] for k, _ in state.kv.values()}) == sorted(h * w for h, w in grids)


def test_engine_runs_on_grids_that_are_not_multiples_of_the_unet_downsampling(parts):
    """36x64 frames: latent 18x32 -> attention grids 5x8 (rounded up), 9x16, 18x32; every layer finds its
    top-k index by token count and the output keeps the frame size."""
    y, x = np.mgrid[:36, :64]
    frames = np.stack([np.stack([x * 4, y * 7, np.full_like(x, 60 + 40 * i)], -1) for i in range(2)])
    frames = frames.astype(np.uint8)
    reference = frames[0][..., ::-1].copy()
    engine = DiffusionZeroStage(None, parts=parts, **{**FAST, "resolution": 64})
    out = engine(frames, 0, reference)
    assert out.shape == frames.shape and out.std() > 5
