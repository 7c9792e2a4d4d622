"""The working size of a frame, shared by every stage and engine (one rounding rule for all).

Both diffusion stages work on the same grid: FLUX packs 2x2 latent pixels per token and SD's U-Net pads
odd grids itself, so two latent pixels (16 px for SD and FLUX) is the only constraint either has. Halves
round UP: 1920x1080 at 512 is 512x288 in both stages (Python's ``round`` rounds halves to even, which
made it 512x256 in one stage and 512x288 in the other).
"""

from __future__ import annotations


def working_size(h: int, w: int, longer: int, multiple: int) -> tuple[int, int]:
    """(h, w) scaled so the longer side is ``longer``, each side the nearest multiple of ``multiple``
    (halves round up), at least ``multiple``."""
    if min(h, w, longer, multiple) < 1:
        raise ValueError(f"working size needs positive sizes, got {h}x{w}, longer side {longer}, "
                         f"multiple {multiple}")
    big = max(h, w)
    # exact integer arithmetic: n * longer / big / multiple, rounded half up (floats misround 4.5 to 4)
    return tuple(max(multiple, (2 * n * longer + big * multiple) // (2 * big * multiple) * multiple)
                 for n in (h, w))
