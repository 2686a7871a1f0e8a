"""Projection of fields into the generator's latent space: W (one ``w`` per field) or W+
(one ``w`` per style input), with the noise maps when the generator injects noise.

The optimisation is rosinality's ``projector.py`` with a pixel loss instead of LPIPS (no
pretrained network exists for geophysical fields): Adam from the mean ``w``, learning rate
``lr * rampup(t) * rampdown(t)`` (:func:`learning_rate`), Gaussian noise added to the
latent with a strength that decays quadratically to 0 at ``noise_ramp``, the noise maps'
autocorrelation penalised at every scale (:func:`noise_regularisation`) and the maps
renormalised after each step. Each field's loss is its own mean over pixels, summed over
the batch: Adam's updates are per element, so a field's trajectory does not depend on the
other fields in its batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from geogan.models.stylegan2 import StyleGAN2Generator
from geogan.recipes.stylegan.config import InvertConfig

__all__ = ["InversionResult", "invert_fields", "learning_rate", "noise_regularisation", "psnr"]


def learning_rate(t: float, lr: float, rampdown: float = 0.25, rampup: float = 0.05) -> float:
    """Learning rate at progress ``t`` in [0, 1]: cosine ramp-down over the last
    ``rampdown``, linear ramp-up over the first ``rampup`` (StyleGAN2's projector)."""
    ramp = min(1.0, (1.0 - t) / rampdown) if rampdown > 0 else 1.0
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    if rampup > 0:
        ramp *= min(1.0, t / rampup)
    return lr * ramp


def noise_regularisation(noises: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per-field ``[B]`` sum over noise maps ``[B, 1, h, w]`` and their 2x-averaged
    pyramids (while both sides are even and above 8) of the squared lag-1
    autocorrelations along x and y: white noise scores ~0, structured noise (where the
    optimiser hides the image) scores high."""
    total = None
    for n in noises:
        while True:
            term = (n * torch.roll(n, 1, dims=-1)).mean(dim=(1, 2, 3)).square()
            term = term + (n * torch.roll(n, 1, dims=-2)).mean(dim=(1, 2, 3)).square()
            total = term if total is None else total + term
            h, w = n.shape[-2:]
            if min(h, w) <= 8 or h % 2 or w % 2:
                break
            n = n.reshape(n.shape[0], 1, h // 2, 2, w // 2, 2).mean(dim=(3, 5))
    if total is None:
        return torch.zeros(())
    return total


def _normalise_noise_(noises: Sequence[torch.Tensor]) -> None:
    with torch.no_grad():
        for n in noises:
            mean = n.mean(dim=(1, 2, 3), keepdim=True)
            std = n.std(dim=(1, 2, 3), keepdim=True)
            n.sub_(mean).div_(std + 1e-8)


def psnr(fields: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio per field ``[B]`` in dB: ``10 log10(range^2 / mse)`` with
    the range (max - min) of each target over all its channels and pixels."""
    mse = (fields.float() - targets.float()).square().flatten(1).mean(1)
    flat = targets.float().flatten(1)
    rng = flat.amax(1) - flat.amin(1)
    return 10 * torch.log10(rng.square() / mse.clamp_min(1e-30))


@dataclass
class InversionResult:
    """Latents per saved step: ``ws[step] [N, n_latent, D]`` (W inversions broadcast),
    ``noises[step]``: one ``[N, 1, h, w]`` per noise input (empty without noise), and the
    final reconstruction metrics per field: ``loss`` and ``psnr`` ``[N]`` at each step."""

    steps: list[int]
    ws: dict[int, torch.Tensor]
    noises: dict[int, list[torch.Tensor]]
    loss: dict[int, torch.Tensor]
    psnr: dict[int, torch.Tensor]


def invert_fields(
    g: StyleGAN2Generator,
    targets: torch.Tensor,
    cfg: InvertConfig,
    *,
    progress: Callable[[int], None] | None = None,
    device: torch.device | str = "cpu",
) -> InversionResult:
    """Invert normalised fields ``targets [N, C, H, W]`` (the generator's output space).

    ``cfg``: steps, learning-rate ramps, latent noise, noise regularisation, loss, space,
    ``save_steps`` (the last step is always saved) and ``batch_size``. ``progress(k)`` is
    called after every optimisation step with the number of fields advanced. Randomness
    (mean ``w``, initial noise maps, latent noise) comes from ``cfg.seed``.
    """
    device = torch.device(device)
    g = g.to(device).eval().requires_grad_(False)
    if targets.ndim != 4 or list(targets.shape[1:]) != [g.out_channels, *g.size]:
        raise ValueError(
            f"targets must be [N, {g.out_channels}, {g.size[0]}, {g.size[1]}], got {list(targets.shape)}"
        )
    gen = torch.Generator(device=device).manual_seed(int(cfg.seed))
    w_mean, w_std = g.mean_w(cfg.mean_latents, gen)
    save = sorted({s for s in cfg.save_steps if s <= cfg.steps} | {cfg.steps})
    out_ws: dict[int, list[torch.Tensor]] = {s: [] for s in save}
    out_noise: dict[int, list[list[torch.Tensor]]] = {s: [] for s in save}
    out_loss: dict[int, list[torch.Tensor]] = {s: [] for s in save}
    out_psnr: dict[int, list[torch.Tensor]] = {s: [] for s in save}
    for start in range(0, targets.shape[0], cfg.batch_size):
        y = targets[start : start + cfg.batch_size].to(device).float()
        b = y.shape[0]
        if cfg.space == "w+":
            latent = w_mean.view(1, 1, -1).repeat(b, g.n_latent, 1)
        else:
            latent = w_mean.view(1, -1).repeat(b, 1)
        latent.requires_grad_(True)
        noises = [n.requires_grad_(True) for n in g.make_noise(b, gen, device)]
        opt = torch.optim.Adam([latent, *noises], lr=cfg.lr)
        for i in range(cfg.steps):
            t = i / cfg.steps
            for group in opt.param_groups:
                group["lr"] = learning_rate(t, cfg.lr, cfg.lr_rampdown, cfg.lr_rampup)
            strength = float(w_std) * cfg.noise * max(0.0, 1.0 - t / cfg.noise_ramp) ** 2
            jitter = torch.randn(latent.shape, generator=gen, device=device) * strength
            fields = g.synthesis(g.broadcast(latent + jitter), noise=noises or None)
            diff = fields - y
            per = diff.square() if cfg.loss == "mse" else diff.abs()
            pixel = per.flatten(1).mean(1)  # [b]
            loss = cfg.loss_intensity * pixel
            if noises and cfg.noise_regularize > 0:
                loss = loss + cfg.noise_regularize * noise_regularisation(noises)
            opt.zero_grad(set_to_none=True)
            loss.sum().backward()
            opt.step()
            if noises:
                _normalise_noise_(noises)
            step = i + 1
            if step in out_ws:
                with torch.no_grad():
                    ws = g.broadcast(latent.detach()).clone()
                    rec = g.synthesis(ws, noise=[n.detach() for n in noises] or None)
                    out_ws[step].append(ws.cpu())
                    out_noise[step].append([n.detach().cpu().clone() for n in noises])
                    err = rec - y
                    final = (err.square() if cfg.loss == "mse" else err.abs()).flatten(1).mean(1)
                    out_loss[step].append(final.cpu())
                    out_psnr[step].append(psnr(rec, y).cpu())
            if progress is not None:
                progress(b)
    noise_out = {
        s: [torch.cat([batch[k] for batch in out_noise[s]]) for k in range(len(out_noise[s][0]))]
        if out_noise[s] and out_noise[s][0]
        else []
        for s in save
    }
    return InversionResult(
        steps=save,
        ws={s: torch.cat(out_ws[s]) for s in save},
        noises=noise_out,
        loss={s: torch.cat(out_loss[s]) for s in save},
        psnr={s: torch.cat(out_psnr[s]) for s in save},
    )


def members_per_minute(n_fields: int, seconds: float) -> float:
    return float(n_fields) / max(seconds, 1e-9) * 60.0


def as_numpy(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy()
