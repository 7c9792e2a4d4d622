"""FLUX parts for the Hero-Stage: loading, tiny test configs, latent packing.

A FLUX model folder has the diffusers layout (``transformer/``, ``vae/``, ``scheduler/``, and either
``text_encoder*/`` + ``tokenizer*/`` or a precomputed ``prompt_embeds.safetensors``). Local folders load
with ``local_files_only=True``; anything else is treated as a hub id (which only works where the hub cache
already holds it — there is no hub here). Missing weights raise :class:`MissingWeightsError`, whose
message names ``--hero-model PATH``.

Text is encoded once (an optional caption, plus the empty prompt for caption dropout; a precomputed
``prompt_embeds.safetensors`` holds the empty prompt) and the embeddings are kept, so the text encoders
are freed right after loading.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROMPT_EMBEDS_FILE = "prompt_embeds.safetensors"
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


class MissingWeightsError(FileNotFoundError):
    """FLUX weights were not given or could not be found."""


@dataclass
class FluxParts:
    """Everything the Hero-Stage needs from a FLUX checkpoint (text already encoded)."""

    transformer: Any  # diffusers.FluxTransformer2DModel
    vae: Any  # diffusers.AutoencoderKL
    scheduler: Any  # diffusers.FlowMatchEulerDiscreteScheduler
    prompt_embeds: Any  # (1, S, joint_attention_dim): the caption ("" by default)
    pooled_prompt_embeds: Any  # (1, pooled_projection_dim)
    empty_prompt_embeds: Any = None  # the empty prompt's, for caption dropout; None: the caption is ""
    empty_pooled_prompt_embeds: Any = None

    def empty_embeds(self) -> tuple[Any, Any]:
        """(sequence, pooled) embeddings of the empty prompt."""
        if self.empty_prompt_embeds is None:
            return self.prompt_embeds, self.pooled_prompt_embeds
        return self.empty_prompt_embeds, self.empty_pooled_prompt_embeds

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)


def tiny_flux_config() -> dict:
    """A FluxTransformer2DModel config small enough to train on a CPU in milliseconds per step."""
    return dict(
        patch_size=1,
        in_channels=16,  # 4 VAE latent channels packed 2x2
        num_layers=1,
        num_single_layers=2,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,
        pooled_projection_dim=32,
        guidance_embeds=True,
        axes_dims_rope=(4, 6, 6),  # sums to attention_head_dim
    )


def tiny_vae_config() -> dict:
    """An AutoencoderKL config matching :func:`tiny_flux_config` (4 latent channels, downscale 2)."""
    return dict(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(16, 32),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        scaling_factor=0.3611,
        shift_factor=0.1159,
        use_quant_conv=False,
        use_post_quant_conv=False,
    )


def flux_dev_config() -> dict[str, dict]:
    """Configs of FLUX.1-dev's transformer, VAE and scheduler, as published with its weights
    (``black-forest-labs/FLUX.1-dev``): for building the full-size models with random weights
    (perf/gpu_smoke.py) where the weights cannot be downloaded. 11.9 B transformer parameters; the text
    is T5-XXL (4096-dim, 512 tokens) + CLIP-L pooled (768)."""
    return {
        "transformer": dict(
            patch_size=1, in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128,
            num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768, guidance_embeds=True,
            axes_dims_rope=(16, 56, 56),
        ),
        "vae": dict(
            in_channels=3, out_channels=3, latent_channels=16, block_out_channels=(128, 256, 512, 512),
            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
            layers_per_block=2, norm_num_groups=32, sample_size=1024, scaling_factor=0.3611,
            shift_factor=0.1159, use_quant_conv=False, use_post_quant_conv=False,
        ),
        "scheduler": dict(
            shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15, base_image_seq_len=256,
            max_image_seq_len=4096,
        ),
    }


def save_tiny_flux(
    path: str | Path, seed: int = 0, text_tokens: int = 4, text_encoders: bool = False
) -> Path:
    """Build random tiny FLUX parts and save them in the diffusers folder layout (for tests/demos).

    Text: ``prompt_embeds.safetensors`` with ``text_tokens`` random tokens, or with ``text_encoders``
    tiny random CLIP + T5 encoders and word-level tokenizers (a full FluxPipeline folder).
    """
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel
    from safetensors.torch import save_file

    path = Path(path)
    torch.manual_seed(seed)
    transformer = FluxTransformer2DModel(**tiny_flux_config())
    vae = AutoencoderKL(**tiny_vae_config())
    scheduler = FlowMatchEulerDiscreteScheduler(
        shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15
    )
    _calibrate_latents(vae)
    if text_encoders:
        from diffusers import FluxPipeline

        parts = dict(transformer=transformer, vae=vae, scheduler=scheduler)
        with tempfile.TemporaryDirectory() as tmp:  # CLIPTokenizer is built from vocab files
            text = _tiny_text_encoders(Path(tmp), transformer.config)
            FluxPipeline(**parts, **text).save_pretrained(path)
        return path
    transformer.save_pretrained(path / "transformer")
    vae.save_pretrained(path / "vae")
    scheduler.save_pretrained(path / "scheduler")
    cfg = transformer.config
    g = torch.Generator().manual_seed(seed + 1)
    embeds = {
        "prompt_embeds": torch.randn(1, text_tokens, cfg.joint_attention_dim, generator=g),
        "pooled_prompt_embeds": torch.randn(1, cfg.pooled_projection_dim, generator=g),
    }
    save_file(embeds, str(path / PROMPT_EMBEDS_FILE))
    return path


def _tiny_text_encoders(tmp: Path, cfg: Any) -> dict:
    """Random CLIP (pooled) + T5 (sequence) encoders sized for ``cfg``, with tiny word-level vocabularies."""
    import json

    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        CLIPTokenizer,
        T5Config,
        T5EncoderModel,
        T5TokenizerFast,
    )

    words = ["<pad>", "</s>", "<unk>", "a", "red", "blue", "cube"]
    unigram = [(w, 0.0) for w in words[:3]] + [("\u2581" + w, -1.0) for w in words[3:]] + [("\u2581", -2.0)]
    tokenizer_2 = T5TokenizerFast(vocab=unigram, extra_ids=0)
    letters = "abcdefghijklmnopqrstuvwxyz"  # no merges: CLIP's BPE spells every word out in letters
    clip_words = ["<|startoftext|>", "<|endoftext|>", *letters, *[c + "</w>" for c in letters]]
    (tmp / "vocab.json").write_text(json.dumps({w: i for i, w in enumerate(clip_words)}))
    (tmp / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(
        str(tmp / "vocab.json"), str(tmp / "merges.txt"), pad_token="<|endoftext|>", model_max_length=77
    )
    clip = CLIPTextModel(
        CLIPTextConfig(
            hidden_size=cfg.pooled_projection_dim,
            intermediate_size=37,
            num_attention_heads=2,
            num_hidden_layers=1,
            vocab_size=len(clip_words),
            max_position_embeddings=77,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        )
    )
    t5 = T5EncoderModel(
        T5Config(
            d_model=cfg.joint_attention_dim,
            d_ff=37,
            d_kv=8,
            num_heads=2,
            num_layers=1,
            vocab_size=len(unigram),
        )
    )
    return dict(text_encoder=clip, tokenizer=tokenizer, text_encoder_2=t5, tokenizer_2=tokenizer_2)


def _calibrate_latents(vae: Any) -> None:
    """Set shift/scaling so latents of smooth random images have mean 0, std 1 (how FLUX chose its own)."""
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(0)
    x = F.interpolate(torch.rand(8, 3, 8, 8, generator=g) * 2 - 1, size=64, mode="bilinear")
    with torch.no_grad():
        z = vae.encode(x).latent_dist.mode()
    vae.register_to_config(shift_factor=float(z.mean()), scaling_factor=float(1.0 / z.std()))


def _source(model: str | Path | None) -> tuple[str, bool]:
    """(name to pass to from_pretrained, local_files_only) or a clear error."""
    if model is None or str(model) == "":
        raise MissingWeightsError(
            "the diffusion Hero-Stage needs FLUX weights (FLUX.1-dev in diffusers layout): "
            "pass --hero-model PATH (a local folder or a hub id)"
        )
    p = Path(model).expanduser()
    if p.is_dir():
        missing = [sub for sub in ("transformer", "vae", "scheduler") if not (p / sub).is_dir()]
        if missing:
            raise MissingWeightsError(
                f"--hero-model {p}: folder lacks {', '.join(m + '/' for m in missing)} "
                "(expected the diffusers FLUX layout: "
                "transformer/, vae/, scheduler/ and text encoders or prompt_embeds.safetensors)"
            )
        return str(p), True
    if p.exists() or not _HUB_ID.match(str(model)):
        raise MissingWeightsError(
            f"--hero-model {model}: no such folder; pass --hero-model PATH to FLUX weights"
        )
    return str(model), False


def load_flux(
    model: str | Path | None,
    prompt: str = "",
    device: str = "cpu",
    dtype: Any = None,
    max_sequence_length: int = 512,
    offload: bool = False,
) -> FluxParts:
    """Load FLUX transformer, VAE, scheduler and the encoded ``prompt`` from a folder or hub id.

    Memory: the models load on the CPU; the text is encoded while the transformer is still there, and
    the text encoders are freed right after (T5-XXL alone is ~9.5 GB in bf16). ``offload``: the text
    encoders visit the GPU one at a time (diffusers' model CPU offload) and the VAE stays on the CPU
    (the Hero-Stage moves it to the GPU only for its own calls, see :func:`on_device`).
    """
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel

    name, local = _source(model)
    dtype = dtype or torch.float32
    kw = dict(local_files_only=local, dtype=dtype)
    try:
        transformer = FluxTransformer2DModel.from_pretrained(name, subfolder="transformer", **kw)
        vae = AutoencoderKL.from_pretrained(name, subfolder="vae", **kw)
        scheduler = FlowMatchEulerDiscreteScheduler.from_pretrained(
            name, subfolder="scheduler", local_files_only=local
        )
    except OSError as e:  # hub id not cached, or a broken folder
        raise MissingWeightsError(f"--hero-model {model}: could not load FLUX weights ({e})") from e
    text = _prompt_embeddings(name, local, prompt, device, dtype, max_sequence_length, offload)
    transformer.to(device).requires_grad_(False)
    vae.to("cpu" if offload else device).requires_grad_(False)
    return FluxParts(transformer, vae, scheduler, *text)


def _prompt_embeddings(
    name: str, local: bool, prompt: str, device: str, dtype: Any, max_len: int, offload: bool = False
) -> tuple[Any, Any, Any, Any]:
    """(caption, pooled, empty, empty pooled) embeddings; the empty ones are None when the caption is "".

    From prompt_embeds.safetensors (the EMPTY prompt's, precomputed) when the folder has it, else
    encoded with the checkpoint's CLIP + T5, which are freed before returning.
    """
    import gc

    import torch

    cached = Path(name) / PROMPT_EMBEDS_FILE if local else None
    if cached is not None and cached.is_file():
        from safetensors.torch import load_file

        if prompt:
            raise ValueError(
                f"{cached}: holds the empty prompt only; a caption ({prompt!r}) needs the checkpoint's "
                "text encoders (text_encoder*/ and tokenizer*/)"
            )
        t = load_file(str(cached))
        if "prompt_embeds" not in t or "pooled_prompt_embeds" not in t:
            raise ValueError(f"{cached}: needs tensors 'prompt_embeds' and 'pooled_prompt_embeds'")
        return t["prompt_embeds"].to(device, dtype), t["pooled_prompt_embeds"].to(device, dtype), None, None
    from diffusers import FluxPipeline

    try:
        pipe = FluxPipeline.from_pretrained(
            name, transformer=None, vae=None, local_files_only=local, dtype=dtype
        )
    except (OSError, ValueError) as e:
        raise MissingWeightsError(
            f"--hero-model {name}: no {PROMPT_EMBEDS_FILE} and the text encoders could not be loaded ({e})"
        ) from e
    if offload and torch.device(device).type == "cuda":
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.to(device)
    prompts = [prompt, ""] if prompt else [""]
    with torch.no_grad():
        embeds, pooled, _ = pipe.encode_prompt(prompts, prompts, device=device, max_sequence_length=max_len)
    embeds, pooled = embeds.to(device, dtype), pooled.to(device, dtype)
    del pipe  # free the text encoders now: nothing else holds them
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    if prompt:
        return embeds[:1], pooled[:1], embeds[1:], pooled[1:]
    return embeds, pooled, None, None


@contextlib.contextmanager
def on_device(module: Any, device: Any, enabled: bool = True) -> Iterator[Any]:
    """Run a block with ``module`` on ``device``, then send it back to the CPU (model CPU offload).

    ``enabled=False`` (or a CPU ``device``) leaves it where it is.
    """
    import torch

    if not enabled or torch.device(device).type == "cpu":
        yield module
        return
    module.to(device)
    try:
        yield module
    finally:
        module.to("cpu")
        torch.cuda.empty_cache()


# --- latent packing (FLUX packs 2x2 latent patches into tokens) ---------------------------------------


def pack_latents(latents: Any) -> Any:
    """(B, C, h, w) -> (B, h/2 * w/2, 4C), row-major tokens as FLUX expects."""
    b, c, h, w = latents.shape
    x = latents.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, (h // 2) * (w // 2), c * 4)


def unpack_latents(tokens: Any, h: int, w: int) -> Any:
    """Inverse of :func:`pack_latents` for a latent of size (h, w)."""
    b, n, d = tokens.shape
    x = tokens.view(b, h // 2, w // 2, d // 4, 2, 2).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, d // 4, h, w)


def latent_ids(h: int, w: int, target_hw: tuple[int, int] | None = None, device: Any = None) -> Any:
    """Position ids (h/2 * w/2, 3) of packed tokens; ``target_hw`` rescales them onto a target grid.

    Condition tokens reuse the target's positions; a condition at another resolution gets its grid
    stretched onto the target's (EasyControl's position-aware interpolation).
    """
    import torch

    gh, gw = h // 2, w // 2
    th, tw = (gh, gw) if target_hw is None else (target_hw[0] // 2, target_hw[1] // 2)
    rows = torch.arange(gh, dtype=torch.float32) * (th / gh)
    cols = torch.arange(gw, dtype=torch.float32) * (tw / gw)
    ids = torch.zeros(gh, gw, 3)
    ids[..., 1] = rows[:, None]
    ids[..., 2] = cols[None, :]
    return ids.reshape(gh * gw, 3).to(device)
