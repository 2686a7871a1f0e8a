"""The MixLC generator: two U-Nets (image branch, map branch), concatenated, then a residual
block and a convolution (seed 002). Registered here so that exports rebuild it."""

from __future__ import annotations

import torch
from torch import nn

from geogan.core.errors import ConfigError
from geogan.core.modules import register_model
from geogan.models._shapes import check_tensor
from geogan.models.unet import UNet, init_gan_weights
from geogan.nn import ResidualBlock, check_dims, conv_nd

__all__ = ["MixLCGenerator"]

_EDGE = 1.0 - 1e-3  # atanh(+-0.999) = +-3.8: keeps saturated pixels finite


@register_model("mixlc_generator")
class MixLCGenerator(nn.Module):
    """``(rgb [B, 3, *S], landcover [B, N, *S] one-hot, noise [B, K, *S] | None) -> rgb
    [B, 3, *S]`` in [-1, 1].

    ``rgb_net`` (U-Net on the image) and ``lc_net`` (U-Net on the map) each give
    ``branch_channels`` feature maps at full resolution; their concatenation goes through
    one residual block (batch norm when ``norm="batch"``) and a 3^d convolution with tanh.
    Dropout (``dropout`` in the ``dropout_levels`` innermost up levels of both U-Nets) stays
    on at inference when ``dropout_at_inference`` (pix2pix's noise source); ``noise_channels
    > 0`` adds an explicit standard normal input, concatenated to both branches' inputs.
    ``residual`` (ours, off in seed 002): the output is ``tanh(atanh(rgb) + h)`` instead of
    ``tanh(h)``, so the network learns only what to change in the input image.
    """

    def __init__(
        self,
        *,
        dims: int = 2,
        image_channels: int = 3,
        n_classes: int = 17,
        noise_channels: int = 0,
        filters: int = 32,
        depth: int = 6,
        max_filters: int | None = None,
        branch_channels: int | None = None,
        norm: str = "batch",
        dropout: float = 0.5,
        dropout_levels: int = 3,
        dropout_at_inference: bool = True,
        init_gain: float = 0.02,
        residual: bool = False,
    ) -> None:
        super().__init__()
        self.dims = check_dims(dims)
        if n_classes < 1:
            raise ConfigError(f"n_classes must be >= 1, got {n_classes}")
        self.residual = residual
        self.image_channels, self.n_classes, self.noise_channels = (
            image_channels,
            n_classes,
            noise_channels,
        )
        branch = branch_channels or filters
        unet = dict(
            dims=dims,
            out_channels=branch,
            filters=filters,
            depth=depth,
            max_filters=max_filters,
            norm=norm,
            dropout=dropout,
            dropout_levels=dropout_levels,
            dropout_at_inference=dropout_at_inference,
            output_activation="none",
            init_gain=init_gain,
        )
        self.rgb_net = UNet(in_channels=image_channels + noise_channels, **unet)
        self.lc_net = UNet(in_channels=n_classes + noise_channels, **unet)
        self.block = ResidualBlock(dims, 2 * branch, 2 * branch, batch_norm=norm == "batch")
        self.act = nn.LeakyReLU(0.2)
        self.out = conv_nd(dims, 2 * branch, image_channels, 3, padding_mode="reflect")
        if init_gain > 0:
            init_gan_weights(self.block, init_gain)
            init_gan_weights(self.out, init_gain)

    @property
    def multiple(self) -> int:
        return self.rgb_net.multiple

    def forward(
        self, rgb: torch.Tensor, landcover: torch.Tensor, noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        who = "MixLCGenerator"
        check_tensor(rgb, who=who, name="rgb", dims=self.dims, channels=self.image_channels)
        spatial = tuple(rgb.shape[2:])
        check_tensor(
            landcover,
            who=who,
            name="landcover",
            dims=self.dims,
            channels=self.n_classes,
            spatial=spatial,
        )
        if self.noise_channels:
            if noise is None:
                raise ConfigError(f"{who} needs noise of {self.noise_channels} channels")
            check_tensor(
                noise,
                who=who,
                name="noise",
                dims=self.dims,
                channels=self.noise_channels,
                spatial=spatial,
            )
            rgb, landcover = torch.cat([rgb, noise], 1), torch.cat([landcover, noise], 1)
        image = rgb[:, : self.image_channels]
        h = torch.cat([self.rgb_net(rgb), self.lc_net(landcover)], dim=1)
        h = self.out(self.act(self.block(h)))
        if self.residual:
            # tanh(atanh(image) + h): exactly the input image when h = 0, so copying the
            # unchanged part of the tile is the starting point, not something to learn
            h = h + torch.atanh(image.clamp(-_EDGE, _EDGE))
        return torch.tanh(h)
