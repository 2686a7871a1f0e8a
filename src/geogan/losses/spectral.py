"""Spectral loss: distance of the log radial power spectra of two batches of fields.

``SpectralLoss(shape)(pred, target)`` is
``mean_{c, k >= k_min} (ln(P_pred(c, k) + eps) - ln(P_target(c, k) + eps))^2`` where
``P(c, k)`` is the radially averaged power spectrum of channel ``c`` averaged over the batch
(:meth:`SpectralLoss.spectra`), in 2D or 3D. It is the squared log-spectral distance of the
batch-mean spectra, in natural-log units (``LSD_dB = 10 / ln(10) * sqrt(loss)`` for one
channel), the quantity :func:`geogan.evaluation.metrics.log_spectral_distance` reports,
made differentiable. L1/L2 terms pull a stochastic generator towards the conditional
median, whose fine scales are too smooth; this term asks for the target's power at every
wavenumber instead (a spectral regulariser in the sense of Durall et al. 2020).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch

from geogan.core.spectra import radial_wavenumbers

__all__ = ["SpectralLoss", "batch_rapsd", "spectral_loss"]


class SpectralLoss:
    """Squared log-distance of the batch-mean radial power spectra of fields ``[B, C, *S]``.

    Power is ``|FFT|^2 / prod(S)`` averaged over the FFT bins of each integer wavenumber
    ``k = max(S) |f|`` up to ``max(S) // 2`` (rings in 2D, shells in 3D), the convention of
    :func:`geogan.evaluation.metrics.rapsd`. The half-spectrum of ``rfftn`` is used, each bin
    weighted by the number of full-spectrum bins it stands for (1 or 2), so the spectra equal
    the full-FFT ones for real input at half the cost.

    ``window=True`` tapers the fields with a Hann window (normalised to keep the power's
    scale) first: a crop of a larger domain is not periodic, and the jump at its edges
    would otherwise put a ``k^-2`` tail into every spectrum that swamps the small-scale power
    of a steep spectrum. Computed in float32 whatever the autocast state.
    """

    def __init__(
        self, shape: Sequence[int], *, window: bool = False, k_min: int = 1, eps: float = 1e-8
    ) -> None:
        self.shape = tuple(int(n) for n in shape)
        self.k_min, self.eps = int(k_min), float(eps)
        k, self.nbins = radial_wavenumbers(self.shape)
        last = self.shape[-1]
        k = k[..., : last // 2 + 1]
        pairs = np.full(last // 2 + 1, 2.0)
        pairs[0] = 1.0
        if last % 2 == 0:
            pairs[-1] = 1.0  # the Nyquist column is its own mirror
        weight = np.broadcast_to(pairs, k.shape).reshape(-1)
        index = np.where(k < self.nbins, k, self.nbins).reshape(-1)  # beyond Nyquist: dropped
        counts = np.bincount(index, weights=weight, minlength=self.nbins + 1)[: self.nbins]
        self.index = torch.as_tensor(index)
        self.weight = torch.as_tensor(weight, dtype=torch.float32)
        self.count = torch.as_tensor(np.maximum(counts, 1.0), dtype=torch.float32)
        self.window = None
        if window:
            w = None
            for a, n in enumerate(self.shape):
                h = torch.hann_window(n, periodic=False, dtype=torch.float32)
                h = h.reshape([-1 if b == a else 1 for b in range(len(self.shape))])
                w = h if w is None else w * h
            self.window = w / w.square().mean().sqrt()

    def spectra(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, C, *S]`` -> radially averaged power ``[C, K]``, batch mean, float32."""
        dims = tuple(range(-len(self.shape), 0))
        device = x.device
        with torch.autocast(device.type, enabled=False):
            x = x.float()
            if self.window is not None:
                x = x * self.window.to(device)
            f = torch.fft.rfftn(x, dim=dims)
            power = (f.real.square() + f.imag.square()).mean(0).flatten(1)
            power = power * (self.weight.to(device) / float(np.prod(self.shape)))
            index = self.index.to(device).expand(power.shape[0], -1)
            sums = power.new_zeros(power.shape[0], self.nbins + 1).scatter_add_(1, index, power)
            return sums[:, : self.nbins] / self.count.to(device)

    def __call__(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scalar loss (float32); the target's spectrum carries no gradient."""
        p = self.spectra(pred)[:, self.k_min :]
        with torch.no_grad():
            t = self.spectra(target)[:, self.k_min :]
        return (torch.log(p + self.eps) - torch.log(t + self.eps)).square().mean()


@lru_cache(maxsize=16)
def _cached(shape: tuple[int, ...], k_min: int, eps: float) -> SpectralLoss:
    return SpectralLoss(shape, k_min=k_min, eps=eps)


def batch_rapsd(x: torch.Tensor, dims: int = 2) -> torch.Tensor:
    """Radially averaged power spectrum ``[C, K]`` of ``x [B, C, *S]`` (``dims`` spatial
    axes), averaged over the batch, in float32 (no window; see :class:`SpectralLoss`)."""
    return _cached(tuple(int(s) for s in x.shape[-dims:]), 1, 1e-12).spectra(x)


def spectral_loss(
    pred: torch.Tensor, target: torch.Tensor, k_min: int = 1, dims: int = 2, eps: float = 1e-12
) -> torch.Tensor:
    """:class:`SpectralLoss` (no window) of ``pred`` and ``target`` ``[B, C, *S]``."""
    return _cached(tuple(int(s) for s in pred.shape[-dims:]), int(k_min), float(eps))(pred, target)
