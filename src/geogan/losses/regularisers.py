"""Gradient regularisers: WGAN-GP gradient penalty, R1, StyleGAN2 path length.

Each differentiates a network's output with respect to its input with one
``torch.autograd.grad(create_graph=True)`` call, so that the returned penalty
can itself be back-propagated into the network's parameters. Inputs are
detached first: the penalty never reaches the generator through ``fake``.
Gradient norms are computed in float32 with autocast off, because squaring
bf16 gradients loses most of their precision.

Registered in ``geogan.core.registry.LOSSES`` as ``gradient_penalty``, ``r1``
and ``path_length``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from geogan.core.registry import LOSSES

CriticFn = Callable[[torch.Tensor], torch.Tensor]


def _uniform(shape: tuple[int, ...], like: torch.Tensor, generator: torch.Generator | None):
    """float32 U[0, 1) of ``shape`` on ``like``'s device, drawn on ``generator``'s device."""
    device = generator.device if generator is not None else like.device
    u = torch.rand(shape, generator=generator, device=device, dtype=torch.float32)
    return u.to(like.device)


def _squared_norms(grad: torch.Tensor) -> torch.Tensor:
    """``[B, ...] -> [B]``: squared L2 norm over all non-batch dims, in float32."""
    with torch.autocast(grad.device.type, enabled=False):
        return grad.float().flatten(1).square().sum(dim=1)


@LOSSES.register("gradient_penalty")
def gradient_penalty(
    critic_fn: CriticFn,
    real: torch.Tensor,
    fake: torch.Tensor,
    weight: float = 10.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """WGAN-GP penalty (Gulrajani et al. 2017): ``weight * E[(||grad D(x_hat)||_2 - 1)^2]``.

    Args:
        critic_fn: maps an image ``[B, ...]`` to scores ``[B]`` or ``[B, 1]``;
            close over the condition (``lambda x: critic(input, constants, x)``).
            Each sample's score must depend on that sample only (no batch norm),
            which lets one gradient of the summed scores give every per-sample
            gradient.
        real, fake: images ``[B, ...]`` of the same shape.
        weight: the penalty weight (10 in the paper).
        generator: draws the interpolation weights (one per sample) for
            reproducible training.

    ``x_hat = real + u * (fake - real)`` with ``u ~ U[0, 1)`` per sample, in
    float32; the norm is over all non-batch dims. Returns a scalar.
    """
    if real.shape != fake.shape:
        raise ValueError(f"real {list(real.shape)} and fake {list(fake.shape)} differ in shape")
    real32, fake32 = real.detach().float(), fake.detach().float()
    u = _uniform((real.shape[0],) + (1,) * (real.ndim - 1), real, generator)
    x_hat = torch.lerp(real32, fake32, u).requires_grad_(True)
    scores = critic_fn(x_hat)
    (grad,) = torch.autograd.grad(scores.float().sum(), x_hat, create_graph=True)
    with torch.autocast(grad.device.type, enabled=False):
        # vector_norm, unlike sqrt of a sum of squares, has a finite gradient at 0.
        norms = torch.linalg.vector_norm(grad.float().flatten(1), dim=1)
        return weight * (norms - 1).square().mean()


@LOSSES.register("r1")
def r1_penalty(critic_fn: CriticFn, real: torch.Tensor, gamma: float = 10.0) -> torch.Tensor:
    """R1 penalty (Mescheder et al. 2018): ``gamma / 2 * E[||grad D(real)||_2^2]``.

    ``critic_fn`` maps real images ``[B, ...]`` to scores ``[B]`` / ``[B, 1]``
    (per-sample, as for :func:`gradient_penalty`). With lazy regularisation the
    caller multiplies by the regularisation interval. Returns a scalar.
    """
    x = real.detach().float().requires_grad_(True)
    scores = critic_fn(x)
    (grad,) = torch.autograd.grad(scores.float().sum(), x, create_graph=True)
    with torch.autocast(grad.device.type, enabled=False):
        return 0.5 * gamma * _squared_norms(grad).mean()


@LOSSES.register("path_length")
def path_length_penalty(
    images: torch.Tensor,
    latents: torch.Tensor,
    mean_path_length: torch.Tensor | float,
    decay: float = 0.01,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """StyleGAN2 path-length regulariser (Karras et al. 2020), unweighted.

    Args:
        images: generator output ``[B, C, *n]``, computed from ``latents``.
        latents: ``[B, D]`` or ``[B, L, D]`` (per-layer ``w``), requiring grad.
        mean_path_length: running mean ``a`` of the path lengths (start at 0).
        decay: weight of this batch in the running-mean update.
        generator: draws the random image-space direction ``y``.

    With ``y ~ N(0, I) / sqrt(prod(n))``, the path length of a sample is
    ``sqrt(mean_L ||J^T y||^2)`` where ``J^T y = grad_w <images, y>``. Returns
    ``(E[(length - a_new)^2], a_new)`` with ``a_new = a + decay * (E[length] - a)``
    (detached); the caller weights the penalty and keeps ``a_new``.
    """
    shape = images.shape
    device = generator.device if generator is not None else images.device
    y = torch.randn(shape, generator=generator, device=device, dtype=torch.float32)
    y = y.to(images.device) / math.sqrt(math.prod(shape[2:]))
    (grad,) = torch.autograd.grad((images.float() * y).sum(), latents, create_graph=True)
    with torch.autocast(grad.device.type, enabled=False):
        g = grad.float()
        g = g.unsqueeze(1) if g.ndim == 2 else g.flatten(1, -2)
        lengths = g.square().sum(dim=-1).mean(dim=1).sqrt()
        mean = torch.as_tensor(mean_path_length, dtype=torch.float32, device=lengths.device)
        new_mean = (mean + decay * (lengths.detach().mean() - mean)).detach()
        return (lengths - new_mean).square().mean(), new_mean
