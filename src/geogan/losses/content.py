"""Content losses: masked pixel losses, ensemble losses (mean MSE, fair CRPS) and the VAE KL term.

Shapes: ``pred``/``target`` ``[B, C, *n]``; ``ensemble`` ``[K, B, C, *n]`` (members
first); ``mask`` broadcastable to the target, usually ``[B, 1, *n]``, 1 where the
truth is valid and 0 elsewhere (fractional values act as weights).

Masked pixels contribute nothing, even when the target holds NaN there: the
target is zeroed outside the mask before any difference is taken, so neither
the loss nor its gradient sees the NaN. A mask with no valid pixel gives a loss
of 0 (with zero gradient), not NaN. All losses are computed in float32 and
return scalars.

Registered in ``geogan.core.registry.LOSSES`` as ``l1``, ``l2``,
``ensemble_mean_mse``, ``crps`` and ``kl``.
"""

from __future__ import annotations

import torch

from geogan.core.errors import ConfigError
from geogan.core.registry import LOSSES


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Weighted mean ``sum(mask * x) / sum(mask)`` over all elements; 0 when ``sum(mask) == 0``.

    ``mask`` broadcasts to ``x`` (e.g. ``[B, 1, *n]`` against ``[B, C, *n]``);
    the denominator counts the broadcast elements. Values of ``x`` where the
    mask is 0 are ignored even if they are NaN or infinite.
    """
    x = x.float()
    if mask is None:
        return x.mean()
    weights = torch.broadcast_to(mask.float(), x.shape)
    total = torch.where(weights > 0, x, 0).mul(weights).sum()
    count = weights.sum()
    # Dividing by 1 rather than 0 keeps both the value and its gradient at 0.
    return total / torch.where(count > 0, count, torch.ones_like(count))


def _clean_target(target: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    target = target.float()
    if mask is None:
        return target
    return torch.where(torch.broadcast_to(mask, target.shape) > 0, target, 0)


def _check_ensemble(ensemble: torch.Tensor, target: torch.Tensor, who: str) -> None:
    if ensemble.ndim != target.ndim + 1 or ensemble.shape[1:] != target.shape:
        raise ValueError(
            f"{who}: ensemble {list(ensemble.shape)} must be [K, *target shape] "
            f"with target {list(target.shape)}"
        )


@LOSSES.register("l1")
def l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Masked mean absolute error of ``pred`` and ``target`` (both ``[B, C, *n]``)."""
    return masked_mean((pred.float() - _clean_target(target, mask)).abs(), mask)


@LOSSES.register("l2")
def l2(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Masked mean squared error of ``pred`` and ``target`` (both ``[B, C, *n]``)."""
    return masked_mean((pred.float() - _clean_target(target, mask)).square(), mask)


@LOSSES.register("ensemble_mean_mse")
def ensemble_mean_mse(
    ensemble: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Masked MSE of the ensemble mean: ``ensemble [K, B, C, *n]``, ``target [B, C, *n]``.

    The content loss of Harris et al. (2022): it rewards a correct mean while
    leaving the members free to differ.
    """
    _check_ensemble(ensemble, target, "ensemble_mean_mse")
    return l2(ensemble.float().mean(dim=0), target, mask)


def crps_ensemble(ensemble: torch.Tensor, target: torch.Tensor, fair: bool = True) -> torch.Tensor:
    """Per-pixel ensemble CRPS ``[B, C, *n]`` of ``ensemble [K, B, C, *n]`` against ``target``.

    ``CRPS = mean_k |x_k - y| - S / (2 K (K - 1))`` with ``S = sum_{k,l} |x_k - x_l|``
    (the fair, unbiased estimator; ``fair=False`` divides by ``2 K^2`` instead).
    ``S`` is computed in O(K log K) per pixel by sorting the members:
    ``S = 2 sum_i (2 i - K + 1) x_(i)`` for the ascending order statistics
    ``x_(0) <= ... <= x_(K-1)``, so large ensembles need no ``K x K`` tensor.
    Gradients flow through the sort to the members.
    """
    _check_ensemble(ensemble, target, "crps_ensemble")
    k = ensemble.shape[0]
    if fair and k < 2:
        raise ConfigError(
            "the fair ensemble CRPS needs at least 2 members; raise the ensemble size"
        )
    x, y = ensemble.float(), target.float()
    skill = (x - y).abs().mean(dim=0)
    ordered = torch.sort(x, dim=0).values
    rank = torch.arange(k, device=x.device, dtype=x.dtype).reshape(k, *([1] * (x.ndim - 1)))
    pair_sum = 2 * ((2 * rank - k + 1) * ordered).sum(dim=0)
    return skill - pair_sum / (2 * k * (k - 1) if fair else 2 * k * k)


@LOSSES.register("crps")
def crps_ensemble_loss(
    ensemble: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Masked mean of the fair ensemble CRPS (:func:`crps_ensemble`); ``ensemble [K, B, C, *n]``, ``K >= 2``."""
    _check_ensemble(ensemble, target, "crps_ensemble_loss")
    return masked_mean(crps_ensemble(ensemble, _clean_target(target, mask)), mask)


@LOSSES.register("kl")
def kl_divergence(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL of the VAE posterior ``N(mean, exp(logvar))`` from ``N(0, 1)``; both ``[B, L, *n]``.

    ``0.5 * sum_L (mean^2 + exp(logvar) - 1 - logvar)``: summed over the ``L``
    latent channels (the KL of a pixel's latent vector), then averaged over
    batch and pixels, so its size does not depend on the domain size.
    """
    if mean.shape != logvar.shape:
        raise ValueError(f"mean {list(mean.shape)} and logvar {list(logvar.shape)} differ in shape")
    mean, logvar = mean.float(), logvar.float()
    per_pixel = 0.5 * (mean.square() + logvar.exp() - 1 - logvar).sum(dim=1)
    return per_pixel.mean()
