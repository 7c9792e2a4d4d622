"""The end-to-end edit: Zero-Stage (correspondence-guided attention) -> Hero-Stage (learned restoration).

:func:`run_edit` is the one implementation, over frame sequences (z2h/frames.py): frames are read when a
stage needs them and every finished frame goes straight to a store, so memory does not grow with the
video's length. Both stages visit frames in :func:`z2h.frames.anchor_order` (the anchor, then outward).
With ``work_resolution`` set, both stages run on frames resized so their longer side is that many pixels,
and each finished frame is lifted back to full size (z2h/upsample.py).

``edit(frames, anchor, reference, config, reporter)`` is the in-memory front (arrays in, arrays out) that
the eval method ``z2h`` (:class:`Z2HMethod`) runs; ``z2h edit`` streams folders (z2h/edit_cli.py). Progress
stages: "zero", "hero-pairs" (offline engine: the Zero-Stage on the warped anchor copies), "hero-train",
"hero" (with z2h v2's fusion, z2h/flow_fusion.py, applied to each restored frame at the working size).

Presets: ``v2`` (default) adds tracking, the colour lookup and flow fusion (:class:`FusionConfig`);
``paper`` is the paper's method alone: Zero-Stage k=1, Hero-Stage trained on the anchor triplet.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from z2h.flow_fusion import FusionConfig
from z2h.frames import ArrayStore, FrameSequence, ResizedFrames, anchor_order, resize
from z2h.hero_stage import HeroConfig
from z2h.progress import ProgressFn, Reporter
from z2h.zero_stage.config import ZeroStageConfig

PRESETS = ("v2", "paper")


@dataclass
class EditConfig:
    """Both stages' settings, plus z2h v2's additions (``fusion``: tracking, colour lookup, flow fusion).

    ``keep_reference``: the anchor's output frame is the reference itself. ``preset`` names the defaults
    the config started from (``v2`` or ``paper``, see :meth:`from_options`).
    """

    zero: ZeroStageConfig = field(default_factory=ZeroStageConfig)
    hero: HeroConfig = field(default_factory=HeroConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    keep_reference: bool = True
    preset: str = "v2"
    # Longer side (px) both stages run at; bigger videos are lifted to full size by ``lift``
    # (z2h/upsample.py). None: the stages run at full size.
    work_resolution: int | None = None
    lift: str = "guided"

    def __post_init__(self) -> None:
        from z2h.upsample import LIFTS

        if self.work_resolution is not None and self.work_resolution < 32:
            raise ValueError(f"work_resolution must be >= 32 px (or None), not {self.work_resolution}")
        if self.lift not in LIFTS:
            raise ValueError(f"lift must be one of {', '.join(LIFTS)}, not {self.lift!r}")

    @property
    def engine(self) -> str:
        zero, hero = self.zero.engine, self.hero.engine
        return hero if hero == zero else f"{zero}+{hero}"

    @classmethod
    def from_options(cls, **options: Any) -> EditConfig:
        """Build from flat options: ``engine`` and ``seed`` set both stages; ``zero_X`` / ``hero_X`` pick a
        stage explicitly; any other name goes to the config that has that field. ``preset="paper"`` starts
        from the paper's method (k=1, no pseudo pairs, no fusion); explicit options still override it."""
        preset = options.pop("preset", "v2")
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; presets are {', '.join(PRESETS)}")
        if preset == "paper":
            off = {"track": False, "colour": False, "flow": False, "temporal": 0.0, "direct": False,
                   "arbitrate": False}
            options = {"k": 1, "pseudo_pairs": 0, **off, **options}
        zero_names = {f.name for f in fields(ZeroStageConfig)}
        hero_names = {f.name for f in fields(HeroConfig)}
        fusion_names = {f.name for f in fields(FusionConfig)}
        zero: dict[str, Any] = {}
        hero: dict[str, Any] = {}
        fusion: dict[str, Any] = {}
        top: dict[str, Any] = {"preset": preset}
        for key, value in options.items():
            if key in ("engine", "seed"):
                zero[key] = hero[key] = value
            elif key in ("keep_reference", "work_resolution", "lift"):
                top[key] = value
            elif key in fusion_names:
                fusion[key] = value
            elif key.startswith("zero_") and key[5:] in zero_names:
                zero[key[5:]] = value
            elif key.startswith("hero_") and key[5:] in hero_names:
                hero[key[5:]] = value
            elif key in hero_names:  # hero first: "zero_model"/"hero_model" are real field names too
                hero[key] = value
            elif key in zero_names:
                zero[key] = value
            else:
                names = zero_names | hero_names | fusion_names
                raise ValueError(f"unknown z2h option {key!r}; options are preset and the fields of "
                                 f"ZeroStageConfig, HeroConfig and FusionConfig: {', '.join(sorted(names))}")
        return cls(ZeroStageConfig(**zero), HeroConfig(**hero), FusionConfig(**fusion), **top)

    def settings(self) -> dict[str, Any]:
        """Everything that determines the output (run.json, eval caching)."""
        out = {"engine": self.engine, "preset": self.preset, "zero": self.zero.settings(),
               "hero": self.hero.settings(), "fusion": self.fusion.settings(),
               "keep_reference": self.keep_reference}
        if self.work_resolution is not None:  # absent when unused: earlier eval cache keys stay valid
            out.update(work_resolution=self.work_resolution, lift=self.lift)
        return out


