"""Per-variable transforms: optional ``log1p`` then a normalisation, with exact inverses.

For a variable with :class:`~geogan.config.schema.TransformConfig` ``cfg`` and
statistics (mean, std, min, max) of the pre-transformed values:

- pre-transform: ``z = log(1 + x / cfg.log1p_scale)`` if ``cfg.log1p`` else ``z = x``
  (log1p expects ``x > -log1p_scale``, e.g. rain in mm/h);
- normalisation ``cfg.norm``: ``zscore`` ``(z - mean) / std``, ``minmax``
  ``(z - min) / (max - min)``, ``max`` ``z / max``, ``none`` ``z``.

A zero divisor (constant field) is replaced by 1, so such a field maps to a
constant instead of NaN/inf. Variables without a config entry use ``zscore``.
Everything works on NumPy arrays and torch tensors of any shape, elementwise,
and keeps their dtype (float32 in, float32 out); NaN stays NaN.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch

from geogan.config.schema import TransformConfig

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)

DEFAULT_TRANSFORM = TransformConfig()


def _xp(x: Any):
    return torch if isinstance(x, torch.Tensor) else np


def _as_float(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return x if x.is_floating_point() else x.float()
    x = np.asarray(x)
    return x if np.issubdtype(x.dtype, np.floating) else x.astype(np.float32)


def pre_forward(x: ArrayT, cfg: TransformConfig) -> ArrayT:
    """The transform applied before normalisation (``log1p`` or identity); statistics are computed on this."""
    x = _as_float(x)
    if cfg.log1p:
        return _xp(x).log1p(x / cfg.log1p_scale)
    return x


def pre_inverse(z: ArrayT, cfg: TransformConfig) -> ArrayT:
    """Inverse of :func:`pre_forward`: ``x = scale * expm1(z)`` for log1p."""
    z = _as_float(z)
    if cfg.log1p:
        return _xp(z).expm1(z) * cfg.log1p_scale
    return z


@dataclass(frozen=True)
class VariableTransform:
    """Transform of one variable: its config plus the statistics of its pre-transformed values."""

    cfg: TransformConfig
    mean: float = 0.0
    std: float = 1.0
    min: float = 0.0
    max: float = 1.0

    def offset_scale(self) -> tuple[float, float]:
        """``(offset, scale)`` with ``normalised = (pre - offset) / scale``; a zero scale becomes 1."""
        norm = self.cfg.norm
        if norm == "zscore":
            offset, scale = self.mean, self.std
        elif norm == "minmax":
            offset, scale = self.min, self.max - self.min
        elif norm == "max":
            offset, scale = 0.0, self.max
        else:
            offset, scale = 0.0, 1.0
        if not np.isfinite(scale) or scale == 0:
            scale = 1.0
        return float(offset), float(scale)

    def forward(self, x: ArrayT) -> ArrayT:
        """Physical units -> normalised (same shape and float dtype)."""
        offset, scale = self.offset_scale()
        return (pre_forward(x, self.cfg) - offset) / scale

    def inverse(self, y: ArrayT) -> ArrayT:
        """Normalised -> physical units (same shape and float dtype)."""
        offset, scale = self.offset_scale()
        return pre_inverse(_as_float(y) * scale + offset, self.cfg)


class Transforms:
    """Transforms of several variables, looked up by name: ``forward(x, var)`` / ``inverse(y, var)``."""

    def __init__(self, per_variable: Mapping[str, VariableTransform]) -> None:
        self._per_variable = dict(per_variable)

    def __getitem__(self, var: str) -> VariableTransform:
        try:
            return self._per_variable[var]
        except KeyError:
            raise KeyError(
                f"no transform for variable {var!r} (known: {', '.join(self._per_variable)})"
            ) from None

    def __contains__(self, var: object) -> bool:
        return var in self._per_variable

    @property
    def variables(self) -> list[str]:
        return list(self._per_variable)

    def forward(self, x: ArrayT, var: str) -> ArrayT:
        """Physical units -> normalised values of variable ``var`` (any shape)."""
        return self[var].forward(x)

    def inverse(self, y: ArrayT, var: str) -> ArrayT:
        """Normalised -> physical units of variable ``var`` (any shape)."""
        return self[var].inverse(y)

    def forward_stack(self, x: ArrayT, variables: list[str], channel_axis: int = -3) -> ArrayT:
        """Forward each channel of ``x`` (``[C, H, W]`` or ``[B, C, H, W]``) with its variable's transform."""
        return self._stack(x, variables, channel_axis, forward=True)

    def inverse_stack(self, y: ArrayT, variables: list[str], channel_axis: int = -3) -> ArrayT:
        """Inverse of :meth:`forward_stack`."""
        return self._stack(y, variables, channel_axis, forward=False)

    def _stack(self, x: ArrayT, variables: list[str], channel_axis: int, forward: bool) -> ArrayT:
        if x.shape[channel_axis] != len(variables):
            raise ValueError(
                f"expected {len(variables)} channels ({', '.join(variables)}) on axis {channel_axis}, "
                f"got shape {tuple(x.shape)}"
            )
        parts = []
        for i, var in enumerate(variables):
            index = [slice(None)] * x.ndim
            index[channel_axis] = slice(i, i + 1)
            part = x[tuple(index)]
            parts.append(self.forward(part, var) if forward else self.inverse(part, var))
        if not parts:
            return _as_float(x)
        if isinstance(x, torch.Tensor):
            return torch.cat(parts, dim=channel_axis)
        return np.concatenate(parts, axis=channel_axis)
