"""EbSynth, the real tool: patch-based example-guided synthesis called as an external program.

Artists propagate a painted keyframe with EbSynth (Jamriška et al., "Stylizing Video by Example", 2019).
Here the ``ebsynth`` command-line tool (public domain, github.com/jamriska/ebsynth) synthesises every frame
from the reference (style = the edited anchor) under guides that pair the anchor with the target frame:

- ``ebsynth``: one colour guide, original anchor -> original target frame (the plain use of the tool);
- ``ebsynth-edge``: plus an edge guide (difference of Gaussians of both frames), as the EbSynth app adds;
- ``ebsynth-temporal``: plus a temporal guide, reference -> the previous output warped to this frame by
  optical flow (DIS), which asks for coherence with the frame before;
- ``ebsynth-chained``: frame by frame from the anchor outwards, each frame synthesised from the previous
  output with the previous original frame as its guide.

The binary: ``ebsynth_bin`` (``--ebsynth-bin``), else ``$Z2H_EBSYNTH``, else ``ebsynth`` on PATH, else the
copy ``make ebsynth`` builds into ``.cache/ebsynth/ebsynth`` of the repository.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from z2h.progress import ProgressFn

VARIANTS = ("plain", "edge", "temporal", "chained")
BUILT = Path(__file__).resolve().parents[2] / ".cache" / "ebsynth" / "ebsynth"  # where `make ebsynth` puts it
HOW_TO_BUILD = (
    "build it with `make ebsynth` (from ../shared/third_party/ebsynth) or from its public repository: "
    "git clone https://github.com/jamriska/ebsynth && g++ ebsynth/src/ebsynth.cpp "
    "ebsynth/src/ebsynth_cpu.cpp ebsynth/src/ebsynth_nocuda.cpp -DNDEBUG -O3 -fopenmp -Iebsynth/include "
    "-std=c++11 -o ebsynth; then pass --ebsynth-bin PATH or set Z2H_EBSYNTH"
)


def find_binary(explicit: str | Path | None = None) -> Path | None:
    """The ebsynth binary: ``explicit``, else $Z2H_EBSYNTH, else PATH, else the make-built copy, else None.

    An explicit path or $Z2H_EBSYNTH that is not an executable file is an error, never a silent fallback.
    """
    for label, given in (("--ebsynth-bin", explicit), ("Z2H_EBSYNTH", os.environ.get("Z2H_EBSYNTH"))):
        if given:
            path = Path(given).expanduser()
            if not (path.is_file() and os.access(path, os.X_OK)):
                raise FileNotFoundError(f"{label} {path}: not an executable file; {HOW_TO_BUILD}")
            return path
    on_path = shutil.which("ebsynth")
    if on_path:
        return Path(on_path)
    return BUILT if BUILT.is_file() and os.access(BUILT, os.X_OK) else None


def require_binary(explicit: str | Path | None = None) -> Path:
    """:func:`find_binary`, or a FileNotFoundError that says how to build the tool."""
    path = find_binary(explicit)
    if path is None:
        raise FileNotFoundError(f"ebsynth binary not found (no --ebsynth-bin, $Z2H_EBSYNTH, PATH or "
                                f"{BUILT}); {HOW_TO_BUILD}")
    return path


def edge_guide(image: np.ndarray, sigma: float = 2.0, gain: float = 4.0) -> np.ndarray:
    """Grey edge image: difference of Gaussians around mid-grey (flat regions are 128)."""
    import cv2

    gray = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY).astype(np.float32)
    dog = gray - cv2.GaussianBlur(gray, (0, 0), sigma)
    edges = np.clip(np.rint(128 + gain * dog), 0, 255).astype(np.uint8)
    return np.repeat(edges[..., None], 3, -1)


@dataclass
class EbSynthConfig:
    variant: str = "plain"
    ebsynth_bin: str | None = None
    edge_weight: float = 0.5  # per extra guide; the colour guide keeps weight 1
    temporal_weight: float = 0.5
    patchsize: int = 5  # the tool's defaults, written out so they are part of the cache key
    uniformity: float = 3500.0
    searchvoteiters: int = 6
    patchmatchiters: int = 4


class EbSynth:
    """Call the ebsynth binary once per non-anchor frame; the anchor gets the reference itself."""

    def __init__(self, **options: Any):
        self.config = c = EbSynthConfig(**options)
        if c.variant not in VARIANTS:
            raise ValueError(f"ebsynth variant must be one of {VARIANTS}, not {c.variant!r}")
        self.binary = require_binary(c.ebsynth_bin)
        self.name = "ebsynth" if c.variant == "plain" else f"ebsynth-{c.variant}"
        self._flow: Any = None

    def settings(self) -> dict[str, Any]:
        import hashlib

        c = self.config
        s: dict[str, Any] = {k: v for k, v in vars(c).items() if k != "ebsynth_bin"}
        # the binary's hash, not its path: the same tool anywhere gives the same cache key
        s["ebsynth_sha256"] = hashlib.sha256(self.binary.read_bytes()).hexdigest()[:16]
        guides = {"plain": "colour guide anchor->frame",
                  "edge": f"colour guide + edge guide (weight {c.edge_weight})",
                  "temporal": f"colour guide + temporal guide (previous output warped by DIS flow, "
                              f"weight {c.temporal_weight})",
                  "chained": "style = previous output, colour guide previous frame->frame"}[c.variant]
        s["source"] = (f"ebsynth (github.com/jamriska/ebsynth, CPU) {self.binary.name}; {guides}; "
                       f"patchsize {c.patchsize}, uniformity {c.uniformity:g}")
        return s

    def _run(self, tmp: Path, style: np.ndarray, guides: list[tuple[np.ndarray, np.ndarray, float | None]],
             tag: str) -> np.ndarray:
        from z2h.io import read_image, write_image

        c = self.config
        cmd = [str(self.binary), "-style", str(tmp / f"{tag}_style.png")]
        write_image(tmp / f"{tag}_style.png", style)
        for i, (src, tgt, weight) in enumerate(guides):
            a, b = tmp / f"{tag}_g{i}_src.png", tmp / f"{tag}_g{i}_tgt.png"
            write_image(a, src)
            write_image(b, tgt)
            cmd += ["-guide", str(a), str(b)] + (["-weight", f"{weight:g}"] if weight is not None else [])
        out = tmp / f"{tag}_out.png"
        cmd += ["-output", str(out), "-patchsize", str(c.patchsize), "-uniformity", f"{c.uniformity:g}",
                "-searchvoteiters", str(c.searchvoteiters), "-patchmatchiters", str(c.patchmatchiters),
                "-backend", "cpu"]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0 or not out.is_file():
            tail = (result.stdout + result.stderr).strip().splitlines()[-3:]
            raise RuntimeError(f"{self.binary} exited {result.returncode}: {' | '.join(tail)}")
        return read_image(out)

    def _warp_previous(self, frame: np.ndarray, prev_frame: np.ndarray, prev_out: np.ndarray) -> np.ndarray:
        from z2h.eval.baselines.flow import DIS, warp

        if self._flow is None:
            self._flow = DIS("medium")
        return warp(prev_out, self._flow(frame, prev_frame))

    def __call__(self, frames: np.ndarray, anchor: int, reference: np.ndarray,
                 progress: ProgressFn | None = None) -> np.ndarray:
        c = self.config
        out = np.empty_like(frames)
        out[anchor] = reference
        order = sorted(range(len(frames)), key=lambda t: abs(t - anchor))  # anchor first, then outwards
        edges = [edge_guide(f) for f in frames] if c.variant == "edge" else None
        with tempfile.TemporaryDirectory(prefix="z2h-ebsynth-") as tmp:
            for done, t in enumerate(order, 1):
                if t != anchor:
                    prev = t - 1 if t > anchor else t + 1  # the neighbour one step closer to the anchor
                    guides: list[tuple[np.ndarray, np.ndarray, float | None]]
                    style = reference
                    if c.variant == "chained":
                        style, guides = out[prev], [(frames[prev], frames[t], None)]
                    else:
                        guides = [(frames[anchor], frames[t], 1.0)]
                    if c.variant == "edge" and edges is not None:
                        guides.append((edges[anchor], edges[t], c.edge_weight))
                    if c.variant == "temporal":
                        warped = self._warp_previous(frames[t], frames[prev], out[prev])
                        guides.append((reference, warped, c.temporal_weight))
                    out[t] = self._run(Path(tmp), style, guides, f"{t:04d}")
                if progress:
                    progress(done, len(frames))
        return out


def _variant(variant: str):
    def make(**options: Any) -> EbSynth:
        return EbSynth(variant=variant, **options)

    make.__doc__ = "ebsynth" if variant == "plain" else f"ebsynth-{variant}"
    return make


plain = _variant("plain")
edge = _variant("edge")
temporal = _variant("temporal")
chained = _variant("chained")