def working_shape(height: int, width: int, work_resolution: int | None) -> tuple[int, int]:
    """(h, w) with the longer side ``work_resolution`` (even sides), or the size itself if not larger."""
    from z2h.sizes import working_size

    if not work_resolution or max(height, width) <= work_resolution:
        return height, width
    return working_size(height, width, work_resolution, 2)


@dataclass
class EditResult:
    frames: np.ndarray  # (T, H, W, 3) uint8: the edited video
    zero_frames: np.ndarray  # the Zero-Stage output (at the working resolution)
    timings: dict[str, float]  # seconds per stage
    train: dict[str, Any]  # Hero-Stage training statistics
    fusion: dict[str, Any] = field(default_factory=dict)  # v2 fusion statistics (empty when off)


def run_edit(
    frames: FrameSequence,
    anchor: int,
    reference: np.ndarray,
    zero_out: Any,
    out: Any,
    config: EditConfig | None = None,
    reporter: Reporter | None = None,
    after_zero: Callable[[], None] | None = None,
    hero_weights: str | Path | None = None,
) -> dict[str, Any]:
    """Propagate ``reference`` (the edited frame ``anchor``) through ``frames``, frame by frame.

    ``frames`` is a frame sequence (an array, or lazy); Zero-Stage frames (working resolution) go to the
    store ``zero_out`` and final frames (full size) to ``out`` as each is finished. Frames already in a
    store's ``done`` set are not redone (resume). ``after_zero()`` runs when the Zero-Stage is done.
    ``hero_weights``: a file for the offline restorer's weights, loaded when it exists (with the training
    statistics beside it) instead of training, written after training otherwise.
    Returns {"timings": seconds per stage, "train": Hero-Stage training statistics}.
    Cancellation raises :class:`z2h.progress.Cancelled`.
    """
    from z2h.hero_stage import HeroStage
    from z2h.threads import torch_threads
    from z2h.upsample import lift
    from z2h.zero_stage import ZeroStage
    from z2h.zero_stage.offline import check_inputs

    config = config or EditConfig()
    reporter = reporter or Reporter("none")
    check_inputs(frames, anchor, reference)
    n_frames, height, width = frames.shape[:3]
    size = working_shape(height, width, config.work_resolution)
    lifted = size != (height, width)
    work = ResizedFrames(frames, size) if lifted else frames
    work_ref = resize(reference, size)
    order = [i for i, _ in anchor_order(n_frames, anchor)]
    timings: dict[str, float] = {}
    start = time.perf_counter()

    zero_stage = ZeroStage(config.zero)
    todo = [i for i in order if i not in zero_out.done]
    progress = reporter.stage("zero", "Zero-Stage")
    # The hero's thread count holds for the whole edit: on a busy machine 1 thread beat 2 here too.
    with torch_threads(config.hero.threads):
        if todo:
            stream = getattr(zero_stage, "stream", None) or _chunked(zero_stage)
            for i, frame in stream(work, anchor, work_ref, todo, progress=progress):
                zero_out[i] = frame
        else:
            progress(0, 0)
    timings["zero"] = round(time.perf_counter() - start, 2)
    if after_zero is not None:
        after_zero()

    mark = time.perf_counter()
    hero = HeroStage(config.hero)
    weights = Path(hero_weights) if hero_weights and config.hero.engine == "offline" else None
    stats = weights.with_suffix(".json") if weights else None
    if weights and weights.is_file() and stats.is_file():
        hero.impl.load(weights)
        train = {**json.loads(stats.read_text()), "loaded": str(weights)}
        reporter.stage("hero-train", "Hero-Stage restorer loaded")(1, 1)
    else:
        train = hero.fit(zero_out[anchor], work[anchor], work_ref,
                         progress=reporter.stage("hero-train", "training the Hero-Stage on the anchor"),
                         zero_stage=zero_stage,
                         pairs_progress=reporter.stage("hero-pairs", "Zero-Stage on warped anchor copies"))
        if weights:
            from z2h.io import atomic_write_bytes

            hero.impl.save(weights)
            atomic_write_bytes(stats, json.dumps(train).encode())
    timings["hero_train"] = round(time.perf_counter() - mark, 2)

    mark = time.perf_counter()
    todo = [i for i in order if i not in out.done]
    keep = anchor if config.keep_reference else None
    progress = reporter.stage("hero", "Hero-Stage")
    restore = [i for i in todo if i != keep]
    if keep in todo:  # the anchor's output is the reference itself: no restoring needed
        out[keep] = reference
    fuser = fusion_steps(config, work, anchor, work_ref, zero_out, restore)
    for i, frame in hero.restore_stream(zero_out, work, restore, progress=progress):
        frame = fuser(i, frame)
        out[i] = lift(frame, work[i], frames[i], config.lift) if lifted else frame
    if not restore:
        progress(0, 0)
    timings["hero"] = round(time.perf_counter() - mark, 2)
    return {"timings": timings, "train": train, "fusion": getattr(fuser, "stats", dict)()}


