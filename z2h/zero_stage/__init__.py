"""The Zero-Stage: original video + anchor index + edited anchor (reference) -> a "degraded" video whose
colours follow the edit (blurred, possibly oversaturated; the Hero-Stage restores it).

Two engines behind one interface: ``offline`` (VGG16 + colour correspondence, runs anywhere; default)
and ``diffusion`` (SD 2.1 + DIFT, the paper's method; needs weights via ``zero_model``). Importing this
package is cheap: the engines (and torch) load on first use.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np

from z2h.frames import FrameSequence
from z2h.progress import ProgressFn
from z2h.zero_stage.config import ZeroStageConfig

__all__ = ["ZeroStage", "ZeroStageConfig", "ZeroStageMethod"]


class ZeroStage:
    """``ZeroStage(config)(frames, anchor, reference, progress=None) -> frames`` (uint8 (T, H, W, 3))."""

    def __init__(self, config: ZeroStageConfig | None = None, **overrides: Any):
        self.config = replace(config or ZeroStageConfig(), **overrides)
        self._engine: Any = None

    @property
    def engine(self) -> Any:
        if self._engine is None:
            if self.config.engine == "diffusion":
                from z2h.zero_stage.diffusion import DiffusionZeroStage

                self._engine = DiffusionZeroStage(self.config)
            else:
                from z2h.zero_stage.offline import OfflineZeroStage

                self._engine = OfflineZeroStage(self.config)
        return self._engine

    def settings(self) -> dict[str, Any]:
        return self.config.settings()

    def __call__(
        self, frames: np.ndarray, anchor: int, reference: np.ndarray, progress: ProgressFn | None = None,
    ) -> np.ndarray:
        from z2h.zero_stage.offline import check_inputs

        check_inputs(frames, anchor, reference)
        return self.engine(frames, anchor, reference, progress)

    def stream(
        self, frames: FrameSequence, anchor: int, reference: np.ndarray, order: list[int] | None = None,
        progress: ProgressFn | None = None,
    ) -> Iterator[tuple[int, np.ndarray]]:
        """``(i, output frame)`` in ``order`` (default 0..T-1) without holding the video: ``frames`` may be
        lazy (z2h/frames.py), and each output is handed over as soon as it is done."""
        from z2h.zero_stage.offline import check_inputs

        check_inputs(frames, anchor, reference)
        return self.engine.stream(frames, anchor, reference, order, progress)


class ZeroStageMethod:
    """The Zero-Stage alone as an eval method (``z2h-zero``); options are ZeroStageConfig fields."""

    name = "z2h-zero"

    def __init__(self, **options: Any):
        self.stage = ZeroStage(ZeroStageConfig(**options))

    def settings(self) -> dict[str, Any]:
        return self.stage.settings()

    def __call__(
        self, frames: np.ndarray, anchor: int, reference: np.ndarray, progress: ProgressFn | None = None,
    ) -> np.ndarray:
        return self.stage(frames, anchor, reference, progress)
