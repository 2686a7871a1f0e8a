"""residual_input and conserve_mean options of the downscaling generator."""

from __future__ import annotations

import torch

from geogan.models.downscaling import DownscalingGenerator


def _gen(**kw):
    torch.manual_seed(0)
    return DownscalingGenerator(
        in_channels=2, out_channels=1, filters=8, noise_channels=2, upsampling_factors=[2, 2], **kw
    )


def _gen3(conserve_mean):
    torch.manual_seed(0)
    return DownscalingGenerator(
        dims=3,
        in_channels=1,
        filters=4,
        noise_channels=1,
        upsampling_factors=[2],
        output_activation="linear",
        conserve_mean=conserve_mean,
    )


def test_conserve_mean_makes_block_means_equal_the_input():
    g = _gen(output_activation="linear", conserve_mean="additive")
    x = torch.randn(3, 2, 5, 6)
    y = g(x, None, torch.randn(3, 2, 5, 6))
    block_means = torch.nn.functional.avg_pool2d(y, 4)
    torch.testing.assert_close(block_means, x[:, :1], atol=1e-5, rtol=0)


def test_conserve_mean_in_3d():
    g = _gen3("additive")
    x = torch.randn(1, 1, 3, 4, 5)
    y = g(x, None, torch.randn(1, 1, 3, 4, 5))
    torch.testing.assert_close(torch.nn.functional.avg_pool3d(y, 2), x, atol=1e-5, rtol=0)


def test_residual_input_starts_from_bilinear_interpolation():
    g = _gen(output_activation="linear", residual_input=True)
    with torch.no_grad():  # silence the network: the output is then exactly the interpolation
        g.output.weight.zero_()
        g.output.bias.zero_()
    x = torch.randn(2, 2, 4, 4)
    y = g(x, None, torch.randn(2, 2, 4, 4))
    expected = torch.nn.functional.interpolate(
        x[:, :1], scale_factor=4, mode="bilinear", align_corners=False
    )
    torch.testing.assert_close(y, expected)


def test_options_are_recorded_in_the_spec():
    g = _gen(conserve_mean="additive", residual_input=True)
    assert g.model_spec["kwargs"]["conserve_mean"] == "additive"
    assert g.model_spec["kwargs"]["residual_input"] is True


def test_smooth_conserve_mean_is_exact_in_2d_and_3d():
    g = _gen(output_activation="linear", conserve_mean="smooth")
    x = torch.randn(3, 2, 5, 6)
    y = g(x, None, torch.randn(3, 2, 5, 6))
    torch.testing.assert_close(torch.nn.functional.avg_pool2d(y, 4), x[:, :1], atol=1e-5, rtol=0)
    g3 = _gen3("smooth")
    x3 = torch.randn(1, 1, 3, 4, 5)
    y3 = g3(x3, None, torch.randn(1, 1, 3, 4, 5))
    torch.testing.assert_close(torch.nn.functional.avg_pool3d(y3, 2), x3, atol=1e-5, rtol=0)


def _edge_jumps(z: torch.Tensor, f: int) -> tuple[float, float]:
    """Largest jump between horizontal neighbours across block edges and inside blocks."""
    d = (z[..., 1:] - z[..., :-1]).abs()
    across = torch.zeros(d.shape[-1], dtype=torch.bool)
    across[f - 1 :: f] = True
    return float(d[..., across].max()), float(d[..., ~across].max())


def test_smooth_conserve_mean_leaves_no_seams():
    """Zero network output and a smooth coarse field (a ramp plus a bump): the additive
    constraint gives a staircase, the smooth one a field without steps at block edges."""
    f = 8
    additive = DownscalingGenerator(
        in_channels=1, filters=4, upsampling_factors=[f], conserve_mean="additive"
    )
    smooth = DownscalingGenerator(
        in_channels=1, filters=4, upsampling_factors=[f], conserve_mean="smooth"
    )
    yy, xx = torch.meshgrid(torch.arange(12.0), torch.arange(12.0), indexing="ij")
    coarse = (0.1 * xx + torch.exp(-((yy - 6) ** 2 + (xx - 5) ** 2) / 8))[None, None]
    zero = torch.zeros(1, 1, 12 * f, 12 * f)
    stairs, soft = additive._conserve(zero, coarse), smooth._conserve(zero, coarse)
    for z in (stairs, soft):
        torch.testing.assert_close(torch.nn.functional.avg_pool2d(z, f), coarse, atol=1e-5, rtol=0)
    across, inside = _edge_jumps(stairs, f)
    assert inside == 0 and across > 0.1  # the seams
    across_s, _ = _edge_jumps(soft, f)
    assert across_s < 0.2 * across


def test_smooth_conserve_mean_spec_and_config():
    from geogan.recipes.downscaling.config import ModelConfig

    g = _gen(conserve_mean="smooth")
    assert g.model_spec["kwargs"]["conserve_mean"] == "smooth"
    assert ModelConfig(conserve_mean="smooth").conserve_mean == "smooth"


def test_softmax_conserve_mean_is_exact_non_negative_and_keeps_dry_blocks_dry():
    g = _gen(conserve_mean="softmax")
    x = torch.rand(3, 2, 5, 6) * 3
    x[:, 0, 1:3, 2:4] = 0.0  # dry coarse pixels
    y = g(x, None, torch.randn(3, 2, 5, 6))
    torch.testing.assert_close(torch.nn.functional.avg_pool2d(y, 4), x[:, :1], atol=1e-5, rtol=1e-5)
    assert (y >= 0).all()
    assert (y[:, :, 4:12, 8:16] == 0).all()  # the dry blocks are exactly zero: no drizzle
    assert (y[:, :, :4, :4] > 0).all()  # a wet block is positive everywhere


def test_softmax_conserve_mean_survives_huge_logits_and_has_finite_gradients():
    g = DownscalingGenerator(
        in_channels=1, filters=4, upsampling_factors=[4], conserve_mean="softmax"
    )
    logits = torch.tensor([[[[500.0, -500.0], [0.0, 80.0]]]]).repeat_interleave(2, 2)
    logits = logits.repeat_interleave(2, 3).requires_grad_(True)  # [1, 1, 4, 4]: one block
    coarse = torch.tensor([[[[2.0]]]])
    y = g._conserve(logits, coarse)
    assert torch.isfinite(y).all()
    torch.testing.assert_close(y.mean(), torch.tensor(2.0))
    # the largest logits take the whole block: 4 pixels share 16 x 2
    torch.testing.assert_close(y[0, 0, :2, :2], torch.full((2, 2), 8.0))
    (y * torch.arange(16.0).reshape(1, 1, 4, 4)).sum().backward()
    assert torch.isfinite(logits.grad).all()
