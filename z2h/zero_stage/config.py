"""ZeroStageConfig: one dataclass for both engines (each reads the fields it knows)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

ENGINES = ("offline", "diffusion")
TRANSFERS = ("ratio", "residual", "copy")


@dataclass
class ZeroStageConfig:
    """Settings of the Zero-Stage.

    Shared: ``k`` (top-k anchor matches per target token; the paper's setting is 1), ``gamma`` (query
    blend) and ``tau`` (query temperature). With k = 1 the attention is a gather and γ, τ do not matter.
    Offline engine: VGG16 ``layers`` and colour (Lab) similarity pick the matches on a token grid of
    stride ``feature_stride`` at working size ``work_size``; attention moves the anchor's colour change
    (``transfer``) to the target. Diffusion engine (SD 2.1 weights in ``zero_model``): the reference
    code's settings (20 DDIM steps, DIFT t=261, up-block 1, 8 noise draws, 512 px).
    """

    engine: str = "offline"
    k: int = 1
    gamma: float = 1.0
    tau: float = 1.0
    seed: int = 0
    device: str | None = None  # None: the engine's default (offline: cpu; diffusion: cuda if available)
    # offline engine
    layers: tuple[str, ...] = ("relu3_3", "relu4_3")
    work_size: int = 256  # longer side the frames are resized to for matching
    feature_stride: int = 4  # token grid = work size / stride (64 x 64 for 256 px)
    feature_dim: int | None = 128  # VGG tokens projected on the anchor's top principal directions
    colour_weight: float = 20.0  # λ in score = mean cosine(VGG) - λ·‖ΔLab / 100‖²
    transfer: str = "ratio"  # ratio: linear-RGB gain; residual: sRGB offset; copy: reference colour
    patch: bool = False  # V = each token's stride×stride patch of the change instead of its mean
    batch_size: int = 8
    # diffusion engine
    zero_model: str | None = None
    steps: int = 20  # DDIM steps (reference code)
    dift_t: int = 261
    dift_block: int = 1
    dift_ensemble: int = 8
    resolution: int = 512

    def __post_init__(self) -> None:
        self.layers = tuple(self.layers)
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}, not {self.engine!r}")
        if self.transfer not in TRANSFERS:
            raise ValueError(f"transfer must be one of {', '.join(TRANSFERS)}, not {self.transfer!r}")
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")
        if self.feature_stride not in (1, 2, 4, 8, 16) or self.work_size < 32:
            raise ValueError(f"feature_stride must be 1, 2, 4, 8 or 16 and work_size >= 32, got "
                             f"{self.feature_stride}, {self.work_size}")

    def settings(self) -> dict[str, Any]:
        """The fields that matter for the chosen engine (for run.json and eval caching)."""
        d = asdict(self)
        d["layers"] = list(self.layers)
        offline = ("layers", "work_size", "feature_stride", "feature_dim", "colour_weight", "transfer",
                   "patch", "batch_size")
        diffusion = ("zero_model", "steps", "dift_t", "dift_block", "dift_ensemble", "resolution")
        drop = diffusion if self.engine == "offline" else offline
        return {key: v for key, v in d.items() if key not in drop}
