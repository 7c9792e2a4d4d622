"""Shared test helpers. Imported by the Blender-side tests too, so nothing heavy at module level."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest


def write_random_vgg_cache(root: Path) -> Path:
    """Seeded random VGG16 weights in a Z2H_CACHE layout at ``root``; returns the weights folder.

    The real loading path (z2h.weights → safetensors) runs without `z2h weights fetch`.
    """
    import torch
    from safetensors.torch import save_file

    from z2h.models.vgg import vgg16_features

    torch.manual_seed(0)
    folder = Path(root) / "weights"
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in vgg16_features().state_dict().items()}
    save_file(state, str(folder / "vgg16_features.safetensors"))
    (folder / "provenance.json").write_text('{"source": "random weights made by the test"}')
    return folder


@pytest.fixture(scope="module")
def one_torch_thread():
    """2 shared cores: two torch threads under load ran tiny nets ~50x slower than one."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def random_vgg_cache(tmp_path_factory):
    """Random VGG16 weights in a private cache (Z2H_CACHE) for every test of the module that asks for it."""
    root = tmp_path_factory.mktemp("cache")
    write_random_vgg_cache(root)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("Z2H_CACHE", str(root))
        yield root


def pid_gone(pid: int, timeout: float = 5.0) -> bool:
    """True once process ``pid`` has exited (within ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        # A killed child of a dead parent is reaped by init; a zombie still answers kill(pid, 0).
        stat = Path(f"/proc/{pid}/stat")
        if stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z":
            return True
        time.sleep(0.05)
    return False
