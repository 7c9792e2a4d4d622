"""One working-size rule for every stage (z2h/sizes.py): halves round up, both diffusion stages agree."""

from types import SimpleNamespace

import pytest

from z2h.sizes import working_size


def test_halves_round_up_exactly():
    assert working_size(1080, 1920, 512, 16) == (288, 512)
    assert working_size(1080, 1920, 512, 64) == (320, 512)  # 4.5 grid cells -> 5 (round() gave 4)
    assert working_size(1080, 1920, 768, 16) == (432, 768)
    assert working_size(720, 1280, 256, 8) == (144, 256)
    assert working_size(96, 96, 256, 8) == (256, 256)
    assert working_size(100, 30, 64, 8) == (64, 16)
    assert working_size(20, 400, 32, 16) == (16, 32)  # never below one multiple
    with pytest.raises(ValueError, match="positive"):
        working_size(0, 10, 512, 16)


def _vae(scale_levels: int):
    return SimpleNamespace(config=SimpleNamespace(block_out_channels=(1,) * scale_levels))


def test_zero_and_hero_stage_share_the_size_of_a_1080p_frame():
    """The real models' geometry (VAE downsampling 8): SD 2.1 Zero-Stage and FLUX Hero-Stage agree."""
    torch = pytest.importorskip("torch")
    from z2h.hero_stage.diffusion import DiffusionHeroStage, DiffusionSettings
    from z2h.models.flux import FluxParts
    from z2h.models.sd import SDParts

    sd = SDParts(unet=None, vae=_vae(4), scheduler=None, empty_embeds=None, device=torch.device("cpu"),
                 dtype=torch.float32)
    flux = FluxParts(transformer=None, vae=_vae(4), scheduler=None, prompt_embeds=None,
                     pooled_prompt_embeds=None)
    hero = DiffusionHeroStage(DiffusionSettings(), parts=flux)
    assert sd.vae_scale == 8 and flux.vae_scale_factor == 8
    zero_size = working_size(1080, 1920, 512, sd.size_multiple)
    assert zero_size == hero._size(1080, 1920, 512) == (288, 512)
    assert working_size(1080, 1920, 768, sd.size_multiple) == hero._size(1080, 1920, 768) == (432, 768)
