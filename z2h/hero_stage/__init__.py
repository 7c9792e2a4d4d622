"""Hero-Stage: learn on the anchor frame how to restore the Zero-Stage output, then apply it to every frame.

``HeroStage(config).fit(zero_anchor, orig_anchor, reference)`` trains on the anchor triplet
(condition 1 = Zero-Stage output of the anchor, condition 2 = original anchor -> target = reference);
``restore(zero_frames, orig_frames)`` runs frame t on (Zero-Stage output of t, original t).
Mode 1 uses condition 1 only; Mode 2 (default) both. Engines: ``offline`` (a per-video restoration CNN,
z2h/hero_stage/offline.py) and ``diffusion`` (FLUX + per-condition LoRAs, z2h/hero_stage/diffusion.py).
Nothing heavy is imported here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from z2h.progress import ProgressFn

ENGINES = ("offline", "diffusion")
# Defaults that differ by engine, applied to fields left at "auto". Both train a fixed number of steps by
# default, so a result does not depend on how busy the machine is (a time budget is an explicit option, and
# run records say when it cut training short). The offline restorer converges in a few hundred steps; FLUX
# follows the reference (600 steps on the one anchor triplet).
ENGINE_DEFAULTS: dict[str, dict[str, Any]] = {
    "offline": {"steps": 800, "time_budget_s": None},
    "diffusion": {"steps": 600, "time_budget_s": None},
}


@dataclass
class HeroConfig:
    """Hero-Stage settings; fields not used by an engine are ignored by it."""

    engine: str = "offline"
    mode: int = 2  # 1: condition 1 (Zero-Stage output) only; 2: + condition 2 (original frame)
    seed: int = 0
    steps: int | str = "auto"  # training steps; "auto" = ENGINE_DEFAULTS
    time_budget_s: float | str | None = "auto"  # explicit option: stop early past this; None = every step
    # torch CPU threads while training/restoring (0 = all cores). 1 by default: the batches are small, and
    # on a busy 2-core machine 2 threads ran training 10x SLOWER than 1 (threads wait on each other).
    threads: int = 1
    # offline engine
    pseudo_pairs: int = 8  # warped copies of the anchor pair (0 = the paper's single triplet only)
    width: int = 16
    blocks: int = 2
    kernel: int = 3
    context: bool = True
    crop: int = 48
    batch: int = 4
    lr: float = 2e-3
    loss: str = "l2"  # "l2" or "l1"
    # diffusion engine: defaults follow the reference code (docs/hero_stage.md, "reference recipe vs z2h")
    hero_model: str | None = None  # local folder or hub id of the FLUX weights
    lora_rank: int = 128
    lora_lr: float = 1e-4
    guidance: float = 3.5  # FLUX-dev guidance embedding when sampling
    train_guidance: float = 1.0  # ... and while training (the reference trains at 1.0, samples at 3.5)
    timesteps: str = "uniform"  # training t density: "uniform" (reference) or "logit_normal"
    sample_steps: int = 25
    resolution: int | None = None  # target's longer side; None = 768 in Mode 2 (reference), 512 in Mode 1
    cond_resolution: int = 512  # the conditions' longer side (reference: 512)
    prompt: str = ""  # caption of the training sample and of sampling; "" = none (needs text encoders)
    caption_dropout: float = 0.1  # share of training steps that use the empty prompt (reference: 10%)
    lora_dtype: str = "fp32"  # trainable adapter weights: "fp32" (diffusers scripts) or "bf16"
    base_storage: str = "bf16"  # "fp8": frozen FLUX weights stored in float8, run in bf16 (half the memory)
    offload: bool = False  # text encoders and VAE live on the CPU, visiting the GPU only while they run
    vae_tiling: bool = False  # encode/decode large frames in tiles (less memory, seams possible)
    vae_slicing: bool = False  # encode/decode one image of a batch at a time

    def settings(self) -> dict[str, Any]:
        """The fields that matter for the chosen engine (for run.json and eval caching)."""
        d = asdict(self)
        offline = ("pseudo_pairs", "width", "blocks", "kernel", "context", "crop", "batch", "lr", "loss")
        diffusion = ("hero_model", "lora_rank", "lora_lr", "guidance", "sample_steps", "resolution",
                     *DIFFUSION_OPTIONS)
        drop = diffusion if self.engine == "offline" else offline
        return {key: v for key, v in d.items() if key not in drop}

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"hero engine must be one of {', '.join(ENGINES)}, not {self.engine!r}")
        for key, value in ENGINE_DEFAULTS[self.engine].items():
            if getattr(self, key) == "auto":
                setattr(self, key, value)
        if self.mode not in (1, 2):
            raise ValueError(f"hero mode must be 1 or 2, not {self.mode}")
        if self.steps < 1:
            raise ValueError(f"hero steps must be >= 1, not {self.steps}")
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            raise ValueError(f"hero time budget must be > 0 seconds (or None), not {self.time_budget_s}")
        if self.loss not in ("l1", "l2"):
            raise ValueError(f"hero loss must be l1 or l2, not {self.loss!r}")
        if self.pseudo_pairs < 0:
            raise ValueError(f"pseudo_pairs must be >= 0, not {self.pseudo_pairs}")
        if self.timesteps not in TIMESTEP_DENSITIES:
            raise ValueError(f"hero timesteps must be one of {', '.join(TIMESTEP_DENSITIES)}, "
                             f"not {self.timesteps!r}")
        if self.lora_dtype not in LORA_DTYPES:
            raise ValueError(f"hero lora_dtype must be one of {', '.join(LORA_DTYPES)}, "
                             f"not {self.lora_dtype!r}")
        if self.base_storage not in BASE_STORAGES:
            raise ValueError(f"hero base_storage must be one of {', '.join(BASE_STORAGES)}, "
                             f"not {self.base_storage!r}")
        if not 0.0 <= self.caption_dropout <= 1.0:
            raise ValueError(f"hero caption_dropout must be in [0, 1], not {self.caption_dropout}")
        for key in ("resolution", "cond_resolution"):
            value = getattr(self, key)
            if value is not None and value < 16:
                raise ValueError(f"hero {key} must be >= 16 pixels, not {value}")


DIFFUSION_OPTIONS = ("train_guidance", "timesteps", "cond_resolution", "prompt", "caption_dropout",
                     "lora_dtype", "base_storage", "offload", "vae_tiling", "vae_slicing")
BASE_STORAGES = ("bf16", "fp8")
TIMESTEP_DENSITIES = ("uniform", "logit_normal")
LORA_DTYPES = ("fp32", "bf16")

ZeroFn = Callable[..., np.ndarray]  # ZeroStage-like: (frames, anchor, reference, progress=None) -> frames


class HeroStage:
    """Engine-independent front: ``fit`` on the anchor triplet, then ``restore`` every frame."""

    def __init__(self, config: HeroConfig | None = None):
        self.config = config = config or HeroConfig()
        if config.engine == "offline":
            from z2h.hero_stage.offline import OfflineHeroStage

            self.impl = OfflineHeroStage(config)
        else:
            try:
                from z2h.hero_stage.diffusion import DiffusionHeroStage
            except ImportError as e:
                raise RuntimeError(f"the diffusion Hero-Stage is not available: {e}") from e
            self.impl = DiffusionHeroStage(config)

    def fit(
        self,
        zero_anchor: np.ndarray,
        orig_anchor: np.ndarray,
        reference: np.ndarray,
        progress: ProgressFn | None = None,
        zero_stage: ZeroFn | None = None,
        pairs_progress: ProgressFn | None = None,
    ) -> dict:
        """Train on the anchor triplet; ``zero_stage`` makes the offline engine's pseudo pairs.

        Returns training statistics for run records: the engine's own (steps done, losses, seconds) plus
        ``mode``, ``pseudo_pairs``, ``steps_planned``, ``time_budget_s`` and ``budget_hit`` (True when the
        time budget cut training short).
        """
        named = (("zero_anchor", zero_anchor), ("orig_anchor", orig_anchor), ("reference", reference))
        for name, im in named:
            _check_image(name, im, orig_anchor.shape)
        if self.config.engine == "offline":
            stats = self.impl.fit(zero_anchor, orig_anchor, reference, progress=progress,
                                  zero_stage=zero_stage, pairs_progress=pairs_progress)
        else:
            from z2h.threads import torch_threads

            with torch_threads(self.config.threads):  # the offline engine scopes its own threads
                stats = self.impl.fit(zero_anchor, orig_anchor, reference, progress=progress) or {}
        return training_stats(self.config, stats)

    def restore(
        self, zero_frames: np.ndarray, orig_frames: np.ndarray, progress: ProgressFn | None = None
    ) -> np.ndarray:
        """Restore every frame from (Zero-Stage output of t, original t); (T, H, W, 3) uint8 in and out."""
        if zero_frames.shape != orig_frames.shape or zero_frames.ndim != 4 or zero_frames.shape[-1] != 3:
            raise ValueError(f"zero frames {zero_frames.shape} and original frames {orig_frames.shape} "
                             "must both be (T, H, W, 3) of one size")
        if self.config.engine == "offline":
            return self.impl.restore(zero_frames, orig_frames, progress=progress)
        from z2h.threads import torch_threads

        with torch_threads(self.config.threads):
            return self.impl.restore(zero_frames, orig_frames, progress=progress)

    def restore_stream(
        self, zero_frames: Any, orig_frames: Any, order: list[int] | None = None,
        progress: ProgressFn | None = None,
    ) -> Iterator[tuple[int, np.ndarray]]:
        """``(i, restored frame)`` in ``order`` (default 0..T-1), reading one frame pair at a time, so
        ``zero_frames``/``orig_frames`` may be lazy frame sequences (z2h/frames.py)."""
        from z2h.threads import torch_threads

        if tuple(zero_frames.shape) != tuple(orig_frames.shape) or len(zero_frames.shape) != 4:
            raise ValueError(f"zero frames {zero_frames.shape} and original frames {orig_frames.shape} "
                             "must both be (T, H, W, 3) of one size")
        order = list(range(len(zero_frames))) if order is None else list(order)
        progress = progress or (lambda done, total: None)
        progress(0, len(order))
        for n, i in enumerate(order, 1):
            with torch_threads(self.config.threads):
                frame = self.impl.restore_frame(zero_frames[i], orig_frames[i])
            yield i, frame
            progress(n, len(order))


def training_stats(config: HeroConfig, stats: dict[str, Any]) -> dict[str, Any]:
    """An engine's training statistics with the fields every run record carries (see HeroStage.fit)."""
    stats = {k: v for k, v in stats.items() if k != "losses"}  # per-step losses are too long for run.json
    steps = stats.get("steps")
    hit = stats.get("budget_hit", stats.get("stopped_early", steps is not None and steps < config.steps))
    return {**stats, "mode": config.mode,
            "pseudo_pairs": config.pseudo_pairs if config.engine == "offline" else 0,
            "steps_planned": config.steps, "time_budget_s": config.time_budget_s, "budget_hit": bool(hit)}


def _check_image(name: str, image: np.ndarray, shape: tuple) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"{name} must be an (H, W, 3) uint8 image, got {image.dtype} {image.shape}")
    if image.shape != shape:
        raise ValueError(f"{name} is {image.shape[1]}x{image.shape[0]}, the anchor is {shape[1]}x{shape[0]}")
