"""The strong cheap baseline of recipe 5: random linear combinations of the conditioning
members' anomalies, with the conditioning members' spread.

For conditioning members ``x_1 .. x_N`` (mean ``m``), member ``k`` of the baseline is
``m + sum_j c_kj (x_j - m)`` with ``c_kj ~ N(0, 1 / (N - 1))``: at every pixel it is a draw
of a Gaussian whose variance is the members' sample variance (``E[sum_j c_j^2 a_j^2] =
sum_j a_j^2 / (N - 1)``), and every member is a combination of real states, so it keeps
their spatial structure and their balance (a linear relation between variables that holds
for every member holds for the combination). What it cannot do is leave the
``N - 1``-dimensional span of the anomalies.
"""

from __future__ import annotations

import numpy as np

from geogan.core.errors import DataError

__all__ = ["linear_combinations"]


def linear_combinations(members: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` members ``[n, ...]`` from ``members [N, ...]`` (N >= 2), float32."""
    x = np.asarray(members, dtype=np.float64)
    if x.shape[0] < 2:
        raise DataError("the linear-combination baseline needs at least 2 conditioning members")
    mean = x.mean(axis=0)
    anomalies = (x - mean).reshape(x.shape[0], -1)
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((n, x.shape[0])) / np.sqrt(x.shape[0] - 1)
    out = mean.reshape(1, -1) + c @ anomalies
    return out.reshape(n, *x.shape[1:]).astype(np.float32)
