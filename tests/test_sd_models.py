"""Loading Stable Diffusion parts (z2h/models/sd.py) on tiny random models the tests save themselves."""

from __future__ import annotations

import pytest
import torch

from z2h.models.sd import load_sd, save_tiny_sd

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return save_tiny_sd(tmp_path_factory.mktemp("sd") / "tiny", seed=3)


def test_roundtrip_loads_saved_weights(tiny):
    from diffusers import UNet2DConditionModel

    with pytest.warns(UserWarning, match="zero empty-prompt"):
        parts = load_sd(tiny)
    saved = UNet2DConditionModel.from_pretrained(tiny / "unet")
    for (name, a), b in zip(parts.unet.state_dict().items(), saved.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert parts.empty_embeds.shape == (1, 77, 32) and not parts.empty_embeds.any()
    assert parts.vae_scale == 2 and parts.size_multiple == 4  # two latent pixels
    assert parts.scheduler.config.steps_offset == 1
    assert not parts.unet.training and not any(p.requires_grad for p in parts.unet.parameters())


def test_empty_prompt_comes_from_the_text_encoder(tmp_path):
    from transformers import AutoTokenizer, CLIPTextModel

    path = save_tiny_sd(tmp_path / "tiny", text_encoder=True)
    parts = load_sd(path)
    tok = AutoTokenizer.from_pretrained(path / "tokenizer")
    ids = tok("", padding="max_length", max_length=77, return_tensors="pt").input_ids
    assert ids[0, 0] == 0 and (ids[0, 1:] == 1).all()  # start token, then end/pad
    with torch.no_grad():
        expected = CLIPTextModel.from_pretrained(path / "text_encoder")(ids)[0]
    assert parts.empty_embeds.shape == (1, 77, 32)
    assert parts.empty_embeds.abs().mean() > 0.1
    assert torch.allclose(parts.empty_embeds, expected, atol=1e-6)


def test_missing_weights_say_what_to_pass(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"not found at .*nowhere.*--zero-model PATH"):
        load_sd(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="--zero-model"):
        load_sd(None)
    (tmp_path / "partial" / "vae").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"has no unet/, scheduler/.*--zero-model"):
        load_sd(tmp_path / "partial")
    (tmp_path / "file.ckpt").write_bytes(b"x")
    with pytest.raises(FileNotFoundError, match="not a folder"):
        load_sd(tmp_path / "file.ckpt")


def test_corrupt_weights_give_a_clear_error(tmp_path):
    path = save_tiny_sd(tmp_path / "tiny")
    (path / "unet" / "config.json").write_text("{not json")
    with pytest.raises(FileNotFoundError, match=r"could not load Stable Diffusion from .*--zero-model"):
        load_sd(path)


def test_unknown_hub_id_fails_clearly(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # no network retries in tests
    with pytest.raises(FileNotFoundError, match=r"no folder nowhere/sd21 and, as a hub id.*--zero-model"):
        load_sd("nowhere/sd21")
