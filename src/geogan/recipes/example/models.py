"""Generator and critic of the example recipe (registered here, so exports rebuild them)."""

from __future__ import annotations

import torch
from torch import nn

from geogan.core.modules import register_model
from geogan.nn import conv_nd


@register_model("example_generator")
class ExampleGenerator(nn.Module):
    """Noise ``[B, latent, N/4, N/4]`` -> field ``[B, 1, N, N]``: two x2 upsampling stages of
    circularly padded 3x3 convolutions (the truth is periodic)."""

    def __init__(self, *, latent_channels: int = 4, filters: int = 16) -> None:
        super().__init__()
        self.latent_channels = latent_channels
        layers: list[nn.Module] = [conv_nd(2, latent_channels, filters, 3, padding_mode="circular")]
        for _ in range(2):
            layers += [
                nn.LeakyReLU(0.2),
                nn.Upsample(scale_factor=2, mode="nearest"),
                conv_nd(2, filters, filters, 3, padding_mode="circular"),
            ]
        layers += [nn.LeakyReLU(0.2), conv_nd(2, filters, 1, 3, padding_mode="circular")]
        self.net = nn.Sequential(*layers)

    def noise_shape(self, batch: int, size: int) -> tuple[int, int, int, int]:
        return (batch, self.latent_channels, size // 4, size // 4)

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        return self.net(noise)


@register_model("example_critic")
class ExampleCritic(nn.Module):
    """Field ``[B, 1, N, N]`` -> score ``[B]`` (no batch norm: the gradient penalty is per sample)."""

    def __init__(self, *, filters: int = 16) -> None:
        super().__init__()
        self.net = nn.Sequential(
            conv_nd(2, 1, filters, 3, padding_mode="circular"),
            nn.LeakyReLU(0.2),
            nn.AvgPool2d(2),
            conv_nd(2, filters, 2 * filters, 3, padding_mode="circular"),
            nn.LeakyReLU(0.2),
            nn.AvgPool2d(2),
            conv_nd(2, 2 * filters, 1, 3, padding_mode="circular"),
        )

    def forward(self, field: torch.Tensor) -> torch.Tensor:
        return self.net(field).mean(dim=(1, 2, 3))
