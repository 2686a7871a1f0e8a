"""Per-level normalisation of volumes whose statistics change with height or depth.

Atmospheric and ocean volumes carry a strong vertical profile: geopotential height grows
from ~100 m at 1000 hPa to ~16 km at 100 hPa, ocean temperature falls from ~25 to ~1 degC.
One mean and standard deviation per variable (the engine's :class:`Normalisation`) then
makes the horizontal detail the recipe has to add tiny in normalised units (a 5 m detail
of a variable whose std is 5000 m), so the losses ignore it and the adversarial term's
errors come back multiplied by the whole column's std. With ``data.normalise_per_level``
each level ``z`` of each variable is standardised again after the engine's normalisation:

    x_level[c, z] = (x_norm[c, z] - mean[c, z]) / std[c, z]

with ``mean``/``std`` over the valid voxels of the training volumes at that level. The map
is affine per level, so it commutes with the horizontal block mean of coarsening; it needs
the levels kept (factor 1 along z) and augmentations that leave z alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from geogan.core.errors import DataError
from geogan.data.normalisation import Normalisation

__all__ = ["LevelProfile", "VolumeNormaliser"]

_MIN_STD = 1e-6
"""Levels whose normalised values vary less than this (constant or one valid voxel) keep
std 1: dividing by ~0 would blow their noise up."""


class LevelProfile:
    """``mean``/``std`` ``[C, D]`` of normalised values per variable and level."""

    def __init__(self, mean: np.ndarray, std: np.ndarray) -> None:
        self.mean = np.asarray(mean, dtype=np.float64)
        self.std = np.asarray(std, dtype=np.float64)
        if self.mean.shape != self.std.shape or self.mean.ndim != 2:
            raise ValueError(
                f"mean/std must both be [C, D], got {self.mean.shape}, {self.std.shape}"
            )

    @property
    def levels(self) -> int:
        return int(self.mean.shape[1])

    @classmethod
    def compute(
        cls,
        volumes: Sequence[tuple[np.ndarray, np.ndarray]],
        norm: Normalisation,
        variables: list[str],
    ) -> LevelProfile:
        """From ``(data [C, D, H, W] physical, valid [D, H, W])`` pairs of equal D.

        A level without valid voxels gets mean 0, std 1.
        """
        depths = {d.shape[1] for d, _ in volumes}
        if len(depths) != 1:
            raise DataError(
                f"data.normalise_per_level needs volumes with one number of levels, got "
                f"{sorted(depths)}; cut the volumes to the same levels or turn it off"
            )
        c, d = len(variables), depths.pop()
        s1, s2, n = np.zeros((c, d)), np.zeros((c, d)), np.zeros(d)
        for data, valid in volumes:
            x = norm.forward_stack(data, variables, channel_axis=0).astype(np.float64)
            w = valid.reshape(d, -1)
            n += w.sum(axis=1)
            xs = np.where(w[None], x.reshape(c, d, -1), 0.0)
            s1 += xs.sum(axis=2)
            s2 += (xs**2).sum(axis=2)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(n > 0, s1 / np.maximum(n, 1), 0.0)
            var = np.where(n > 0, s2 / np.maximum(n, 1) - mean**2, 1.0)
        std = np.sqrt(np.maximum(var, 0.0))
        std = np.where(std > _MIN_STD, std, 1.0)
        return cls(mean, std)

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> LevelProfile:
        return cls(np.asarray(obj["mean"]), np.asarray(obj["std"]))


class VolumeNormaliser:
    """The engine's per-variable :class:`Normalisation`, then the optional level profile.

    ``forward_stack(x [C, D, ...], variables, channel_axis=0, levels=None)``: ``levels`` are
    the level indices of the ``D`` planes of ``x`` (default ``0..D-1``; a training crop or an
    output block passes its own). The same signature as ``Normalisation.forward_stack``.
    """

    def __init__(self, norm: Normalisation, profile: LevelProfile | None = None) -> None:
        self.norm, self.profile = norm, profile

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> VolumeNormaliser:
        """From an export's meta (``normalisation`` and, when trained so, ``level_profile``)."""
        prof = meta.get("level_profile")
        return cls(
            Normalisation.from_dict(meta["normalisation"]),
            LevelProfile.from_dict(prof) if prof else None,
        )

    def check_levels(self, depth: int, what: str) -> None:
        """DataError when ``what`` has another number of levels than the profile."""
        if self.profile is not None and depth != self.profile.levels:
            raise DataError(
                f"{what} has {depth} levels but the model was trained with per-level "
                f"normalisation on {self.profile.levels}; give it the training levels"
            )

    def _affine(self, x: np.ndarray, channel_axis: int, levels) -> tuple[np.ndarray, np.ndarray]:
        assert self.profile is not None
        if channel_axis not in (0, -4) or x.ndim != 4:
            raise ValueError("per-level normalisation works on [C, D, H, W] arrays")
        idx = np.arange(x.shape[1]) if levels is None else np.asarray(levels)
        mean = self.profile.mean[:, idx][:, :, None, None]
        std = self.profile.std[:, idx][:, :, None, None]
        return mean, std

    def forward_stack(self, x, variables: list[str], channel_axis: int = 0, levels=None):
        y = self.norm.forward_stack(x, variables, channel_axis=channel_axis)
        if self.profile is None:
            return y
        mean, std = self._affine(y, channel_axis, levels)
        return ((y - mean) / std).astype(np.asarray(y).dtype)

    def inverse_stack(self, y, variables: list[str], channel_axis: int = 0, levels=None):
        if self.profile is not None:
            mean, std = self._affine(y, channel_axis, levels)
            y = (np.asarray(y) * std + mean).astype(np.asarray(y).dtype)
        return self.norm.inverse_stack(y, variables, channel_axis=channel_axis)
