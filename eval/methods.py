"""The method contract and registry: every propagation method, baseline or z2h, is scored the same way.

A method sees only the ORIGINAL frames, the anchor index and the reference (the edited anchor frame) and
returns one frame per original frame::

    method(frames: (T, H, W, 3) uint8, anchor: int, reference: (H, W, 3) uint8,
           progress: ProgressFn | None = None) -> (T, H, W, 3) uint8

Registry entries are "module:factory" strings, so listing methods imports nothing heavy; a factory takes
keyword options and returns a callable with a ``name`` and a ``settings() -> dict`` (used for caching
and for table notes).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from z2h.progress import ProgressFn


class Method(Protocol):
    name: str

    def settings(self) -> dict[str, Any]: ...

    def __call__(
        self, frames: np.ndarray, anchor: int, reference: np.ndarray, progress: ProgressFn | None = None
    ) -> np.ndarray: ...


# name -> "module:factory". Owners add their entries here.
REGISTRY: dict[str, str] = {
    "z2h-zero": "z2h.zero_stage:ZeroStageMethod",
    "z2h": "z2h.pipeline:Z2HMethod",
    "z2h-paper": "z2h.pipeline:paper_method",
    # Baselines (eval/baselines/); `z2h eval run --methods baselines` runs all of them.
    "no-edit": "z2h.eval.baselines.simple:NoEdit",
    "colormap": "z2h.eval.baselines.colormap:ColorMap",
    "colormap-lut": "z2h.eval.baselines.colormap:lut_only",
    "flow-dis-direct": "z2h.eval.baselines.flow:dis_direct",
    "flow-dis-direct-fb": "z2h.eval.baselines.flow:dis_direct_fb",
    "flow-dis-chained": "z2h.eval.baselines.flow:dis_chained",
    "flow-dis-chained-fb": "z2h.eval.baselines.flow:dis_chained_fb",
    "flow-farneback-direct": "z2h.eval.baselines.flow:farneback_direct",
    "flow-farneback-direct-fb": "z2h.eval.baselines.flow:farneback_direct_fb",
    "flow-farneback-chained": "z2h.eval.baselines.flow:farneback_chained",
    "flow-farneback-chained-fb": "z2h.eval.baselines.flow:farneback_chained_fb",
    "flow-tvl1-direct": "z2h.eval.baselines.flow:tvl1_direct",
    "flow-tvl1-direct-fb": "z2h.eval.baselines.flow:tvl1_direct_fb",
    "flow-tvl1-chained": "z2h.eval.baselines.flow:tvl1_chained",
    "flow-tvl1-chained-fb": "z2h.eval.baselines.flow:tvl1_chained_fb",
    # RAFT (sintel weights by default; raft_weights=kitti|small|PATH), weights from `z2h weights fetch`
    "flow-raft-direct": "z2h.eval.baselines.flow:raft_direct",
    "flow-raft-direct-fb": "z2h.eval.baselines.flow:raft_direct_fb",
    "flow-raft-chained": "z2h.eval.baselines.flow:raft_chained",
    "flow-raft-chained-fb": "z2h.eval.baselines.flow:raft_chained_fb",
    # EbSynth, the external tool (eval/baselines/ebsynth.py); needs the binary (`make ebsynth`)
    "ebsynth": "z2h.eval.baselines.ebsynth:plain",
    "ebsynth-edge": "z2h.eval.baselines.ebsynth:edge",
    "ebsynth-temporal": "z2h.eval.baselines.ebsynth:temporal",
    "ebsynth-chained": "z2h.eval.baselines.ebsynth:chained",
}


# Registered, runnable by name, but left out of the groups `baselines`/`default`: each costs a full EbSynth
# pass (about 20-50 s per 256² frame on 2 busy cores) for a gain measured on one video only (docs/eval.md).
NOT_IN_GROUPS = frozenset({"ebsynth-edge", "ebsynth-chained"})


def available() -> list[str]:
    """Registered method names."""
    return sorted(REGISTRY)


def get_method(name: str, **options: Any) -> Method:
    """Build the method registered as ``name`` with ``options``."""
    if name not in REGISTRY:
        raise KeyError(f"unknown method {name!r}; available: {', '.join(available())}")
    module, factory = REGISTRY[name].split(":")
    make: Callable[..., Method] = getattr(importlib.import_module(module), factory)
    return make(**options)


def check_output(name: str, frames: np.ndarray, output: np.ndarray) -> np.ndarray:
    """Validate a method's output against its input; a clear error names the method and the problem."""
    output = np.asarray(output)
    if output.shape != frames.shape:
        raise ValueError(f"method {name!r} returned frames of shape {output.shape}, expected {frames.shape}")
    if output.dtype != np.uint8:
        raise ValueError(f"method {name!r} returned dtype {output.dtype}, expected uint8")
    return output
