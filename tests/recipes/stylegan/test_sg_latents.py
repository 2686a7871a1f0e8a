"""Inversion (recovers a known w), the four perturbation rules, the tuning, the metrics
and the linear-combination baseline."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from geogan.core.errors import ConfigError
from geogan.evaluation.distributions import PixelWasserstein
from geogan.models.stylegan2 import StyleGAN2Generator
from geogan.recipes.stylegan.baselines import linear_combinations
from geogan.recipes.stylegan.config import InvertConfig
from geogan.recipes.stylegan.enrich import draw_deltas, enrich, per_style, style_mask
from geogan.recipes.stylegan.evaluate import rank_flatness, spectrum_deviation
from geogan.recipes.stylegan.inversion import (
    invert_fields,
    learning_rate,
    noise_regularisation,
    psnr,
)
from geogan.recipes.stylegan.metrics import CorrelationLength, MultiscalePixelWasserstein
from geogan.recipes.stylegan.tune import inflation


def _generator(seed=0, **kw):
    torch.manual_seed(seed)
    args = {
        "size": [8, 16],
        "base_size": [4, 8],
        "out_channels": 2,
        "latent_dim": 16,
        "n_mlp": 2,
        "channels": [16, 16],
        "use_noise": False,
        **kw,
    }
    return StyleGAN2Generator(**args).eval().requires_grad_(False)


def test_inversion_recovers_a_field_the_generator_made_from_a_known_w():
    g = _generator()
    z = torch.randn(2, 16, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        w = g.mapping(z)
        target = g.synthesis(w)
    cfg = InvertConfig(steps=300, space="w", save_steps=[100], mean_latents=256, batch_size=2)
    result = invert_fields(g, target, cfg)
    assert result.steps == [100, 300]
    assert (result.psnr[300] >= 30).all(), result.psnr
    assert (result.psnr[300] > result.psnr[100]).all()
    rel = (result.ws[300][:, 0] - w).norm(dim=1) / w.norm(dim=1)
    assert (rel < 0.05).all(), rel
    # W+ reaches the same field quality from the same start
    plus = invert_fields(g, target, cfg.model_copy(update={"space": "w+"}))
    assert plus.ws[300].shape == (2, g.n_latent, 16) and (plus.psnr[300] >= 25).all()


def test_inversion_schedule_and_noise_regularisation():
    assert learning_rate(0.0, 0.1) == 0.0
    assert learning_rate(0.5, 0.1) == pytest.approx(0.1)
    assert learning_rate(1.0, 0.1) == pytest.approx(0.0, abs=1e-12)
    assert learning_rate(0.875, 0.1) == pytest.approx(0.1 * 0.5, rel=1e-6)  # half way down
    white = torch.randn(1, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    smooth = torch.nn.functional.avg_pool2d(white, 5, 1, 2, count_include_pad=False)
    smooth = (smooth - smooth.mean()) / smooth.std()  # unit variance, as the inversion keeps it
    assert noise_regularisation([smooth]) > 50 * noise_regularisation([white])
    t = torch.zeros(1, 1, 2, 2)
    t[0, 0, 0, 0] = 1.0
    assert psnr(t * 0.9, t)[0] == pytest.approx(10 * math.log10(1 / (0.01 / 4)))


def test_noise_maps_are_optimised_when_the_generator_injects_noise():
    g = _generator(use_noise=True)
    with torch.no_grad():
        for m in g.modules():
            if getattr(m, "noise", None) is not None:
                m.noise.weight.fill_(0.3)
    target = g(torch.randn(1, 16), generator=torch.Generator().manual_seed(1)).detach()
    cfg = InvertConfig(steps=20, save_steps=[20], mean_latents=64, noise_regularize=1e3)
    result = invert_fields(g, target, cfg)
    assert len(result.noises[20]) == len(g.noise_shapes(1))
    for n in result.noises[20]:  # renormalised after every step
        assert float(n.std()) == pytest.approx(1.0, rel=0.05)


def test_perturbation_rules():
    g = _generator()
    gen = torch.Generator().manual_seed(0)
    ws = g.broadcast(g.mapping(torch.randn(4, 16, generator=gen)))
    members = torch.arange(6) % 4
    w_avg = g.mean_w(256, gen)[0]
    start = ws[members]
    for rule in ("random", "normal", "w", "extrapolation"):
        d = draw_deltas(rule, g, ws, members, start, w_avg, gen)
        assert d.shape == (6, g.n_latent, 16) and torch.isfinite(d).all()
    # normal: samples of a Gaussian with the members' covariance in W
    many = torch.arange(4000) % 4
    d = draw_deltas("normal", g, ws, many, ws[many], w_avg, gen)
    anomalies = ws - ws.mean(0)
    cov_members = torch.einsum("nld,nle->lde", anomalies, anomalies) / 3
    cov_draws = torch.einsum("kld,kle->lde", d, d) / len(many)
    assert torch.allclose(cov_draws, cov_members, atol=0.15 * cov_members.abs().max())
    # w: scale 1 moves straight to a random point of the prior
    d = draw_deltas("w", g, ws, members, start, w_avg, gen)
    assert torch.allclose((start + d)[:, 0], (start + d)[:, -1])
    with pytest.raises(ConfigError, match="at least 2"):
        draw_deltas("extrapolation", g, ws[:1], members * 0, start, w_avg, gen)
    with pytest.raises(ConfigError, match="out of range"):
        style_mask([0, g.n_latent], g.n_latent)
    with pytest.raises(ConfigError, match="one value or"):
        per_style([1.0, 2.0], g.n_latent, "scale")


def test_enrich_masks_styles_keeps_the_residual_and_is_chunk_independent():
    g = _generator()
    gen = torch.Generator().manual_seed(1)
    ws = g.broadcast(g.mapping(torch.randn(3, 16, generator=gen)))
    w_avg = g.mean_w(256, gen)[0]
    residual = torch.randn(3, 2, 8, 16, generator=gen)
    common = {
        "rule": "normal",
        "alpha": torch.zeros(g.n_latent),
        "w_avg": w_avg,
        "residual": residual,
    }
    zero = enrich(
        g,
        ws,
        6,
        scale=torch.ones(g.n_latent),
        mask=torch.zeros(g.n_latent),
        generator=torch.Generator().manual_seed(2),
        **common,
    )
    with torch.no_grad():
        members = g.synthesis(ws) + residual
    torch.testing.assert_close(zero[:3], members)
    torch.testing.assert_close(zero[3:], members)
    a = enrich(
        g,
        ws,
        6,
        scale=torch.ones(g.n_latent),
        mask=style_mask([0, 1], g.n_latent),
        generator=torch.Generator().manual_seed(3),
        batch_size=6,
        **common,
    )
    assert not torch.allclose(a, zero)
    # differentiable in the scale (the tuning needs it)
    s = torch.full((g.n_latent,), 0.5, requires_grad=True)
    out = enrich(
        g,
        ws,
        4,
        scale=s,
        mask=torch.ones(g.n_latent),
        generator=torch.Generator().manual_seed(4),
        **common,
    )
    out.std(0).mean().backward()
    assert s.grad is not None and torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0
    assert inflation("auto", 5) == pytest.approx(math.sqrt(1.2) - 1)


def test_linear_combination_baseline_has_the_members_spread():
    rng = np.random.default_rng(0)
    members = rng.normal(size=(5, 2, 16, 16))
    base = linear_combinations(members, 20000, seed=1)
    assert base.shape == (20000, 2, 16, 16)
    np.testing.assert_allclose(base.mean(0), members.mean(0), atol=0.05)
    np.testing.assert_allclose(base.var(0), members.var(0, ddof=1), rtol=0.08, atol=0.01)


def test_ensemble_metrics_against_independent_values():
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(3)
    s = 2.0  # Gaussian-filtered white noise: correlation exp(-r^2 / 4 s^2), L = sqrt(2) s

    def ens(n):
        return np.stack(
            [[gaussian_filter(rng.standard_normal((48, 48)), s, mode="wrap")] for _ in range(n)]
        )

    f, r = ens(30), ens(30)
    cl = CorrelationLength(periodic_last=True)
    cl.update(r, f)
    out = cl.finalize()
    # finite differences: L_fd = (2 (1 - exp(-1 / (2 L^2))))^-1/2 for the 1-pixel lag
    lfd = 1 / math.sqrt(2 * (1 - math.exp(-1 / (4 * s**2))))
    assert out["corr_length"] == pytest.approx(lfd, rel=0.08)
    assert out["corr_length_ratio"] == pytest.approx(1.0, abs=0.05)
    mpw, pw = MultiscalePixelWasserstein(scales=[1, 4]), PixelWasserstein()
    mpw.update(r, f)
    pw.update(r, f)
    res = mpw.finalize()
    assert res["pixel_wasserstein_k1"] == pytest.approx(pw.finalize()["pixel_wasserstein"])
    assert res["pixel_wasserstein_k4"] < res["pixel_wasserstein_k1"]
    assert rank_flatness([0.25] * 4, 400)["rank_cdf_rms"] == pytest.approx(0.0, abs=1e-12)
    u = rank_flatness([0.5, 0.0, 0.0, 0.5], 400)
    assert u["rank_cdf_rms"] == pytest.approx(np.sqrt(np.mean(np.array([0.25, 0.0, 0.25]) ** 2)))
    assert spectrum_deviation(
        np.array([9.0, 1.1, 0.8]), np.array([1.0, 1.0, 1.0])
    ) == pytest.approx(0.2)
