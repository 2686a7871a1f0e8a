"""Spectral loss: distance of the log radial power spectra of two image batches.

``spectral_loss(pred, target)`` is ``mean_{c, k >= k_min} (ln P_pred(c, k) - ln P_target(c, k))^2``
where ``P(c, k)`` is the radially averaged power spectrum of channel ``c`` averaged over the
batch (:func:`batch_rapsd`). It is the squared log-spectral distance of the batch-mean
spectra, in natural-log units (``LSD_dB = 10 / ln(10) * sqrt(loss)`` for one channel), the
quantity :func:`geogan.evaluation.metrics.log_spectral_distance` reports, made
differentiable. L1/L2 terms pull a stochastic generator towards the conditional median,
whose fine scales are too smooth; this term asks for the target's power at every
wavenumber instead (a spectral regulariser in the sense of Durall et al. 2020).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from geogan.core.spectra import radial_wavenumbers

__all__ = ["batch_rapsd", "spectral_loss"]


@lru_cache(maxsize=16)
def _rings(shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Flat wavenumber index of every FFT bin of a field of ``shape`` (bins beyond the
    Nyquist wavenumber get index ``K``, dropped) and the number of bins per wavenumber."""
    k, n_k = radial_wavenumbers(shape)
    k = np.where(k < n_k, k, n_k).reshape(-1)
    counts = np.bincount(k, minlength=n_k + 1)[:n_k]
    return k, counts


def batch_rapsd(x: torch.Tensor, dims: int = 2) -> torch.Tensor:
    """Radially averaged power spectrum ``[C, K]`` of ``x [B, C, *S]`` (``dims`` spatial
    axes), averaged over the batch, in float32.

    Power is ``|FFT|^2 / prod(S)`` averaged over the bins of each integer wavenumber
    ``k = 0 .. max(S) // 2``, the convention of :func:`geogan.evaluation.metrics.rapsd`.
    """
    spatial = tuple(int(s) for s in x.shape[-dims:])
    k, counts = _rings(spatial)
    n_k = len(counts)
    with torch.autocast(x.device.type, enabled=False):
        f = torch.fft.fftn(x.float(), dim=tuple(range(-dims, 0)))
        power = (f.real**2 + f.imag**2).mean(0).reshape(x.shape[1], -1) / float(np.prod(spatial))
        index = torch.as_tensor(k, device=x.device).expand(x.shape[1], -1)
        sums = power.new_zeros(x.shape[1], n_k + 1).scatter_add_(1, index, power)
        return sums[:, :n_k] / torch.as_tensor(counts, device=x.device, dtype=power.dtype)


def spectral_loss(
    pred: torch.Tensor, target: torch.Tensor, k_min: int = 1, dims: int = 2, eps: float = 1e-12
) -> torch.Tensor:
    """Mean squared difference of the natural-log batch spectra of ``pred`` and ``target``
    ``[B, C, *S]`` over channels and wavenumbers ``k >= k_min`` (scalar, float32; the
    target's spectrum carries no gradient)."""
    p = batch_rapsd(pred, dims)[:, k_min:]
    with torch.no_grad():
        t = batch_rapsd(target, dims)[:, k_min:]
    return (torch.log(p + eps) - torch.log(t + eps)).pow(2).mean()
