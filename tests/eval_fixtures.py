"""A tiny synthetic benchmark in the exact on-disk format v1 (docs/architecture.md).

Each video is a camera pan over a smooth random texture: frame t is a crop at offset ``t * step``, so
``frame[t+1](x) == frame[t](x + step)`` exactly and the true flow is known. The edited object is a disk
of the canvas whose colour channels are permuted in the edited canvas.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from z2h.io import write_frames, write_image


def texture(h: int, w: int, seed: int = 0, sigma: float = 2.5) -> np.ndarray:
    """Smooth random RGB texture (blurred noise), uint8: rich enough for every flow estimator."""
    from scipy.ndimage import gaussian_filter

    noise = gaussian_filter(np.random.default_rng(seed).normal(size=(h, w, 3)), (sigma, sigma, 0))
    return np.clip(128 + 45 * (noise - noise.mean()) / noise.std(), 0, 255).astype(np.uint8)


def pan_video(frames: int = 5, size: tuple[int, int] = (48, 64), step: tuple[int, int] = (2, 1),
              seed: int = 0) -> dict[str, np.ndarray]:
    """original/edited (T, H, W, 3), masks (T, H, W), true flows; a pan by ``step`` (dx, dy) px/frame."""
    h, w = size
    dx, dy = step
    ch, cw = h + abs(dy) * frames + 8, w + abs(dx) * frames + 8
    canvas = texture(ch, cw, seed)
    yy, xx = np.mgrid[0:ch, 0:cw]
    disk = (yy - ch / 2) ** 2 + (xx - cw / 2) ** 2 < (min(h, w) / 4) ** 2
    edited = canvas.copy()
    edited[disk] = canvas[disk][:, [2, 0, 1]]
    y0, x0 = 4 + (abs(dy) * frames if dy < 0 else 0), 4 + (abs(dx) * frames if dx < 0 else 0)

    def crop(a: np.ndarray, t: int) -> np.ndarray:
        return a[y0 + dy * t: y0 + dy * t + h, x0 + dx * t: x0 + dx * t + w]

    fwd = np.broadcast_to(np.array([-dx, -dy], np.float32), (frames - 1, h, w, 2))
    return {"original": np.stack([crop(canvas, t) for t in range(frames)]),
            "edited": np.stack([crop(edited, t) for t in range(frames)]),
            "masks": np.stack([crop(disk, t) for t in range(frames)]),
            "forward": fwd.copy(), "backward": -fwd}


def make_bench(root: Path, videos: dict[str, dict] | None = None, frames: int = 5, anchor: int = 1,
               size: tuple[int, int] = (48, 64), flow: bool = True) -> Path:
    """Write a benchmark; ``videos`` maps name -> {"step": (dx, dy), "seed": int, "tags": [...]}."""
    videos = videos or {"pan-right": {"step": (2, 1), "seed": 0, "tags": ["textured_background"]},
                        "pan-left": {"step": (-3, 0), "seed": 1, "tags": ["large_translation"]}}
    root.mkdir(parents=True, exist_ok=True)
    h, w = size
    for name, spec in videos.items():
        v = pan_video(frames, size, spec["step"], spec["seed"])
        folder = root / name
        write_frames(folder / "original", v["original"])
        write_frames(folder / "edited", v["edited"])
        for t, m in enumerate(v["masks"]):
            write_image(folder / "mask" / f"{t:04d}.png", (m * 255).astype(np.uint8))
        if flow:
            np.savez(folder / "flow.npz", forward=v["forward"].astype(np.float16),
                     backward=v["backward"].astype(np.float16))
        shift = float(np.hypot(*spec["step"]))
        meta = {"name": name, "spec": f"{name}.toml", "frames": frames, "anchor": anchor,
                "resolution": [w, h], "fps": 24, "edit": {"object": "disk", "kind": "color"},
                "tags": spec.get("tags", []),
                "per_frame": [{"frame": t, "displacement_px": abs(t - anchor) * shift, "rotation_deg": 0.0,
                               "mask_area": int(v["masks"][t].sum())} for t in range(frames)],
                "leakage": {}}
        (folder / "meta.json").write_text(json.dumps(meta))
    manifest = {"format": "z2h-bench", "version": 1, "created": "2026-11-25T00:00:00", "seed": 0,
                "settings": {"resolution": [w, h], "engine": "SYNTHETIC", "samples": 1},
                "videos": [{"name": n, "frames": frames, "anchor": anchor} for n in videos]}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root
