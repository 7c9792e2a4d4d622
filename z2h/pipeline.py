"""The end-to-end edit: Zero-Stage (correspondence-guided attention) -> Hero-Stage (learned restoration).

``edit(frames, anchor, reference, config, reporter)`` is what ``z2h edit`` and the eval method ``z2h``
(:class:`Z2HMethod`) both run. Progress stages: "zero", "hero-pairs" (offline engine: the Zero-Stage on
the warped anchor copies), "hero-train", "hero".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from z2h.hero_stage import HeroConfig
from z2h.progress import ProgressFn, Reporter
from z2h.zero_stage.config import ZeroStageConfig


@dataclass
class EditConfig:
    """Both stages' settings. ``keep_reference``: the anchor's output frame is the reference itself."""

    zero: ZeroStageConfig = field(default_factory=ZeroStageConfig)
    hero: HeroConfig = field(default_factory=HeroConfig)
    keep_reference: bool = True

    @property
    def engine(self) -> str:
        zero, hero = self.zero.engine, self.hero.engine
        return hero if hero == zero else f"{zero}+{hero}"

    @classmethod
    def from_options(cls, **options: Any) -> EditConfig:
        """Build from flat options: ``engine`` and ``seed`` set both stages; ``zero_X`` / ``hero_X`` pick a
        stage explicitly; any other name goes to the stage whose config has that field."""
        zero_names = {f.name for f in fields(ZeroStageConfig)}
        hero_names = {f.name for f in fields(HeroConfig)}
        zero: dict[str, Any] = {}
        hero: dict[str, Any] = {}
        top: dict[str, Any] = {}
        for key, value in options.items():
            if key in ("engine", "seed"):
                zero[key] = hero[key] = value
            elif key == "keep_reference":
                top[key] = value
            elif key.startswith("zero_") and key[5:] in zero_names:
                zero[key[5:]] = value
            elif key.startswith("hero_") and key[5:] in hero_names:
                hero[key[5:]] = value
            elif key in hero_names:  # hero first: "zero_model"/"hero_model" are real field names too
                hero[key] = value
            elif key in zero_names:
                zero[key] = value
            else:
                raise ValueError(f"unknown z2h option {key!r}; options are the fields of ZeroStageConfig "
                                 f"and HeroConfig: {', '.join(sorted(zero_names | hero_names))}")
        return cls(ZeroStageConfig(**zero), HeroConfig(**hero), **top)

    def settings(self) -> dict[str, Any]:
        """Everything that determines the output (run.json, eval caching)."""
        return {"engine": self.engine, "zero": self.zero.settings(), "hero": self.hero.settings(),
                "keep_reference": self.keep_reference}


@dataclass
class EditResult:
    frames: np.ndarray  # (T, H, W, 3) uint8: the edited video
    zero_frames: np.ndarray  # the Zero-Stage output
    timings: dict[str, float]  # seconds per stage
    train: dict[str, Any]  # Hero-Stage training statistics


def edit(
    frames: np.ndarray,
    anchor: int,
    reference: np.ndarray,
    config: EditConfig | None = None,
    reporter: Reporter | None = None,
    on_zero: Callable[[np.ndarray], None] | None = None,
) -> EditResult:
    """Propagate ``reference`` (the edited frame ``anchor``) through ``frames``: Zero-Stage then Hero-Stage.

    ``on_zero(zero_frames)`` runs as soon as the Zero-Stage is done (the CLI writes them then, so they
    survive a cancel during the Hero-Stage). Cancellation raises :class:`z2h.progress.Cancelled`.
    """
    from z2h.hero_stage import HeroStage
    from z2h.threads import torch_threads
    from z2h.zero_stage import ZeroStage
    from z2h.zero_stage.offline import check_inputs

    config = config or EditConfig()
    reporter = reporter or Reporter("none")
    check_inputs(frames, anchor, reference)
    timings: dict[str, float] = {}
    start = time.perf_counter()

    zero_stage = ZeroStage(config.zero)
    # The hero's thread count holds for the whole edit: on a busy machine 1 thread beat 2 here too.
    with torch_threads(config.hero.threads):
        zero = zero_stage(frames, anchor, reference, progress=reporter.stage("zero", "Zero-Stage"))
    timings["zero"] = round(time.perf_counter() - start, 2)
    if on_zero is not None:
        on_zero(zero)

    mark = time.perf_counter()
    hero = HeroStage(config.hero)
    train = hero.fit(zero[anchor], frames[anchor], reference,
                     progress=reporter.stage("hero-train", "training the Hero-Stage on the anchor"),
                     zero_stage=zero_stage,
                     pairs_progress=reporter.stage("hero-pairs", "Zero-Stage on warped anchor copies"))
    timings["hero_train"] = round(time.perf_counter() - mark, 2)

    mark = time.perf_counter()
    out = hero.restore(zero, frames, progress=reporter.stage("hero", "Hero-Stage"))
    if config.keep_reference:
        out[anchor] = reference
    timings["hero"] = round(time.perf_counter() - mark, 2)
    return EditResult(out, zero, timings, train)


class _Forward:
    """A Reporter stand-in that forwards every stage to one ProgressFn (eval shows one bar per video)."""

    def __init__(self, progress: ProgressFn | None):
        self.progress = progress

    def stage(self, name: str, message: str = "") -> ProgressFn:
        return self.progress or (lambda done, total: None)


class Z2HMethod:
    """Zero-Stage + Hero-Stage as an eval method (``z2h``); options as in :meth:`EditConfig.from_options`."""

    name = "z2h"

    def __init__(self, **options: Any):
        self.config = EditConfig.from_options(**options)
        self.last_stats: dict[str, Any] | None = None  # the eval runner records these per video


    def settings(self) -> dict[str, Any]:
        return self.config.settings()

    def __call__(
        self, frames: np.ndarray, anchor: int, reference: np.ndarray, progress: ProgressFn | None = None
    ) -> np.ndarray:
        result = edit(frames, anchor, reference, self.config, _Forward(progress))  # type: ignore[arg-type]
        self.last_stats = {"train": result.train, "timings": result.timings}
        return result.frames
