"""VGG16 feature pyramid (torchvision's ``vgg16().features`` layout) with the offline ImageNet weights.

The weights come from :func:`z2h.weights.load_backbone` (``z2h weights fetch``); without them loading
raises that module's FileNotFoundError, which tells the user what to run.
"""

from __future__ import annotations

import torch
from torch import nn

# torchvision ``features`` index of the ReLU after each named conv.
LAYERS = {"relu1_2": 3, "relu2_2": 8, "relu3_3": 15, "relu4_3": 22, "relu5_3": 29}
STRIDES = {"relu1_2": 1, "relu2_2": 2, "relu3_3": 4, "relu4_3": 8, "relu5_3": 16}
_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def vgg16_features(depth: int | None = None) -> nn.Sequential:
    """torchvision's VGG16 ``features`` (same indices, so its state dict loads), cut after index ``depth``."""
    layers: list[nn.Module] = []
    in_c = 3
    for v in _CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(in_c, v, 3, padding=1), nn.ReLU(inplace=True)]
            in_c = v
    return nn.Sequential(*layers[: None if depth is None else depth + 1])


class VGGFeatures(nn.Module):
    """Named ReLU activations of VGG16 for images in [0, 1] (ImageNet normalisation is done here)."""

    def __init__(self, layers: tuple[str, ...] = ("relu3_3", "relu4_3"), pretrained: bool = True):
        super().__init__()
        unknown = [name for name in layers if name not in LAYERS]
        if unknown or not layers:
            raise ValueError(f"unknown VGG16 layers {unknown}; choose from {', '.join(LAYERS)}")
        self.layers = tuple(layers)
        self.features = vgg16_features(max(LAYERS[name] for name in layers))
        if pretrained:
            from z2h.weights import load_backbone

            state = load_backbone("vgg16")
            keep = {key: t for key, t in state.items() if int(key.split(".")[0]) < len(self.features)}
            self.features.load_state_dict(keep, strict=True)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False).eval()

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """images (B, 3, H, W) in [0, 1] -> {layer: (B, C, H / stride, W / stride)}."""
        x = (images - self.mean) / self.std
        wanted = {LAYERS[name]: name for name in self.layers}
        out = {}
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in wanted:
                out[wanted[i]] = x
        return out
