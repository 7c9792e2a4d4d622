"""Torch's process-wide state, scoped to a block of work: the CPU thread count and the default generator.

eval's ``--jobs`` runs methods in threads of one process, so whatever one method sets there, another sees.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Use ``n`` torch CPU threads inside the block (0 = every core), restoring the old count after."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(n if n > 0 else (os.cpu_count() or 1))
    try:
        yield
    finally:
        torch.set_num_threads(old)


_SEEDING = threading.Lock()


@contextlib.contextmanager
def torch_seeded(seed: int) -> Iterator[None]:
    """Draw from torch's default generator, seeded with ``seed``, with no other thread seeding or drawing
    through this function meanwhile; the generator's old state comes back after the block.

    The generator is one per process: two methods building their models at once would otherwise mix their
    draws, and the same edit would score differently depending on scheduling.
    """
    import torch

    with _SEEDING, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
