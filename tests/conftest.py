"""Shared test helpers. Imported by the Blender-side tests too, so nothing heavy at module level."""

from __future__ import annotations

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
