"""Shape checks for models' public entry points, with messages that say what was expected."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from geogan.core.errors import ConfigError, DataError

_AXIS_NAMES = {2: ("H", "W"), 3: ("D", "H", "W")}


def check_tensor(
    x: torch.Tensor,
    *,
    who: str,
    name: str,
    dims: int,
    channels: int | None = None,
    spatial: Sequence[int] | None = None,
    batch: int | None = None,
) -> None:
    """Raise a DataError unless ``x`` is ``[batch, channels, *spatial]`` (None = any size)."""
    axes = _AXIS_NAMES[dims]
    want = [
        "B" if batch is None else str(batch),
        "C" if channels is None else str(channels),
        *(a if spatial is None else str(s) for a, s in zip(axes, spatial or axes)),
    ]
    ok = x.ndim == dims + 2
    if ok and batch is not None:
        ok = x.shape[0] == batch
    if ok and channels is not None:
        ok = x.shape[1] == channels
    if ok and spatial is not None:
        ok = tuple(x.shape[2:]) == tuple(spatial)
    if not ok:
        raise DataError(
            f"{who}: {name} has shape {list(x.shape)}, expected [{', '.join(want)}]; "
            "check the channel counts in the model config against the data"
        )


def check_factors(factors: Sequence[int], name: str) -> list[int]:
    """Resampling factors as a list of ints >= 1 (at least one)."""
    if (
        isinstance(factors, (str, int))
        or not factors
        or any(isinstance(f, bool) or not isinstance(f, int) or f < 1 for f in factors)
    ):
        raise ConfigError(f"{name} must be a non-empty list of integers >= 1, got {factors!r}")
    return list(factors)
