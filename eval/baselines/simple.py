"""Reference points that need no correspondence at all."""

from __future__ import annotations

from typing import Any

import numpy as np

from z2h.progress import ProgressFn


class NoEdit:
    """The original video, unchanged: the floor every method must beat."""

    name = "no-edit"

    def settings(self) -> dict[str, Any]:
        return {"source": "the original frames, unchanged"}

    def __call__(
        self, frames: np.ndarray, anchor: int, reference: np.ndarray, progress: ProgressFn | None = None
    ) -> np.ndarray:
        if progress:
            progress(len(frames), len(frames))
        return np.array(frames, dtype=np.uint8, copy=True)
