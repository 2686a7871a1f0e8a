"""Style (texture) loss: Gram matrices of a frozen feature network (Johnson et al. 2016).

``style_loss(features(pred), features(target))`` is, summed over the chosen layers, the
squared Frobenius norm ``|G(pred) - G(target)|_F^2`` of the difference of the Gram
matrices ``G = F F^T / (C * prod(S))`` of feature maps ``F [B, C, *S]`` (Johnson et al.
2016, eq. 3-4), averaged over the batch.

Feature networks (nothing downloads):

- :class:`VGG16Features`: VGG16 up to ``relu3_3`` in plain PyTorch, weights read from a
  local file the user names (:func:`load_vgg16_weights`): torchvision's state dict
  (``vgg16-397923af.pth``, keys ``features.N.weight`` / ``features.N.bias``; deeper layers
  and the classifier are ignored) or a safetensors file with the same keys. A file of
  any other layout is refused with a one-line :class:`CheckpointError`.
- :class:`EncoderFeatures`: the encoder of a network geogan trained itself on the data
  (e.g. the land-cover segmentation U-Net of the land-cover recipe; any module with
  ``encode(x) -> [features per level]``), for when no VGG16 weights are available.

Images enter in ``input_range`` (``"-1,1"`` for tanh generators, ``"0,1"``); VGG16 then
gets ImageNet-normalised RGB, as it was trained.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from geogan.core.errors import CheckpointError, ConfigError

__all__ = [
    "VGG16_LAYERS",
    "EncoderFeatures",
    "StyleLoss",
    "VGG16Features",
    "gram_matrix",
    "load_vgg16_weights",
    "style_loss",
]

# torchvision's vgg16().features, up to relu3_3: (index, in, out) of each convolution
_VGG16_CONVS = ((0, 3, 64), (2, 64, 64), (5, 64, 128), (7, 128, 128), (10, 128, 256))
_VGG16_CONVS += ((12, 256, 256), (14, 256, 256))
#: layer name -> index of that ReLU in ``features``
VGG16_LAYERS = {"relu1_2": 3, "relu2_2": 8, "relu3_3": 15}
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
INPUT_RANGES = ("-1,1", "0,1")


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """``[B, C, *S] -> [B, C, C]``: ``F F^T / (C * prod(S))`` in float32."""
    f = features.float().flatten(2)
    return torch.bmm(f, f.transpose(1, 2)) / (f.shape[1] * f.shape[2])


def style_loss(
    pred_features: Sequence[torch.Tensor], target_features: Sequence[torch.Tensor]
) -> torch.Tensor:
    """Sum over layers of the batch mean of ``|G(pred) - G(target)|_F^2`` (a scalar)."""
    if len(pred_features) != len(target_features) or not pred_features:
        raise ValueError("style_loss needs the same non-zero number of feature maps for both")
    total = pred_features[0].new_zeros((), dtype=torch.float32)
    for p, t in zip(pred_features, target_features):
        diff = gram_matrix(p) - gram_matrix(t)
        total = total + diff.square().sum(dim=(1, 2)).mean()
    return total


def _to_unit(x: torch.Tensor, input_range: str) -> torch.Tensor:
    return (x + 1.0) * 0.5 if input_range == "-1,1" else x


def _check_range(input_range: str) -> str:
    if input_range not in INPUT_RANGES:
        raise ConfigError(f"input_range must be one of {INPUT_RANGES}, got {input_range!r}")
    return input_range


def load_vgg16_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The ``features.N.weight/bias`` tensors of VGG16 up to ``relu3_3`` from a local file.

    Accepts torchvision's ``.pth`` state dict (read with ``torch.load(weights_only=True)``:
    no code is unpickled) or a ``.safetensors`` file with the same keys. Raises a one-line
    CheckpointError when the file is missing, unreadable, or not in that layout.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"VGG16 weights file {path} not found; check style.vgg16_weights")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unreadable or unsafe pickle
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"cannot read VGG16 weights {path} ({first}); give torchvision's vgg16 .pth "
            "state dict or a .safetensors file with keys features.N.weight/bias"
        ) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError(
            f"VGG16 weights {path} hold a {type(state).__name__}, not a state dict; give "
            "torchvision's vgg16 .pth state dict or a .safetensors file"
        )
    out = {}
    for idx, cin, cout in _VGG16_CONVS:
        for part, shape in (("weight", (cout, cin, 3, 3)), ("bias", (cout,))):
            key = f"features.{idx}.{part}"
            t = state.get(key)
            if not isinstance(t, torch.Tensor):
                found = ", ".join(sorted(str(k) for k in state)[:3]) or "no tensors"
                raise CheckpointError(
                    f"VGG16 weights {path} have no {key} (found {found}, ...): not torchvision's "
                    "VGG16 layout (features.N.weight / features.N.bias)"
                )
            if tuple(t.shape) != shape:
                raise CheckpointError(
                    f"VGG16 weights {path}: {key} is {list(t.shape)}, expected {list(shape)}; "
                    "this is not a VGG16 (VGG11/13/19 and batch-norm variants differ)"
                )
            out[key] = t.float()
    return out


class VGG16Features(nn.Module):
    """VGG16 ``features`` up to ``relu3_3`` (torchvision's indices), frozen, in eval mode.

    ``forward(images [B, 3, H, W]) -> [feature map per layer in layers]``, e.g.
    ``relu3_3``: ``[B, 256, H/4, W/4]``. ``weights``: path of the local weights file
    (:func:`load_vgg16_weights`); None leaves the random initialisation (tests only).
    """

    def __init__(
        self,
        weights: str | os.PathLike | None = None,
        *,
        layers: Sequence[str] = ("relu3_3",),
        input_range: str = "-1,1",
    ) -> None:
        super().__init__()
        unknown = [name for name in layers if name not in VGG16_LAYERS]
        if unknown or not layers:
            raise ConfigError(f"unknown VGG16 layers {unknown}; choose from {list(VGG16_LAYERS)}")
        self.input_range = _check_range(input_range)
        self.layers = list(layers)
        modules: list[nn.Module] = []
        convs = {idx: (cin, cout) for idx, cin, cout in _VGG16_CONVS}
        for i in range(16):
            if i in convs:
                modules.append(nn.Conv2d(*convs[i], kernel_size=3, padding=1))
            elif i in (4, 9):
                modules.append(nn.MaxPool2d(2, 2))
            else:
                modules.append(nn.ReLU(inplace=False))
        self.features = nn.Sequential(*modules)
        if weights is not None:
            self.load_state_dict(load_vgg16_weights(weights))
        self.register_buffer(
            "mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> VGG16Features:
        return super().train(False)  # always frozen

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ConfigError(
                f"VGG16 style features need RGB [B, 3, H, W], got {list(images.shape)}"
            )
        x = (_to_unit(images, self.input_range) - self.mean) / self.std
        wanted = {VGG16_LAYERS[name]: name for name in self.layers}
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in wanted:
                out.append(x)
            if i >= max(wanted):
                break
        return out


class EncoderFeatures(nn.Module):
    """Feature maps of a trained network's encoder, frozen: ``encoder.encode(x)[levels]``.

    ``encoder``: any module with ``encode(images) -> list of [B, C_k, *S_k]`` (e.g.
    :class:`geogan.models.unet.UNet`, trained as a land-cover segmenter); ``levels``:
    which entries to use (default the 2nd and 3rd: a quarter and an eighth of the
    resolution, like VGG's relu2_2/relu3_3).
    """

    def __init__(self, encoder: nn.Module, levels: Sequence[int] = (1, 2)) -> None:
        super().__init__()
        if not hasattr(encoder, "encode"):
            raise ConfigError(
                f"{type(encoder).__name__} has no encode(x) method for style features"
            )
        self.encoder = encoder
        self.levels = list(levels)
        self.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> EncoderFeatures:
        return super().train(False)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        feats = self.encoder.encode(images)
        try:
            return [feats[k] for k in self.levels]
        except IndexError:
            raise ConfigError(
                f"style feature levels {self.levels} out of range: the encoder has {len(feats)}"
            ) from None


class StyleLoss(nn.Module):
    """``StyleLoss(features)(pred, target)``: :func:`style_loss` of the two images' features
    (the target's computed without gradients). ``features``: a frozen feature network."""

    def __init__(self, features: nn.Module) -> None:
        super().__init__()
        self.features = features

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target_feats = [f.detach() for f in self.features(target)]
        return style_loss(self.features(pred), target_feats)

    def pair(
        self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Style loss restricted to ``mask [B, 1, H, W]`` (pixels outside set to the
        target's, so only the masked area differs)."""
        if mask is None:
            return self(pred, target)
        mask = mask.to(pred.dtype)
        return self(pred * mask + target * (1 - mask), target)
