"""residual_input and conserve_mean options of the downscaling generator."""

from __future__ import annotations

import torch

from geogan.models.downscaling import DownscalingGenerator


def _gen(**kw):
    torch.manual_seed(0)
    return DownscalingGenerator(
        in_channels=2, out_channels=1, filters=8, noise_channels=2, upsampling_factors=[2, 2], **kw
    )


def test_conserve_mean_makes_block_means_equal_the_input():
    g = _gen(output_activation="linear", conserve_mean="additive")
    x = torch.randn(3, 2, 5, 6)
    y = g(x, None, torch.randn(3, 2, 5, 6))
    block_means = torch.nn.functional.avg_pool2d(y, 4)
    torch.testing.assert_close(block_means, x[:, :1], atol=1e-5, rtol=0)


def test_conserve_mean_in_3d():
    torch.manual_seed(0)
    g = DownscalingGenerator(
        dims=3,
        in_channels=1,
        filters=4,
        noise_channels=1,
        upsampling_factors=[2],
        output_activation="linear",
        conserve_mean="additive",
    )
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
