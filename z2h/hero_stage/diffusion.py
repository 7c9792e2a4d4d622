"""Diffusion Hero-Stage: FLUX DiT with EasyControl-style condition branches and per-condition LoRAs.

Faithful to the paper's reference code:
- Conditions (1: Zero-Stage output, 2: original frame; Mode 1 uses only 1) are VAE-encoded, packed like
  the image latents and appended to the sequence with the TARGET's position ids (a condition at another
  resolution has its grid stretched onto the target's).
- Condition tokens attend only to themselves, each condition only to its own tokens; text and noisy
  tokens attend to everything (z2h/hero_stage/condition_attention.py).
- One LoRA per condition on q, k, v and the attention output, acting only on that condition's tokens
  (z2h/hero_stage/lora_routing.py: each condition's tokens are gathered, its LoRA applied, the result
  scattered back, so noisy and text tokens never pay for adapters); reference rank 128, alpha 128,
  lr 1e-4, AdamW, constant schedule with warm-up, batch 1, one training triplet (Zero-Stage anchor,
  original anchor) -> reference, 600 steps (the reference's 600 epochs of one triplet at batch 1).
- Rectified-flow training as FLUX: x_t = (1 - t) x0 + t noise, the model predicts noise - x0; t is
  uniform and unshifted, the guidance embedding is 1.0 (both as the reference; ``timesteps`` and
  ``train_guidance`` are options). An optional caption is dropped on 10% of the steps.
- Sizes: conditions at 512, target at 768 in Mode 2 (512 in Mode 1), longer side, by z2h/sizes.py.
- Sampling: Euler flow-matching steps on the sigma schedule of the checkpoint's scheduler config
  (FluxPipeline's dynamic shift from the sequence length), FLUX-dev guidance embedding 3.5 when the
  model has ``guidance_embeds``, 25 steps, one fixed seed (the same starting noise for every frame).
- Conditions get timestep 0 (as EasyControl): they run in a pass of their own whose keys/values are
  cached and injected into the noisy pass, which also means they are computed once per frame, not per
  step (EasyControl's KV cache).

Deviations, and why (docs/hero_stage.md has the full "reference recipe vs z2h" table):
- Single-stream Flux blocks have no separate attention output projection, so there the LoRAs sit on
  q, k, v only (EasyControl does the same).
- One caption for the video (the reference captions each sample; here there is one sample), encoded
  once at load time; the text encoders are freed right after.
- The training loop is plain PyTorch (no accelerate): batch 1, base weights in bf16 on a GPU (fp32 on
  the CPU) with fp32 LoRA weights (``lora_dtype="bf16"`` halves them), gradient checkpointing on a GPU;
  warm-up min(50, steps / 10) steps.
- The last block's condition queries feed nothing (only condition keys/values reach the noisy tokens),
  so that LoRA stays at zero; kept for a uniform target list.
- ``fit`` also reports the loss on fixed (t, noise) draws before and after training
  (``anchor_loss_before/after``), a low-variance check that the adapters learnt the anchor.
- Checked here only on tiny random models on the CPU (no FLUX weights, no GPU): the bf16 path runs
  on the CPU in the tests, the real FLUX.1-dev path is untested (perf/gpu_smoke.py is ready for it).
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from z2h.progress import ProgressFn, no_progress


@dataclass
class DiffusionSettings:
    """Settings of the diffusion engine (defaults: the reference code's recipe)."""

    hero_model: str | None = None
    mode: int = 2
    steps: int = 600
    lr: float = 1e-4
    rank: int = 128
    alpha: float | None = None  # None = rank
    warmup_steps: int = 50
    guidance: float = 3.5  # guidance embedding when sampling
    train_guidance: float = 1.0  # guidance embedding while training
    timesteps: str = "uniform"  # training t density: "uniform" or "logit_normal"
    sample_steps: int = 25
    resolution: int | None = None  # target's longer side; None = 768 in Mode 2, 512 in Mode 1
    cond_resolution: int | None = 512  # conditions' longer side; None = the target's
    seed: int = 0
    prompt: str = ""  # caption used in training (dropped on ``caption_dropout`` of the steps) and sampling
    caption_dropout: float = 0.1
    lora_dtype: str = "fp32"  # trainable adapter weights: "fp32" or "bf16"
    routing: str = "gather"  # "gather": adapters run on their own tokens only; "mask": the reference check
    base_storage: str = "bf16"  # "fp8": frozen base weights stored in float8, computed in bf16 (less memory)
    offload: bool = False  # text encoders and VAE on the CPU, moved to the GPU only for their own calls
    vae_tiling: bool = False
    vae_slicing: bool = False
    time_budget_s: float | None = None
    device: str | None = None  # None: cuda if available, else cpu
    gradient_checkpointing: bool | None = None  # None: on a GPU only
    eval_draws: int = 8  # fixed (t, noise) draws for the before/after anchor loss; 0 = skip

    def __post_init__(self) -> None:
        choices = {"timesteps": ("uniform", "logit_normal"), "lora_dtype": ("fp32", "bf16"),
                   "routing": ("gather", "mask"), "base_storage": ("bf16", "fp8")}
        for key, allowed in choices.items():
            value = getattr(self, key)
            if value not in allowed:
                raise ValueError(f"diffusion {key} must be one of {', '.join(allowed)}, not {value!r}")
        if not 0.0 <= self.caption_dropout <= 1.0:
            raise ValueError(f"diffusion caption_dropout must be in [0, 1], not {self.caption_dropout}")

    @property
    def target_resolution(self) -> int:
        """The target's longer side: ``resolution``, or the reference scripts' 768 (Mode 2) / 512 (Mode 1)."""
        if self.resolution is not None:
            return self.resolution
        return 768 if self.mode == 2 else 512

    @classmethod
    def from_hero(cls, config: Any) -> DiffusionSettings:
        """Settings from a :class:`z2h.hero_stage.HeroConfig` (its diffusion fields)."""
        return cls(
            hero_model=config.hero_model,
            mode=config.mode,
            steps=config.steps,
            lr=config.lora_lr,
            rank=config.lora_rank,
            guidance=config.guidance,
            train_guidance=config.train_guidance,
            timesteps=config.timesteps,
            sample_steps=config.sample_steps,
            resolution=config.resolution,
            cond_resolution=config.cond_resolution,
            seed=config.seed,
            prompt=config.prompt,
            caption_dropout=config.caption_dropout,
            lora_dtype=config.lora_dtype,
            base_storage=config.base_storage,
            offload=config.offload,
            vae_tiling=config.vae_tiling,
            vae_slicing=config.vae_slicing,
            time_budget_s=config.time_budget_s,
        )


def sample_timestep(density: str, generator: Any, device: Any = "cpu") -> Any:
    """One training time t in (0, 1) (x_t = (1 - t) x0 + t noise), as a (1,) tensor.

    ``uniform``: the reference code's density. ``logit_normal``: sigmoid of a standard normal (the
    diffusers FLUX LoRA scripts' option ``weighting_scheme=logit_normal``; not their default, which is
    "none", i.e. uniform): it gives t < 0.1 about 1.4% of the draws instead of 10%, so the fine detail
    learnt near t = 0 gets little training.
    """
    import torch

    if density == "uniform":
        return torch.rand(1, generator=generator, device=device)
    if density == "logit_normal":
        return torch.sigmoid(torch.randn(1, generator=generator, device=device))
    raise ValueError(f"timestep density must be uniform or logit_normal, not {density!r}")


class DiffusionHeroStage:
    """Train per-condition LoRAs on the anchor triplet, then restore every frame by sampling FLUX."""

    def __init__(self, config: Any, parts: Any = None):
        self.cfg = config if isinstance(config, DiffusionSettings) else DiffusionSettings.from_hero(config)
        if self.cfg.mode not in (1, 2):
            raise ValueError(f"hero mode must be 1 or 2, not {self.cfg.mode}")
        self.names = ["cond1", "cond2"][: self.cfg.mode]
        self.parts = parts  # FluxParts; loaded lazily so that building the stage stays cheap
        self.router = None

    # --- setup -------------------------------------------------------------------------------------

    @property
    def device(self) -> str:
        import torch

        return self.cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")

    def _load(self) -> None:
        if self.parts is None:
            import torch

            from z2h.models.flux import load_flux

            dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
            self.parts = load_flux(
                self.cfg.hero_model,
                prompt=self.cfg.prompt,
                device=self.device,
                dtype=dtype,
                offload=self.cfg.offload,
            )
        from z2h.hero_stage.condition_attention import install_condition_attention

        vae = self.parts.vae
        if self.cfg.vae_tiling:
            vae.enable_tiling()
        if self.cfg.vae_slicing:
            vae.enable_slicing()

        tr = self.parts.transformer
        tr.requires_grad_(False)
        install_condition_attention(tr)
        if self.cfg.base_storage == "fp8" and not getattr(tr, "_z2h_fp8", False):
            import torch

            # weights stored in float8 (half of bf16: FLUX.1-dev 11.9 GB), each layer upcast to the compute
            # dtype only while it runs (diffusers' layerwise casting); before any adapter exists, so the
            # LoRA weights are never stored in float8
            tr.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=tr.dtype)
            tr._z2h_fp8 = True

    def _add_adapters(self) -> None:
        from z2h.hero_stage.lora_routing import add_condition_adapters
        from z2h.threads import torch_seeded

        self._drop_adapters()
        alpha = self.cfg.alpha if self.cfg.alpha is not None else self.cfg.rank
        with torch_seeded(self.cfg.seed):  # peft draws lora_A from the global RNG: seed it, locally
            self.router = add_condition_adapters(
                self.parts.transformer, self.names, self.cfg.rank, alpha, method=self.cfg.routing
            )
        self._cast_adapters()

    def _cast_adapters(self) -> None:
        """Adapter weights in ``lora_dtype`` whatever the base's (peft creates them in the base's dtype)."""
        import torch

        dtype = torch.bfloat16 if self.cfg.lora_dtype == "bf16" else torch.float32
        for q in self.router.parameters():
            q.data = q.data.to(dtype)

    def _drop_adapters(self) -> None:
        if self.router is not None:
            self.router.detach()
            self.parts.transformer.delete_adapters(self.router.names)
            self.router = None

    # --- images <-> tokens ------------------------------------------------------------------------

    def _size(self, h: int, w: int, longer: int) -> tuple[int, int]:
        """Working size: longer side ``longer``, both sides multiples of the packed-latent grid (the
        rule of z2h/sizes.py, shared with the Zero-Stage)."""
        from z2h.sizes import working_size

        return working_size(h, w, longer, self.parts.vae_scale_factor * 2)

    def _encode(self, images: np.ndarray, size: tuple[int, int]) -> Any:
        """uint8 (B, H, W, 3) -> packed latent tokens (B, N, C) at working ``size``."""
        import torch
        import torch.nn.functional as F

        from z2h.models.flux import on_device, pack_latents

        vae = self.parts.vae
        x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().to(self.device)
        x = F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False)
        x = (x / 127.5 - 1.0).clamp(-1, 1).to(vae.dtype)
        with torch.no_grad(), on_device(vae, self.device, self.cfg.offload):
            z = vae.encode(x).latent_dist.mode()
        z = (z - (vae.config.shift_factor or 0.0)) * vae.config.scaling_factor
        return pack_latents(z)

    def _decode(self, tokens: Any, size: tuple[int, int], out_hw: tuple[int, int]) -> np.ndarray:
        """Packed latent tokens -> uint8 (B, H, W, 3) at the caller's ``out_hw``."""
        import torch
        import torch.nn.functional as F

        from z2h.models.flux import on_device, unpack_latents

        vae, f = self.parts.vae, self.parts.vae_scale_factor
        z = unpack_latents(tokens, size[0] // f, size[1] // f)
        z = z / vae.config.scaling_factor + (vae.config.shift_factor or 0.0)
        with torch.no_grad(), on_device(vae, self.device, self.cfg.offload):
            x = vae.decode(z.to(vae.dtype)).sample.float()
        x = F.interpolate(x, size=out_hw, mode="bicubic", antialias=True, align_corners=False)
        x = ((x.clamp(-1, 1) + 1.0) * 127.5).round().clamp(0, 255)
        return x.permute(0, 2, 3, 1).to(torch.uint8).cpu().numpy()

    # --- the two passes ---------------------------------------------------------------------------

    def _record(self, conds: list[Any], cond_ids: Any, guidance: float, caption: bool = True) -> Any:
        """Condition pass at t = 0: returns the per-layer condition keys/values.

        The conditions see no text tokens, but their timestep embedding holds the pooled prompt and the
        guidance, as the noisy pass's does (``caption=False``: the empty prompt's)."""
        import torch

        from z2h.hero_stage.condition_attention import ConditionKV, condition_mask

        p, tr = self.parts, self.parts.transformer
        text, pooled = (p.prompt_embeds, p.pooled_prompt_embeds) if caption else p.empty_embeds()
        lengths = [c.shape[1] for c in conds]
        kv = ConditionKV("record", mask=condition_mask(lengths, self.device))
        bounds = np.cumsum([0, *lengths])
        self.router.set_spans(
            {n: (int(bounds[i]), int(bounds[i + 1])) for i, n in enumerate(self.names)},
            int(bounds[-1]),
            self.device,
        )
        tr(
            hidden_states=torch.cat(conds, dim=1),
            encoder_hidden_states=text[:, :0],  # conditions never see the text
            pooled_projections=pooled,
            timestep=torch.zeros(1, device=self.device, dtype=tr.dtype),
            img_ids=cond_ids,
            txt_ids=torch.zeros(0, 3, device=self.device),
            guidance=self._guidance(guidance),
            joint_attention_kwargs={"cond_kv": kv},
        )
        return kv

    def _predict(self, x: Any, t: Any, img_ids: Any, kv: Any, guidance: float, caption: bool = True) -> Any:
        """Noisy pass: velocity (noise - x0) prediction for tokens ``x`` at time ``t`` in [0, 1].

        ``caption=False``: the empty prompt's embeddings (caption dropout in training).
        """
        import torch

        from z2h.hero_stage.condition_attention import ConditionKV

        p, tr = self.parts, self.parts.transformer
        text, pooled = (p.prompt_embeds, p.pooled_prompt_embeds) if caption else p.empty_embeds()
        self.router.off()  # the condition LoRAs never touch text or noisy tokens
        return tr(
            hidden_states=x.to(tr.dtype),
            encoder_hidden_states=text,
            pooled_projections=pooled,
            timestep=t.reshape(1).to(tr.dtype),
            img_ids=img_ids,
            txt_ids=torch.zeros(text.shape[1], 3, device=self.device),
            guidance=self._guidance(guidance),
            joint_attention_kwargs={"cond_kv": ConditionKV("use", store=kv.store)},
        ).sample

    def _guidance(self, value: float) -> Any:
        """The guidance-embedding input (None for models without one, e.g. FLUX.1-schnell)."""
        import torch

        tr = self.parts.transformer
        if not tr.config.guidance_embeds:
            return None
        return torch.full((1,), value, device=self.device, dtype=tr.dtype)

    def _conditions(self, zero: np.ndarray, orig: np.ndarray) -> tuple[list[Any], Any, tuple[int, int]]:
        """Condition tokens (Mode 1: the Zero-Stage output only), their position ids, the target size."""
        import torch

        from z2h.models.flux import latent_ids

        h, w = zero.shape[-3:-1]
        size = self._size(h, w, self.cfg.target_resolution)
        csize = self._size(h, w, self.cfg.cond_resolution or self.cfg.target_resolution)
        images = [zero, orig][: self.cfg.mode]
        conds = [self._encode(im[None], csize) for im in images]
        f = self.parts.vae_scale_factor
        ids = latent_ids(
            csize[0] // f, csize[1] // f, target_hw=(size[0] // f, size[1] // f), device=self.device
        )
        return conds, torch.cat([ids] * len(conds)), size

    # --- public API ---------------------------------------------------------------------------------

    def fit(
        self,
        zero_anchor: np.ndarray,
        orig_anchor: np.ndarray,
        reference: np.ndarray,
        progress: ProgressFn | None = None,
    ) -> dict:
        """Train fresh condition LoRAs on the anchor triplet; returns {steps, losses, seconds, ...}."""
        import torch

        from z2h.models.flux import latent_ids

        progress = progress or no_progress
        self._load()
        self._add_adapters()
        tr, f = self.parts.transformer, self.parts.vae_scale_factor
        checkpointing = self.cfg.gradient_checkpointing
        if checkpointing or (checkpointing is None and self.device.startswith("cuda")):
            tr.enable_gradient_checkpointing(self.router.checkpoint_func())
        tr.train()

        conds, cond_ids, size = self._conditions(zero_anchor, orig_anchor)
        x0 = self._encode(reference[None], size)
        img_ids = latent_ids(size[0] // f, size[1] // f, device=self.device)

        params = self.router.parameters()  # in lora_dtype: fp32 as the diffusers scripts, or bf16
        for q in params:
            q.requires_grad_(True)
        opt = torch.optim.AdamW(params, lr=self.cfg.lr, weight_decay=1e-4)
        warmup = max(1, min(self.cfg.warmup_steps, self.cfg.steps // 10))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup))
        g = torch.Generator(self.device).manual_seed(self.cfg.seed)

        batch = (conds, cond_ids, x0, img_ids)
        n_eval = self.cfg.eval_draws
        before = self._fixed_loss(*batch, n=n_eval) if n_eval else None
        losses: list[float] = []
        start = time.monotonic()
        try:
            for step in range(self.cfg.steps):
                t = sample_timestep(self.cfg.timesteps, g, self.device)
                noise = torch.randn(x0.shape, generator=g, device=self.device, dtype=x0.dtype)
                caption = float(torch.rand(1, generator=g, device=self.device)) >= self.cfg.caption_dropout
                loss = self._loss(*batch, t, noise, caption=caption)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                sched.step()
                losses.append(float(loss.detach()))
                if not math.isfinite(losses[-1]):
                    raise FloatingPointError(f"hero training diverged at step {step}: loss {losses[-1]}")
                progress(step + 1, self.cfg.steps)
                if self.cfg.time_budget_s is not None and time.monotonic() - start > self.cfg.time_budget_s:
                    break
        finally:  # also when cancelled: leave the model ready for restore()
            tr.eval()
            tr.disable_gradient_checkpointing()
        return {
            "engine": "diffusion",
            "steps": len(losses),
            "losses": losses,
            "anchor_loss_before": before,
            "anchor_loss_after": self._fixed_loss(*batch, n=n_eval) if n_eval else None,
            "seconds": time.monotonic() - start,
            "stopped_early": len(losses) < self.cfg.steps,
            "resolution": list(size),
        }

    def _loss(
        self, conds: list[Any], cond_ids: Any, x0: Any, img_ids: Any, t: Any, noise: Any, caption: bool = True
    ) -> Any:
        """Rectified-flow loss: x_t = (1 - t) x0 + t noise, target noise - x0, at the training guidance."""
        import torch

        xt = (1 - t) * x0 + t * noise
        g = self.cfg.train_guidance
        kv = self._record(conds, cond_ids, g, caption=caption)
        pred = self._predict(xt, t, img_ids, kv, g, caption=caption)
        return torch.nn.functional.mse_loss(pred.float(), (noise - x0).float())

    def _fixed_loss(self, conds: list[Any], cond_ids: Any, x0: Any, img_ids: Any, n: int = 8) -> float:
        """Mean loss over ``n`` fixed (t, noise) draws: a low-variance before/after measure of training."""
        import torch

        g = torch.Generator(self.device).manual_seed(12345)
        total = 0.0
        with torch.no_grad():
            for i in range(n):
                t = torch.tensor([(i + 0.5) / n], device=self.device)
                noise = torch.randn(x0.shape, generator=g, device=self.device, dtype=x0.dtype)
                total += float(self._loss(conds, cond_ids, x0, img_ids, t, noise))
        return total / n

    def anchor_loss(self, zero: np.ndarray, orig: np.ndarray, target: np.ndarray, n: int = 8) -> float:
        """Flow-matching loss of ``target`` given the conditions, over ``n`` fixed (t, noise) draws."""
        from z2h.models.flux import latent_ids

        if self.router is None:
            raise RuntimeError(
                "the diffusion Hero-Stage has no adapters: call fit() or load_adapters() first"
            )
        f = self.parts.vae_scale_factor
        conds, cond_ids, size = self._conditions(zero, orig)
        x0 = self._encode(target[None], size)
        return self._fixed_loss(
            conds, cond_ids, x0, latent_ids(size[0] // f, size[1] // f, device=self.device), n
        )

    def restore(
        self, zero_frames: np.ndarray, orig_frames: np.ndarray, progress: ProgressFn | None = None
    ) -> np.ndarray:
        """Sample every frame from its conditions; (T, H, W, 3) uint8 in and out (Mode 1 ignores orig)."""
        if self.router is None:
            raise RuntimeError(
                "the diffusion Hero-Stage has no adapters: call fit() or load_adapters() first"
            )
        progress = progress or no_progress
        if zero_frames.ndim != 4 or zero_frames.shape[-1] != 3 or zero_frames.dtype != np.uint8:
            raise ValueError(
                f"zero frames must be (T, H, W, 3) uint8, got {zero_frames.dtype} {zero_frames.shape}"
            )
        if orig_frames.shape != zero_frames.shape:
            raise ValueError(
                f"original frames {orig_frames.shape} do not match zero frames {zero_frames.shape}"
            )
        out = np.empty_like(zero_frames)
        for i in range(len(zero_frames)):
            out[i] = self.restore_frame(zero_frames[i], orig_frames[i])
            progress(i + 1, len(zero_frames))
        return out

    def restore_frame(self, zero: np.ndarray, orig: np.ndarray) -> np.ndarray:
        """Sample one frame from its conditions, (H, W, 3) uint8 in and out."""
        import torch

        from z2h.models.flux import latent_ids

        if self.router is None:
            raise RuntimeError(
                "the diffusion Hero-Stage has no adapters: call fit() or load_adapters() first"
            )
        f, n = self.parts.vae_scale_factor, self.cfg.sample_steps
        self.parts.transformer.eval()
        with torch.no_grad():
            conds, cond_ids, size = self._conditions(zero, orig)
            img_ids = latent_ids(size[0] // f, size[1] // f, device=self.device)
            kv = self._record(conds, cond_ids, self.cfg.guidance)  # once per frame: no t dependence
            g = torch.Generator(self.device).manual_seed(self.cfg.seed)  # same noise every frame
            c = self.parts.transformer.config.in_channels
            x = torch.randn(1, img_ids.shape[0], c, generator=g, device=self.device)
            x = x.to(self.parts.transformer.dtype)
            sigmas = self._sigmas(img_ids.shape[0], n)
            for t, t_next in zip(sigmas[:-1], sigmas[1:], strict=True):
                v = self._predict(x, torch.tensor(t, device=self.device), img_ids, kv, self.cfg.guidance)
                x = (x.float() + (t_next - t) * v.float()).to(x.dtype)
            return self._decode(x, size, zero.shape[:2])[0]

    def _sigmas(self, seq_len: int, n: int) -> list[float]:
        """The Euler schedule 1 -> 0 of the checkpoint's flow-matching scheduler (FLUX's dynamic shift)."""
        sc = self.parts.scheduler
        sigmas = np.linspace(1.0, 1.0 / n, n)
        if sc.config.get("use_dynamic_shifting", False):
            lo, hi = sc.config.get("base_image_seq_len", 256), sc.config.get("max_image_seq_len", 4096)
            b0, b1 = sc.config.get("base_shift", 0.5), sc.config.get("max_shift", 1.15)
            mu = b0 + (b1 - b0) * (seq_len - lo) / (hi - lo)
            sigmas = math.exp(mu) / (math.exp(mu) + (1 / sigmas - 1))
        else:
            s = sc.config.get("shift", 1.0)
            sigmas = s * sigmas / (1 + (s - 1) * sigmas)
        return [*map(float, sigmas), 0.0]

    def save_adapters(self, directory: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write the condition LoRAs (+ adapters.json with the settings) atomically to ``directory``."""
        if self.router is None:
            raise RuntimeError("no adapters to save: call fit() first")
        directory = Path(directory)
        if directory.exists() and any(directory.iterdir()) and not overwrite:
            raise FileExistsError(f"{directory}: exists and is not empty (pass overwrite=True to replace it)")
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
        try:
            meta = {
                "engine": "diffusion",
                "mode": self.cfg.mode,
                "rank": self.cfg.rank,
                "alpha": self.cfg.alpha if self.cfg.alpha is not None else self.cfg.rank,
                "resolution": self.cfg.target_resolution,
                "cond_resolution": self.cfg.cond_resolution,
                "hero_model": None if self.cfg.hero_model is None else str(self.cfg.hero_model),
                "prompt": self.cfg.prompt,
            }
            self.router.save(tmp, meta)
            if directory.exists():
                shutil.rmtree(directory)
            os.replace(tmp, directory)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return directory

    def load_adapters(self, directory: str | os.PathLike) -> dict:
        """Load condition LoRAs saved by :meth:`save_adapters` (the mode must match this stage's)."""
        from z2h.hero_stage.lora_routing import load_condition_adapters

        self._load()
        self._drop_adapters()
        self.router, info = load_condition_adapters(self.parts.transformer, directory, self.cfg.routing)
        self._cast_adapters()
        if info.get("mode") != self.cfg.mode or self.router.names != self.names:
            names = self.router.names
            self._drop_adapters()
            raise ValueError(
                f"{directory}: adapters are for mode {info.get('mode')} ({names}), "
                f"this stage is mode {self.cfg.mode}"
            )
        self.parts.transformer.eval()
        return info
