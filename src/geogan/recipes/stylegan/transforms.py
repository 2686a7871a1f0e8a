"""The seed-004 field transforms, fitted on the training members and inverted on output.

Per channel ``c`` with its :class:`~geogan.recipes.stylegan.config.TransformSpec`, a field
``x [C, H, W]`` in physical units becomes the normalised field the GAN sees by

1. ``log_iterations`` times ``x -> log(1 + x)`` (rain);
2. in training only: Gaussian noise ``N(0, noise_below)`` added where the value is below
   ``noise_below``, and with ``symmetrize`` a random sign per sample;
3. ensemble anomalies (``data.anomaly``): minus the mean of the sample's ensemble, and for
   ``standardised`` divided by its blurred standard-deviation map (:func:`ensemble_stats`);
4. normalisation by global or per-pixel statistics of the training values after steps 1
   and 3: ``mean``: ``(x - mean) / std``; ``minmax``: ``scale * (2 (x - min) / (max - min) - 1)``
   (``scale`` 0.95, as seed 004's ``1 / 0.95`` rescaling); per-pixel maps are blurred by
   ``blur_iterations`` passes of the 3x3 binomial filter.

:meth:`FieldTransform.inverse` undoes 4 and 3, takes ``|x|`` for symmetrised channels, sets
values below ``noise_below`` to 0 and undoes the logarithms. Statistics are stored as
plain lists in the export (``to_dict``), so generation needs nothing but the checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from geogan.core.errors import DataError
from geogan.recipes.stylegan.config import TransformSpec

__all__ = ["FieldTransform", "blur_map", "ensemble_stats"]

_BINOMIAL = np.array([1.0, 2.0, 1.0]) / 4.0


def blur_map(field: np.ndarray, iterations: int, periodic_x: bool = False) -> np.ndarray:
    """``iterations`` passes of the separable 3x3 binomial filter over the last two axes
    (edges repeat; the last axis wraps when ``periodic_x``)."""
    from scipy.ndimage import convolve1d

    out = np.asarray(field, dtype=np.float64)
    for _ in range(int(iterations)):
        out = convolve1d(out, _BINOMIAL, axis=-2, mode="nearest")
        out = convolve1d(out, _BINOMIAL, axis=-1, mode="wrap" if periodic_x else "nearest")
    return out


def ensemble_stats(
    members: np.ndarray,
    standardise: bool,
    blur: int,
    floor: float,
    periodic_x: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and spread maps of one ensemble ``members [M, C, H, W]`` -> ``([C, H, W], [C, H, W])``.

    The spread is the population standard deviation (so the anomalies of any number of
    members have mean square 1), blurred by ``blur`` passes of the binomial filter and
    floored at ``floor`` times its domain mean per channel; ones when not ``standardise``.
    """
    members = np.asarray(members, dtype=np.float64)
    if members.ndim != 4 or members.shape[0] < 1:
        raise DataError(f"an ensemble must be [M, C, H, W], got shape {members.shape}")
    mean = members.mean(axis=0)
    if not standardise:
        return mean.astype(np.float32), np.ones_like(mean, dtype=np.float32)
    if members.shape[0] < 2:
        raise DataError(
            "data.anomaly: standardised needs at least 2 members per ensemble to estimate "
            "the spread; use anomaly: mean or more members"
        )
    std = blur_map(members.std(axis=0), blur, periodic_x)
    level = std.mean(axis=(-2, -1), keepdims=True)
    std = np.maximum(std, np.maximum(floor * level, 1e-12))
    return mean.astype(np.float32), std.astype(np.float32)


def _log_k(x: Any, k: int) -> Any:
    for _ in range(k):
        x = torch.log1p(x) if isinstance(x, torch.Tensor) else np.log1p(x)
    return x


def _exp_k(x: Any, k: int) -> Any:
    for _ in range(k):
        x = torch.expm1(x) if isinstance(x, torch.Tensor) else np.expm1(x)
    return x


