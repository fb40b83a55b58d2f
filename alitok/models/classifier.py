"""The domain classifier: a small CNN whose pooled features stand in for Inception on the embedded dataset.

It is an evaluation instrument only (FID/IS features, class consistency of generated images), never a
training loss. Input normalisation lives inside the model (a BatchNorm without affine parameters on the
input), so callers pass plain [0, 1] images and the statistics travel with the checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
from einops import reduce


@dataclass
class ClassifierConfig:
    num_classes: int
    width: int  # channels of the first stage; the next three double it


def conv_bn(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class Classifier(nn.Module):
    """Conv/max-pool stages, four halvings: the receptive field spans the whole shape, which is what separates
    the classes. Global average pooling makes it size-agnostic (32 and 64 px alike)."""

    def __init__(self, config: ClassifierConfig):
        super().__init__()
        self.config = config
        w = config.width
        self.input_norm = nn.BatchNorm2d(3, affine=False)
        self.body = nn.Sequential(
            conv_bn(3, w),
            nn.MaxPool2d(2),
            conv_bn(w, 2 * w),
            nn.MaxPool2d(2),
            conv_bn(2 * w, 4 * w),
            nn.MaxPool2d(2),
            conv_bn(4 * w, 8 * w),
            nn.MaxPool2d(2),
            conv_bn(8 * w, 8 * w),
        )
        self.head = nn.Linear(8 * w, config.num_classes)

    @property
    def feature_dim(self) -> int:
        return self.head.in_features

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: float [0, 1], (N, 3, H, W). Returns pooled features (N, D) and logits (N, C)."""
        h = self.body(self.input_norm(x))
        pooled = reduce(h, "n c h w -> n c", "mean")
        return pooled, self.head(pooled)

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x: float [0, 1], (N, 3, H, W). Activations after each conv stage, fine to coarse: the layers an
        LPIPS-like distance compares when this network stands in for VGG (smoke profile)."""
        h = self.input_norm(x)
        maps = []
        for layer in self.body:
            h = layer(h)
            if not isinstance(layer, nn.MaxPool2d):
                maps.append(h)
        return maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)[1]
