"""Stable Diffusion parts for the Zero-Stage diffusion engine: U-Net, VAE, DDIM scheduler, empty prompt.

``load_sd`` reads a diffusers-format folder (``unet/``, ``vae/``, ``scheduler/``, optionally
``text_encoder/`` + ``tokenizer/``) with ``from_pretrained(..., local_files_only=True)``, or a hub id
when the user has network access or a cache. The Zero-Stage only ever uses the EMPTY prompt, so the text
encoder is run once at load time and dropped; without one the embeddings are zeros (with a warning).

``save_tiny_sd`` builds tiny random parts with the same structure as SD 2.1 (4 U-Net levels, cross-
attention up_blocks 1-3) for tests and demos without weights.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

HINT = ("pass --zero-model PATH (a Stable Diffusion 2.1-base folder in diffusers format: "
        "unet/, vae/, scheduler/)")


@dataclass
class SDParts:
    """What the Zero-Stage needs from Stable Diffusion; models are in eval mode on ``device``."""

    unet: Any  # diffusers.UNet2DConditionModel
    vae: Any  # diffusers.AutoencoderKL
    scheduler: Any  # diffusers.DDIMScheduler
    empty_embeds: torch.Tensor  # (1, tokens, cross_attention_dim): the empty prompt
    device: torch.device
    dtype: torch.dtype

    @property
    def vae_scale(self) -> int:
        """Image pixels per latent pixel (8 for SD)."""
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def size_multiple(self) -> int:
        """Working sides are multiples of this: two latent pixels (16 px for SD), as the Hero-Stage's FLUX
        grid. The U-Net pads odd grids itself (each downsampler gives ceil(s / 2)), so a multiple of its
        total downsampling (64 px) is not needed; 64 made 1920x1080 512x256 here and 512x288 in FLUX."""
        return self.vae_scale * 2


def _is_hub_id(model: str) -> bool:
    parts = str(model).split("/")
    return len(parts) == 2 and all(parts) and not str(model).startswith((".", "~"))


def load_sd(
    model: str | Path, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> SDParts:
    """Load U-Net, VAE and DDIM scheduler (+ empty-prompt embeddings) from a folder or hub id.

    Raises FileNotFoundError naming the folder/part and saying to pass ``--zero-model PATH``.
    """
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel

    if model is None or str(model) == "":
        raise FileNotFoundError(f"no Stable Diffusion weights configured: {HINT}")
    path = Path(model).expanduser()
    local = path.exists()
    if local:
        if not path.is_dir():
            raise FileNotFoundError(f"Stable Diffusion weights {path} is not a folder: {HINT}")
        missing = [p for p in ("unet", "vae", "scheduler") if not (path / p).is_dir()]
        if missing:
            raise FileNotFoundError(f"{path} has no {', '.join(p + '/' for p in missing)}: {HINT}")
        source: str = str(path)
    elif _is_hub_id(str(model)):
        source = str(model)
    else:
        raise FileNotFoundError(f"Stable Diffusion weights not found at {path}: {HINT}")

    def load(offline: bool) -> tuple[Any, Any, Any]:
        kw = dict(local_files_only=offline)
        return (UNet2DConditionModel.from_pretrained(source, subfolder="unet", torch_dtype=dtype, **kw),
                AutoencoderKL.from_pretrained(source, subfolder="vae", torch_dtype=dtype, **kw),
                DDIMScheduler.from_pretrained(source, subfolder="scheduler", **kw))

    offline = True  # a hub id: the local cache first, the network only when it is not there
    try:
        try:
            unet, vae, scheduler = load(True)
        except OSError:
            if local:
                raise
            offline = False
            unet, vae, scheduler = load(False)
    except (OSError, ValueError) as e:
        where = "" if local else f"no folder {path} and, as a hub id, "
        raise FileNotFoundError(f"could not load Stable Diffusion from {source!r}: {where}{e}: {HINT}") from e
    device = torch.device(device)
    unet.to(device).eval().requires_grad_(False)
    vae.to(device).eval().requires_grad_(False)
    embeds = _empty_prompt(source, offline, unet.config.cross_attention_dim)
    return SDParts(unet, vae, scheduler, embeds.to(device, dtype), device, dtype)


def _empty_prompt(source: str, offline: bool, dim: int) -> torch.Tensor:
    """Text-encoder output for "" (1, 77, dim); zeros with a warning when the weights have no encoder."""
    root = Path(source)
    if root.is_dir() and not ((root / "text_encoder").is_dir() and (root / "tokenizer").is_dir()):
        warnings.warn(f"{source} has no text_encoder/ + tokenizer/: using zero empty-prompt embeddings "
                      "(results differ from the real empty prompt)", stacklevel=3)
        return torch.zeros(1, 77, dim)
    from transformers import AutoTokenizer, CLIPTextModel

    try:
        tok = AutoTokenizer.from_pretrained(source, subfolder="tokenizer", local_files_only=offline)
        enc = CLIPTextModel.from_pretrained(source, subfolder="text_encoder", local_files_only=offline)
    except (OSError, ValueError) as e:
        raise FileNotFoundError(f"could not load the text encoder/tokenizer of {source!r} ({e}): "
                                f"{HINT}") from e
    ids = tok("", padding="max_length", max_length=tok.model_max_length, truncation=True,
              return_tensors="pt").input_ids
    with torch.no_grad():
        out = enc(ids)[0]
    if out.shape[-1] != dim:
        raise ValueError(f"text encoder of {source!r} gives {out.shape[-1]}-dim embeddings, the U-Net "
                         f"expects {dim}")
    return out.float()


def tiny_sd_config() -> dict[str, dict[str, Any]]:
    """Configs of tiny random SD parts shaped like SD 2.1: 4 U-Net levels, cross-attention up_blocks 1-3.

    The VAE downsamples by 2 (not 8), so 32x32 images give 16x16 latents and the U-Net still has room
    for its three downsamplings.
    """
    return {
        "unet": dict(
            sample_size=16, in_channels=4, out_channels=4, block_out_channels=(32, 32, 64, 64),
            layers_per_block=1, cross_attention_dim=32, attention_head_dim=8, norm_num_groups=8,
            down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        ),
        "vae": dict(
            in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 32),
            down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
            layers_per_block=1, norm_num_groups=8, sample_size=32,
        ),
        # SD 2.1-base's scheduler settings
        "scheduler": dict(
            beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
            set_alpha_to_one=False, steps_offset=1, prediction_type="epsilon",
        ),
    }


def sd21_base_config() -> dict[str, dict[str, Any]]:
    """Configs of Stable Diffusion 2.1-base's U-Net, VAE and scheduler, as published with its weights
    (``stabilityai/stable-diffusion-2-1-base``): for building the full-size models with random weights
    (perf/gpu_smoke.py) where the weights cannot be downloaded. 866 M U-Net parameters."""
    return {
        "unet": dict(
            sample_size=64, in_channels=4, out_channels=4, block_out_channels=(320, 640, 1280, 1280),
            layers_per_block=2, cross_attention_dim=1024, attention_head_dim=(5, 10, 20, 20),
            use_linear_projection=True, norm_num_groups=32, norm_eps=1e-5, downsample_padding=1,
            flip_sin_to_cos=True, freq_shift=0, act_fn="silu",
            down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        ),
        "vae": dict(
            in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512),
            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
            layers_per_block=2, norm_num_groups=32, sample_size=768, scaling_factor=0.18215,
        ),
        "scheduler": tiny_sd_config()["scheduler"],
    }


def save_tiny_sd(path: str | Path, seed: int = 0, text_encoder: bool = False) -> Path:
    """Build tiny random SD parts (see :func:`tiny_sd_config`) and ``save_pretrained`` them under ``path``.

    ``text_encoder=True`` adds a tiny random CLIP text encoder and a 6-token CLIP tokenizer.
    """
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel

    path = Path(path)
    cfg = tiny_sd_config()
    torch.manual_seed(seed)
    UNet2DConditionModel(**cfg["unet"]).save_pretrained(path / "unet")
    AutoencoderKL(**cfg["vae"]).save_pretrained(path / "vae")
    DDIMScheduler(**cfg["scheduler"]).save_pretrained(path / "scheduler")
    if text_encoder:
        _save_tiny_clip(path, cfg["unet"]["cross_attention_dim"])
    return path


def _save_tiny_clip(path: Path, dim: int) -> None:
    import json
    import tempfile

    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, "a</w>": 2, "b</w>": 3, "a": 4, "b": 5}
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "vocab.json").write_text(json.dumps(vocab))
        (Path(tmp) / "merges.txt").write_text("#version: 0.2\n")
        tok = CLIPTokenizer(str(Path(tmp) / "vocab.json"), str(Path(tmp) / "merges.txt"),
                            model_max_length=77, pad_token="<|endoftext|>")
        tok.save_pretrained(path / "tokenizer")
    config = CLIPTextConfig(vocab_size=len(vocab), hidden_size=dim, intermediate_size=2 * dim,
                            num_hidden_layers=1, num_attention_heads=4, max_position_embeddings=77,
                            projection_dim=dim, bos_token_id=0, eos_token_id=1, pad_token_id=1)
    CLIPTextModel(config).save_pretrained(path / "text_encoder")
