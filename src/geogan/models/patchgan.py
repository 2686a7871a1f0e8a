"""PatchGAN discriminator of pix2pix, dimension-generic, with an optional per-pixel
auxiliary classification head (ACGAN).

``forward(image [B, C, *S], cond [B, K, *S] | None)`` returns patch logits
``[B, 1, *s]`` (one real/fake score per patch), and with ``aux_classes > 0`` also
per-pixel class logits ``[B, aux_classes, *S]``.

With ``dims=2, filters=64, n_layers=3, norm="batch", tail="valid"`` the patch trunk is
pix2pix's ``basic`` discriminator (``NLayerDiscriminator``, 70x70 receptive field, 2.769 M
parameters for 6 input channels): 4^d convolutions, stride 2 for the first ``n_layers``
then two of stride 1, widths ``filters * min(2**k, 8)``, LeakyReLU(0.2), the norm on all
but the first and the last. A 256^2 input gives 30^2 patches. ``tail="same"`` pads the
two stride-1 convolutions by (1, 2) so that the patch grid is exactly ``S / 2**n_layers``
(64^2 tiles and 3 layers: 8 x 8 patches).

The auxiliary head classifies the *image* alone: the condition (the land-cover map the
image should show) is concatenated at the input of the patch trunk, so a head on the
trunk could read the answer off the map. The head therefore starts from the image part
of the first convolution (its weights applied to the image channels only; the trunk's
first layer is that plus the condition part, which is the same linear map as one
convolution over the concatenation), then ``aux_layers`` 3^d convolutions at half
resolution, a 1x1 convolution to the class logits, and bilinear upsampling by 2.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from geogan.core.errors import ConfigError
from geogan.core.modules import register_model
from geogan.models._shapes import check_tensor
from geogan.models.unet import NORMS, init_gan_weights, norm_nd
from geogan.nn import check_dims, conv_nd

__all__ = ["PatchGAN", "TAILS"]

TAILS = ("valid", "same")


@register_model("patchgan")
class PatchGAN(nn.Module):
    """pix2pix PatchGAN (module docstring).

    Args:
        dims: 2 or 3 spatial axes.
        in_channels: image channels (e.g. 3 for RGB).
        cond_channels: condition channels concatenated to the image (pix2pix: the input
            image; here e.g. the one-hot land cover); 0 for an unconditional critic.
        filters: width of the first layer (pix2pix ``ndf``).
        n_layers: stride-2 layers (3: ``basic``).
        norm: ``batch``, ``instance`` or ``none``.
        tail: ``valid`` (pix2pix) or ``same`` (patch grid = size / 2**n_layers).
        aux_classes: classes of the per-pixel auxiliary head (0: no head).
        aux_layers: 3^d convolutions in the head.
        init_gain: std of the N(0, gain) initialisation (pix2pix 0.02); 0 keeps PyTorch's.
    """

    def __init__(
        self,
        *,
        dims: int = 2,
        in_channels: int = 3,
        cond_channels: int = 3,
        filters: int = 64,
        n_layers: int = 3,
        norm: str = "batch",
        tail: str = "valid",
        aux_classes: int = 0,
        aux_layers: int = 2,
        init_gain: float = 0.02,
    ) -> None:
        super().__init__()
        self.dims = check_dims(dims)
        if norm not in NORMS:
            raise ConfigError(f"unknown norm {norm!r}; choose one of {', '.join(NORMS)}")
        if tail not in TAILS:
            raise ConfigError(f"unknown tail {tail!r}; choose one of {', '.join(TAILS)}")
        if n_layers < 1:
            raise ConfigError(f"PatchGAN n_layers must be >= 1, got {n_layers}")
        self.in_channels, self.cond_channels = in_channels, cond_channels
        self.n_layers, self.tail, self.aux_classes = n_layers, tail, aux_classes
        bias = norm != "batch"
        pad = 1 if tail == "valid" else ((1, 2),) * dims
        self.first = conv_nd(dims, in_channels + cond_channels, filters, 4, 2, "zeros", padding=1)
        layers: list[nn.Module] = []
        width = filters
        for k in range(1, n_layers + 1):
            out = filters * min(2**k, 8)
            stride = 2 if k < n_layers else 1
            layers += [
                conv_nd(
                    dims, width, out, 4, stride, "zeros", bias, padding=1 if stride == 2 else pad
                ),
                norm_nd(norm, dims, out),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            width = out
        layers.append(conv_nd(dims, width, 1, 4, 1, "zeros", padding=pad))
        self.trunk = nn.Sequential(*layers)
        if aux_classes > 0:
            head: list[nn.Module] = []
            for _ in range(aux_layers):
                head += [
                    conv_nd(dims, filters, filters, 3, 1, "zeros"),
                    nn.LeakyReLU(0.2, inplace=True),
                ]
            head.append(conv_nd(dims, filters, aux_classes, 1))
            self.aux = nn.Sequential(*head)
        else:
            self.aux = None
        if init_gain > 0:
            init_gan_weights(self, init_gain)

    def patch_shape(self, spatial: tuple[int, ...]) -> tuple[int, ...]:
        """Patch grid for an input of spatial size ``spatial``."""
        out = []
        for n in spatial:
            for _ in range(self.n_layers):  # the first conv and n_layers - 1 trunk convs
                n = (n + 2 - 4) // 2 + 1
            out.append(n - 2 if self.tail == "valid" else n)  # two stride-1 4^d convs
        return tuple(out)

    def forward(
        self, image: torch.Tensor, cond: torch.Tensor | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        check_tensor(image, who="PatchGAN", name="image", dims=self.dims, channels=self.in_channels)
        if self.cond_channels:
            if cond is None:
                raise ConfigError(f"PatchGAN needs a condition of {self.cond_channels} channels")
            check_tensor(
                cond,
                who="PatchGAN",
                name="condition",
                dims=self.dims,
                channels=self.cond_channels,
                spatial=tuple(image.shape[2:]),
            )
            x = torch.cat([image, cond], dim=1)
        else:
            x = image
        patches = self.trunk(F.leaky_relu(self.first(x), 0.2))
        if self.aux is None:
            return patches
        # the first convolution restricted to the image channels (the head never sees cond)
        weight = self.first.weight[:, : self.in_channels]
        conv = F.conv2d if self.dims == 2 else F.conv3d
        feats = conv(image, weight, self.first.bias, stride=2, padding=1)
        logits = self.aux(F.leaky_relu(feats, 0.2))
        mode = "bilinear" if self.dims == 2 else "trilinear"
        logits = F.interpolate(logits, size=image.shape[2:], mode=mode, align_corners=False)
        return patches, logits
