"""Frame sequences: lazy sources and per-frame stores, so an edit never holds a whole video in memory.

A *frame sequence* is anything with ``len(seq)``, ``seq[i] -> (H, W, 3) uint8`` and ``seq.shape ==
(T, H, W, 3)``: a numpy array is one (eval, tests), :class:`FolderFrames` reads a frame only when asked
(``z2h edit``), :class:`ResizedFrames` resizes on access (the working resolution). A *store* takes
finished frames one at a time (``store[i] = frame``): :class:`ArrayStore` in memory, :class:`FolderStore`
as ``NNNN.png`` written atomically the moment the frame is done.

:func:`anchor_order` is the order the stages visit frames in: the anchor, then outward to both ends, each
frame with its neighbour towards the anchor (what sequential steps such as chained tracking need).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import numpy as np


class FrameSequence(Protocol):
    shape: tuple[int, ...]

    def __len__(self) -> int: ...

    def __getitem__(self, i: int) -> np.ndarray: ...


def anchor_order(n_frames: int, anchor: int) -> list[tuple[int, int | None]]:
    """``[(frame, previous), ...]``: the anchor (previous None), then anchor+1 .. end, then anchor-1 .. 0.

    ``previous`` is the frame's neighbour towards the anchor, always visited earlier.
    """
    if not 0 <= anchor < n_frames:
        raise ValueError(f"anchor {anchor} out of range for {n_frames} frames")
    order: list[tuple[int, int | None]] = [(anchor, None)]
    order += [(i, i - 1) for i in range(anchor + 1, n_frames)]
    order += [(i, i + 1) for i in range(anchor - 1, -1, -1)]
    return order


class FolderFrames:
    """The frames of a folder of images (natural order), each read from disk when indexed."""

    ndim, dtype = 4, np.dtype(np.uint8)

    def __init__(self, folder: str | Path):
        from z2h.io import frame_paths, image_size

        self.folder = Path(folder)
        self.paths = frame_paths(self.folder)
        w, h = image_size(self.paths[0])
        for p in self.paths[1:]:  # headers only: a bad frame fails now, not halfway through an edit
            if image_size(p) != (w, h):
                pw, ph = image_size(p)
                raise ValueError(f"frame {p.name} is {pw}x{ph}, but {self.paths[0].name} is {w}x{h}: all "
                                 "frames must have one size")
        self.shape = (len(self.paths), h, w, 3)
        self._last: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> np.ndarray:
        from z2h.io import read_image

        if self._last is not None and self._last[0] == i:  # stages read a frame 2-3 times in a row
            return self._last[1]
        frame = read_image(self.paths[i])
        frame.flags.writeable = False  # shared with the next reader of the same frame
        self._last = (i, frame)
        return frame

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self[i] for i in range(len(self)))


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, C) uint8 image to (h, w) = ``size``: area averaging down, bicubic up."""
    import cv2

    h, w = image.shape[:2]
    if (h, w) == tuple(size):
        return image
    interp = cv2.INTER_AREA if size[0] <= h and size[1] <= w else cv2.INTER_CUBIC
    return cv2.resize(image, (size[1], size[0]), interpolation=interp)


class ResizedFrames:
    """A view of a frame sequence resized to (h, w) on access (nothing cached)."""

    ndim, dtype = 4, np.dtype(np.uint8)

    def __init__(self, frames: FrameSequence, size: tuple[int, int]):
        self.frames, self.size = frames, (int(size[0]), int(size[1]))
        self.shape = (len(frames), *self.size, 3)
        self._last: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i: int) -> np.ndarray:
        if self._last is None or self._last[0] != i:
            frame = resize(self.frames[i], self.size)
            frame.flags.writeable = False
            self._last = (i, frame)
        return self._last[1]

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self[i] for i in range(len(self)))


class ArrayStore:
    """Finished frames kept in one preallocated (T, H, W, 3) array (the in-memory ``edit``)."""

    def __init__(self, shape: tuple[int, ...]):
        self.array = np.zeros(shape, np.uint8)
        self.shape = self.array.shape
        self.done: set[int] = set()

    def __len__(self) -> int:
        return len(self.array)

    def __setitem__(self, i: int, frame: np.ndarray) -> None:
        self.array[i] = frame
        self.done.add(i)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.array[i]


class FolderStore:
    """Finished frames as ``folder/NNNN.png``, each written atomically as soon as it is set.

    ``on_write(i, path)`` runs after each write (the edit CLI records a hash per frame for ``--resume``).
    ``done`` holds the indices already there and trusted (the caller checks them before adding them).
    """

    def __init__(self, folder: str | Path, shape: tuple[int, ...],
                 on_write: Callable[[int, Path], None] | None = None, compress_level: int = 1):
        self.folder, self.shape, self.on_write = Path(folder), tuple(shape), on_write
        # zlib level 1: a 1080p frame encodes in 0.4 s instead of 1.8 s at Pillow's default 6, and the
        # file was no larger (measured on perf/edit_scale.py's frames, which carry full-res grain)
        self.compress_level = compress_level
        self.done: set[int] = set()

    def path(self, i: int) -> Path:
        return self.folder / f"{i:04d}.png"

    def __len__(self) -> int:
        return self.shape[0]

    def __setitem__(self, i: int, frame: np.ndarray) -> None:
        from z2h.io import write_image

        if frame.shape != self.shape[1:]:
            raise ValueError(f"frame {i} is {frame.shape}, the store holds {self.shape[1:]}")
        write_image(self.path(i), frame, compress_level=self.compress_level)
        self.done.add(i)
        if self.on_write is not None:
            self.on_write(i, self.path(i))

    def __getitem__(self, i: int) -> np.ndarray:
        from z2h.io import read_image

        return read_image(self.path(i))
