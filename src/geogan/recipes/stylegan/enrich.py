"""Enrichment in latent space: new members from inverted ones (seed 004's perturbation).

For conditioning latents ``W [N, L, D]`` (W+, ``L = n_latent``) output member ``k`` starts
from member ``m = k mod N`` and moves the style inputs in ``style_indices`` by
``scale_l * delta_{k,l}`` (:class:`~geogan.recipes.stylegan.config.PerturbConfig` lists the
four rules)::

    w_start = alpha_l * mean_j(W_j) + (1 - alpha_l) * W_m
    w_new   = w_start + mask_l * scale_l * delta_k        (per style input l)

:func:`enrich` is differentiable in ``scale`` and ``alpha`` (the tuning optimises them
through the generator); it returns normalised fields, to which the conditioning member's
inversion residual is added when asked (``scale = 0`` then gives the member itself).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from geogan.core.errors import ConfigError
from geogan.models.stylegan2 import StyleGAN2Generator

__all__ = ["RULES", "draw_deltas", "enrich", "style_mask"]

RULES = ("random", "normal", "w", "extrapolation")


def style_mask(style_indices: Sequence[int] | None, n_latent: int) -> torch.Tensor:
    """``[L]`` float mask of the perturbed style inputs (None: all); out-of-range indices
    are a ConfigError naming the valid range."""
    if style_indices is None:
        return torch.ones(n_latent)
    bad = [i for i in style_indices if not 0 <= int(i) < n_latent]
    if bad:
        raise ConfigError(
            f"perturb.style_indices {list(style_indices)} has {bad} out of range: this "
            f"generator has {n_latent} style inputs (0..{n_latent - 1})"
        )
    mask = torch.zeros(n_latent)
    mask[[int(i) for i in style_indices]] = 1.0
    return mask


def per_style(
    value: float | Sequence[float] | torch.Tensor, n_latent: int, name: str
) -> torch.Tensor:
    """One value per style input ``[L]`` from a scalar or a list of ``L`` values."""
    t = torch.as_tensor(value, dtype=torch.float32)
    if t.ndim == 0:
        return t.expand(n_latent).clone()
    if t.shape != (n_latent,):
        raise ConfigError(
            f"perturb.{name} needs one value or {n_latent} (one per style input), got {t.numel()}"
        )
    return t


def draw_deltas(
    rule: str,
    g: StyleGAN2Generator,
    ws: torch.Tensor,
    members: torch.Tensor,
    w_start: torch.Tensor,
    w_avg: torch.Tensor,
    generator: torch.Generator,
) -> torch.Tensor:
    """Directions ``delta [K, L, D]`` for output members whose conditioning member is
    ``members [K]`` (indices into ``ws [N, L, D]``)."""
    k, n = members.shape[0], ws.shape[0]
    L, d = ws.shape[1], ws.shape[2]
    device = ws.device
    if rule in ("random", "w"):
        z = torch.randn((k, g.latent_dim), generator=generator, device=device)
        with torch.no_grad():
            w = g.mapping(z)
        if rule == "random":
            return (w - w_avg).unsqueeze(1).expand(k, L, d)
        return w.unsqueeze(1) - w_start
    if n < 2:
        raise ConfigError(f"perturb.rule {rule!r} needs at least 2 conditioning members, got {n}")
    if rule == "normal":
        anomalies = ws - ws.mean(dim=0, keepdim=True)  # [N, L, D]
        e = torch.randn((k, L, n), generator=generator, device=device)
        return torch.einsum("kln,nld->kld", e, anomalies) / (n - 1) ** 0.5
    if rule == "extrapolation":
        other = torch.randint(0, n - 1, (k,), generator=generator, device=device)
        other = other + (other >= members).long()  # a member other than m
        u = torch.randn((k, 1, 1), generator=generator, device=device)
        return u * (ws[members] - ws[other])
    raise ConfigError(f"unknown perturb.rule {rule!r}; choose one of {', '.join(RULES)}")


def enrich(
    g: StyleGAN2Generator,
    ws: torch.Tensor,
    n_samples: int,
    *,
    rule: str,
    scale: torch.Tensor,
    alpha: torch.Tensor,
    mask: torch.Tensor,
    w_avg: torch.Tensor,
    generator: torch.Generator,
    noises: Sequence[torch.Tensor] | None = None,
    residual: torch.Tensor | None = None,
    batch_size: int = 16,
    start: int = 0,
) -> torch.Tensor:
    """``n_samples`` normalised fields ``[K, C, H, W]`` around conditioning latents ``ws``.

    ``scale``, ``alpha``, ``mask``: ``[L]``; ``noises``: the conditioning members' noise maps
    (``[N, 1, h, w]`` per noise input) or None (fresh noise if the generator uses it);
    ``residual``: ``[N, C, H, W]`` added to the members made from each conditioning member.
    ``start``: index of the first output member (member ``k`` comes from ``k mod N``), so
    that a run split into chunks gives the same members as one run.
    """
    n = ws.shape[0]
    device = ws.device
    scale, alpha, mask = scale.to(device), alpha.to(device), mask.to(device)
    mean = ws.mean(dim=0, keepdim=True)
    out = []
    for lo in range(0, n_samples, batch_size):
        idx = torch.arange(start + lo, start + min(lo + batch_size, n_samples), device=device)
        members = idx % n
        a = alpha.view(1, -1, 1)
        w_start = a * mean + (1 - a) * ws[members]
        delta = draw_deltas(rule, g, ws, members, w_start.detach(), w_avg, generator)
        w_new = w_start + (mask * scale).view(1, -1, 1) * delta
        noise = None
        if g.use_noise:
            if noises:
                noise = [nz[members] for nz in noises]
            else:
                noise = g.make_noise(len(idx), generator, device)
        fields = g.synthesis(w_new, noise=noise)
        if residual is not None:
            fields = fields + residual[members].to(fields.dtype)
        out.append(fields)
    return torch.cat(out)