def fusion_steps(
    config: EditConfig, work: FrameSequence, anchor: int, reference: np.ndarray, zero_out: Any,
    restore: list[int],
) -> Callable[[int, np.ndarray], np.ndarray]:
    """``step(i, restored) -> frame``: z2h v2's fusion for each restored frame (identity when it is off).

    Frames come in anchor order; tracking runs over every frame from the anchor out, also those a resumed
    edit does not restore again, so the chain reaches frame i whatever was done before.
    """
    if not config.fusion.enabled:
        return lambda i, frame: frame
    from z2h.flow_fusion import Fuser

    fuser = Fuser(anchor, work[anchor], reference, config.fusion)
    wanted = set(restore)
    chain = iter(anchor_order(len(work), anchor))

    def step(i: int, restored: np.ndarray) -> np.ndarray:
        if i not in wanted:
            return restored
        for t, previous in chain:  # catch up to frame i (the hero restores in the same order)
            if t == i:
                return fuser(t, work[t], restored, zero_out[t], previous)
            fuser(t, work[t], zero_out[t], zero_out[t], previous)  # tracking only
        raise ValueError(f"frame {i} restored out of anchor order")

    step.stats = fuser.stats  # type: ignore[attr-defined]
    return step


def _chunked(zero_fn: Callable[..., np.ndarray], size: int = 8):
    """A ``stream`` for a Zero-Stage-like callable that only takes whole arrays (ZeroFn): it runs on
    chunks of ``size`` frames, each with the anchor prepended as frame 0."""

    def stream(frames, anchor, reference, order, progress=None):
        progress = progress or (lambda done, total: None)
        progress(0, len(order))
        for start in range(0, len(order), size):
            ids = order[start:start + size]
            out = zero_fn(np.stack([frames[anchor]] + [frames[i] for i in ids]), 0, reference)
            yield from zip(ids, out[1:], strict=True)
            progress(start + len(ids), len(order))

    return stream


def edit(
    frames: np.ndarray,
    anchor: int,
    reference: np.ndarray,
    config: EditConfig | None = None,
    reporter: Reporter | None = None,
    on_zero: Callable[[np.ndarray], None] | None = None,
) -> EditResult:
    """In-memory :func:`run_edit`: (T, H, W, 3) uint8 frames in, an :class:`EditResult` out.

    ``on_zero(zero_frames)`` runs as soon as the Zero-Stage is done.
    """
    from z2h.zero_stage.offline import check_inputs

    config = config or EditConfig()
    check_inputs(frames, anchor, reference)
    frames, reference = np.asarray(frames), np.asarray(reference)
    size = working_shape(*frames.shape[1:3], config.work_resolution)
    zero, out = ArrayStore((len(frames), *size, 3)), ArrayStore(frames.shape)
    run = run_edit(frames, anchor, reference, zero, out, config, reporter,
                   after_zero=(lambda: on_zero(zero.array)) if on_zero else None)
    return EditResult(out.array, zero.array, run["timings"], run["train"], run.get("fusion", {}))


class _Forward:
    """A Reporter stand-in that forwards every stage to one ProgressFn (eval shows one bar per video)."""

    def __init__(self, progress: ProgressFn | None):
        self.progress = progress

    def stage(self, name: str, message: str = "") -> ProgressFn:
        return self.progress or (lambda done, total: None)


class Z2HMethod:
    """Zero-Stage + Hero-Stage (+ v2 fusion) as an eval method (``z2h``); options as in
    :meth:`EditConfig.from_options`."""

    name = "z2h"

    def __init__(self, **options: Any):
        self.config = EditConfig.from_options(**options)
        if self.config.preset != "v2":
            self.name = f"z2h-{self.config.preset}"
        self.last_stats: dict[str, Any] | None = None  # the eval runner records these per video


    def settings(self) -> dict[str, Any]:
        return self.config.settings()

    def __call__(
        self, frames: np.ndarray, anchor: int, reference: np.ndarray, progress: ProgressFn | None = None
    ) -> np.ndarray:
        result = edit(frames, anchor, reference, self.config, _Forward(progress))  # type: ignore[arg-type]
        self.last_stats = {"train": result.train, "timings": result.timings, "fusion": result.fusion}
        return result.frames


def paper_method(**options: Any) -> Z2HMethod:
    """The ``z2h-paper`` eval method: the paper's two stages, none of the v2 additions."""
    return Z2HMethod(preset="paper", **options)