class _Accumulator:
    """Per-pixel count/sum/sum of squares/min/max in float64."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.n = 0
        self.s = np.zeros(shape)
        self.s2 = np.zeros(shape)
        self.lo = np.full(shape, np.inf)
        self.hi = np.full(shape, -np.inf)

    def add(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float64)
        if not np.isfinite(x).all():
            raise DataError(
                "a training field holds NaN or inf after the transforms; check the data "
                "(log transforms need values > -1)"
            )
        self.n += x.shape[0]
        self.s += x.sum(axis=0)
        self.s2 += np.square(x).sum(axis=0)
        self.lo = np.minimum(self.lo, x.min(axis=0))
        self.hi = np.maximum(self.hi, x.max(axis=0))


class FieldTransform:
    """Fitted transforms of the channels ``variables`` of ``[..., C, H, W]`` fields.

    ``stats[var]`` holds ``offset`` and ``scale`` (one value or an ``[H, W]`` map) so that
    step 4 is ``(x - offset) / scale``. Build with :meth:`fit`, or :meth:`from_dict`.
    """

    def __init__(
        self,
        variables: Sequence[str],
        specs: Mapping[str, TransformSpec],
        stats: Mapping[str, Mapping[str, Any]],
        anomaly: str = "none",
    ) -> None:
        self.variables = list(variables)
        self.specs = {v: specs[v] for v in self.variables}
        self.anomaly = anomaly
        hw = self._hw(stats)
        self.offset = np.stack(
            [
                np.broadcast_to(np.asarray(stats[v]["offset"], np.float32), hw)
                for v in self.variables
            ]
        ).astype(np.float32)
        self.scale = np.stack(
            [np.broadcast_to(np.asarray(stats[v]["scale"], np.float32), hw) for v in self.variables]
        ).astype(np.float32)
        self._stats = {v: dict(stats[v]) for v in self.variables}

    @staticmethod
    def _hw(stats: Mapping[str, Mapping[str, Any]]) -> tuple[int, int]:
        """The common ``[H, W]`` of per-pixel maps, or ``(1, 1)`` when all are global."""
        for s in stats.values():
            for key in ("offset", "scale"):
                shape = np.shape(s[key])
                if len(shape) == 2:
                    return (int(shape[0]), int(shape[1]))
        return (1, 1)

    # ------------------------------------------------------------------ fitting
    @classmethod
    def fit(
        cls,
        variables: Sequence[str],
        specs: Mapping[str, TransformSpec],
        ensembles: Iterable[np.ndarray],
        *,
        anomaly: str = "none",
        anomaly_blur: int = 0,
        anomaly_floor: float = 0.05,
        periodic_x: bool = False,
    ) -> FieldTransform:
        """Statistics over the training ensembles (each ``[M, C, H, W]`` in physical units)."""
        variables = list(variables)
        acc: _Accumulator | None = None
        for members in ensembles:
            pre = cls._pre(np.asarray(members, dtype=np.float64), variables, specs)
            if anomaly != "none":
                mu, sd = ensemble_stats(
                    pre, anomaly == "standardised", anomaly_blur, anomaly_floor, periodic_x
                )
                pre = (pre - mu) / sd
            sym = [specs[v].symmetrize for v in variables]
            if any(sym):  # statistics of the symmetrised distribution: both signs
                flipped = pre.copy()
                flipped[:, sym] *= -1
                pre = np.concatenate([pre, flipped])
            if acc is None:
                acc = _Accumulator(pre.shape[1:])
            acc.add(pre)
        if acc is None or acc.n == 0:
            raise DataError("no training ensembles to compute the normalisation from")
        stats = {}
        for c, var in enumerate(variables):
            spec = specs[var]
            if spec.per_pixel:
                n = acc.n
                mean, sq = acc.s[c] / n, acc.s2[c] / n
                lo, hi = acc.lo[c], acc.hi[c]
                mean = blur_map(mean, spec.blur_iterations, periodic_x)
                std = np.sqrt(
                    blur_map(
                        np.maximum(sq - (acc.s[c] / n) ** 2, 0), spec.blur_iterations, periodic_x
                    )
                )
                lo = blur_map(lo, spec.blur_iterations, periodic_x)
                hi = blur_map(hi, spec.blur_iterations, periodic_x)
            else:
                n = acc.n * acc.s[c].size
                mean = acc.s[c].sum() / n
                std = np.sqrt(max(acc.s2[c].sum() / n - mean**2, 0.0))
                lo, hi = acc.lo[c].min(), acc.hi[c].max()
            if spec.norm == "mean":
                offset, scale = mean, std
            elif spec.norm == "minmax":
                # x -> s (2 (x - lo) / (hi - lo) - 1) = (x - (lo + hi) / 2) / ((hi - lo) / (2 s))
                offset, scale = (lo + hi) / 2, (hi - lo) / (2 * spec.minmax_scale)
            else:
                offset, scale = 0.0, 1.0
            scale = np.where(np.asarray(scale) > 1e-12, scale, 1.0)
            stats[var] = {
                "offset": np.asarray(offset).tolist(),
                "scale": np.asarray(scale).tolist(),
            }
        return cls(variables, specs, stats, anomaly)

    @staticmethod
    def _pre(
        x: np.ndarray, variables: Sequence[str], specs: Mapping[str, TransformSpec]
    ) -> np.ndarray:
        """Step 1 on ``[..., C, H, W]``."""
        x = np.array(x, dtype=np.float64, copy=True)
        for c, var in enumerate(variables):
            k = specs[var].log_iterations
            if k:
                if np.nanmin(x[..., c, :, :]) <= -1:
                    raise DataError(
                        f"{var!r} has values <= -1, which log(1 + x) cannot take; remove "
                        f"data.transforms.{var}.log_iterations or fix the data"
                    )
                x[..., c, :, :] = _log_k(x[..., c, :, :], k)
        return x

    # ------------------------------------------------------------------ forward / inverse
    def pre(self, x: np.ndarray) -> np.ndarray:
        """Step 1 (logarithms) of physical fields ``[..., C, H, W]`` (float64)."""
        return self._pre(x, self.variables, self.specs)

    def forward(
        self,
        x: np.ndarray,
        group: tuple[np.ndarray, np.ndarray] | None = None,
        rng: np.random.Generator | None = None,
    ) -> np.ndarray:
        """Physical ``[..., C, H, W]`` -> normalised float32.

        ``group``: ``(mean, spread)`` maps of the sample's ensemble in log space
        (:func:`ensemble_stats` of :meth:`pre` of its members), needed when
        ``anomaly != none``. ``rng``: training draws (noise below threshold, random sign);
        None: deterministic (inference).
        """
        z = self.pre(x)
        if rng is not None:
            for c, var in enumerate(self.variables):
                spec = self.specs[var]
                if spec.noise_below is not None:
                    part = z[..., c, :, :]
                    low = part < spec.noise_below
                    part[low] += rng.normal(0.0, spec.noise_below, size=int(low.sum()))
                if spec.symmetrize and rng.random() < 0.5:
                    z[..., c, :, :] *= -1
        z = self.anomaly_forward(z, group)
        return ((z - self.offset) / self.scale).astype(np.float32)

    def anomaly_forward(self, z: np.ndarray, group) -> np.ndarray:
        if self.anomaly == "none":
            return z
        if group is None:
            raise DataError("data.anomaly is set: normalising a member needs its ensemble's mean")
        mu, sd = group
        return (z - mu) / sd

    def inverse(
        self, y: np.ndarray | torch.Tensor, group: tuple[np.ndarray, np.ndarray] | None = None
    ) -> np.ndarray:
        """Normalised ``[..., C, H, W]`` -> physical units (float32, numpy)."""
        y = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
        z = y.astype(np.float64) * self.scale + self.offset
        if self.anomaly != "none":
            if group is None:
                raise DataError("data.anomaly is set: the output needs the ensemble's mean")
            mu, sd = group
            z = z * sd + mu
        for c, var in enumerate(self.variables):
            spec = self.specs[var]
            part = z[..., c, :, :]
            if spec.symmetrize:
                part[...] = np.abs(part)
            if spec.noise_below is not None:
                part[part < spec.noise_below] = 0.0
            if spec.log_iterations:
                part[...] = _exp_k(part, spec.log_iterations)
        return z.astype(np.float32)

    def group_stats(
        self, members: np.ndarray, *, blur: int, floor: float, periodic_x: bool
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """``(mean, spread)`` of an ensemble ``[M, C, H, W]`` (physical) in log space, or None."""
        if self.anomaly == "none":
            return None
        return ensemble_stats(
            self.pre(members), self.anomaly == "standardised", blur, floor, periodic_x
        )

    # ------------------------------------------------------------------ storage
    def to_dict(self) -> dict[str, Any]:
        return {
            "variables": self.variables,
            "anomaly": self.anomaly,
            "specs": {v: s.model_dump() for v, s in self.specs.items()},
            "stats": self._stats,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FieldTransform:
        specs = {v: TransformSpec.model_validate(s) for v, s in d["specs"].items()}
        return cls(d["variables"], specs, d["stats"], d.get("anomaly", "none"))
