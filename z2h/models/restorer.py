"""The offline Hero-Stage network: a small conditional restoration CNN, trained from scratch per video.

It has the same two-condition interface as the diffusion Hero-Stage: condition 1 is the Zero-Stage
output of a frame, condition 2 the original frame. Each condition enters through its OWN input branch
(the offline analogue of the per-condition LoRAs of EasyControl); Mode 1 builds only branch 1, so it
cannot see condition 2 at all. The branches are summed and fed to a tiny two-scale body (full
resolution + one half-resolution level for context) that predicts a residual on top of condition 1:
the Zero-Stage output is already close to the answer, so the network only learns its correction.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass
class RestorerConfig:
    """Size of the restorer; ``conditions`` is the Hero-Stage mode (1 or 2)."""

    conditions: int = 2
    width: int = 32
    blocks: int = 2  # residual blocks per scale
    kernel: int = 3  # body convolutions: 3 (spatial) or 1 (per-pixel MLP, far cheaper)
    context: bool = True  # add the half-resolution level

    def __post_init__(self) -> None:
        if self.conditions not in (1, 2):
            raise ValueError(f"conditions (mode) must be 1 or 2, not {self.conditions}")
        if self.width < 4 or self.blocks < 1:
            raise ValueError(f"restorer width must be >= 4 and blocks >= 1, got {self.width}, {self.blocks}")


def _act(x: torch.Tensor) -> torch.Tensor:
    # Leaky: with plain ReLU the 3x3 variants sometimes died early in training (all units off -> identity).
    return F.leaky_relu(x, 0.1)


class ResBlock(nn.Module):
    def __init__(self, ch: int, kernel: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, kernel, padding=kernel // 2)
        self.conv2 = nn.Conv2d(ch, ch, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(_act(self.conv1(x)))


class ConditionBranch(nn.Module):
    """One condition's own input layers (the analogue of one condition's LoRA)."""

    def __init__(self, width: int):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(_act(self.conv1(x - 0.5)))


class Restorer(nn.Module):
    """``restorer(cond1, cond2=None) -> image``; tensors (B, 3, H, W) in [0, 1], any H, W."""

    def __init__(self, config: RestorerConfig | None = None):
        super().__init__()
        self.config = config = config or RestorerConfig()
        w = config.width
        self.branches = nn.ModuleList(ConditionBranch(w) for _ in range(config.conditions))
        k = config.kernel
        self.full = nn.Sequential(*(ResBlock(w, k) for _ in range(config.blocks)))
        if config.context:
            self.down = nn.Conv2d(w, 2 * w, 3, stride=2, padding=1)
            self.low = nn.Sequential(*(ResBlock(2 * w, k) for _ in range(config.blocks)))
            self.up = nn.Conv2d(2 * w, w, k, padding=k // 2)
        self.fuse = ResBlock(w, k)
        self.head = nn.Conv2d(w, 3, 3, padding=1)
        # Start as the identity on condition 1: training begins from the Zero-Stage output, not from noise.
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, cond1: torch.Tensor, cond2: torch.Tensor | None = None) -> torch.Tensor:
        x = self.branches[0](cond1)
        if self.config.conditions == 2:
            if cond2 is None:
                raise ValueError("a Mode 2 restorer needs condition 2 (the original frame)")
            x = x + self.branches[1](cond2)
        x = self.full(_act(x))
        if self.config.context:
            y = self.low(_act(self.down(x)))
            x = x + self.up(F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False))
        x = self.fuse(x)
        return cond1 + self.head(_act(x))

    def save(self, path: str) -> None:
        """Save config + weights as one torch file (small: a few hundred kB)."""
        torch.save({"config": asdict(self.config), "state_dict": self.state_dict()}, path)

    @classmethod
    def load(cls, path: str) -> Restorer:
        """Load a restorer written by :meth:`save`."""
        blob = torch.load(path, map_location="cpu", weights_only=True)
        model = cls(RestorerConfig(**blob["config"]))
        model.load_state_dict(blob["state_dict"])
        return model
