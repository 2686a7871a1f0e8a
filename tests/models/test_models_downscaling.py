"""Recipe-1 models: architecture variants, options, input checks and reference outputs."""

import pytest
import torch

from geogan.core.errors import ConfigError, DataError
from geogan.models import (
    DownscalingCritic,
    DownscalingEncoder,
    DownscalingGenerator,
    sample_latent,
)
from geogan.nn import ResidualBlock


def _count(model):
    return sum(p.numel() for p in model.parameters())


def _blocks(model):
    return [m for m in model.modules() if isinstance(m, ResidualBlock)]


def test_forceconv_long_has_more_parameters_and_blocks():
    kw = dict(in_channels=2, constant_channels=1, filters=4)
    short = DownscalingGenerator(arch="forceconv", **kw)
    long = DownscalingGenerator(arch="forceconv-long", **kw)
    assert _count(long) > _count(short)
    assert len(_blocks(long)) == len(_blocks(short)) + 3


def test_forceconv_puts_1x1_convs_on_every_skip():
    kw = dict(in_channels=2, constant_channels=1, filters=4)
    force = _blocks(DownscalingGenerator(arch="forceconv", **kw))
    normal = _blocks(DownscalingGenerator(arch="normal", **kw))
    assert all(b.has_1x1_skip for b in force)
    # normal keeps 1x1 convs only where the channel count changes
    assert 0 < sum(b.has_1x1_skip for b in normal) < len(normal)
    assert all(b.has_1x1_skip == (b.conv1.in_channels != b.conv1.out_channels) for b in normal)


@pytest.mark.parametrize("factors", [[2], [3], [5, 2], [2, 2, 2]])
def test_generator_factors_and_softplus(factors):
    torch.manual_seed(0)
    g = DownscalingGenerator(
        in_channels=2, constant_channels=1, filters=4, upsampling_factors=factors
    )
    f = g.factor
    out = g(torch.randn(1, 2, 2, 3), torch.randn(1, 1, 2 * f, 3 * f), torch.randn(1, 4, 2, 3))
    assert out.shape == (1, 1, 2 * f, 3 * f)
    assert (out >= 0).all()


def test_linear_output_can_be_negative():
    torch.manual_seed(0)
    g = DownscalingGenerator(in_channels=2, filters=4, output_activation="linear")
    assert (g(torch.randn(2, 2, 4, 4)) < 0).any()


def test_generator_without_constants_or_noise():
    torch.manual_seed(0)
    g = DownscalingGenerator(in_channels=2, noise_channels=0, filters=4, out_channels=3)
    x = torch.randn(2, 2, 3, 3)
    out = g(x, torch.empty(2, 0, 12, 12))  # K = 0 given as an empty tensor
    assert out.shape == (2, 3, 12, 12)
    torch.testing.assert_close(out, g(x))  # deterministic baseline: no noise
    with pytest.raises(DataError, match="noise_channels=0"):
        g(x, None, torch.randn(2, 1, 3, 3))


def test_generator_draws_noise_reproducibly_when_none_given():
    torch.manual_seed(0)
    g = DownscalingGenerator(in_channels=1, constant_channels=1, noise_channels=3, filters=4)
    x, k = torch.randn(2, 1, 3, 3), torch.randn(2, 1, 12, 12)
    assert g.noise_shape(x) == (2, 3, 3, 3)
    a = g(x, k, generator=torch.Generator().manual_seed(7))
    b = g(x, k, generator=torch.Generator().manual_seed(7))
    c = g(x, k, generator=torch.Generator().manual_seed(8))
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)
    noise = torch.randn(g.noise_shape(x), generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(g(x, k, noise), a)


def test_one_pixel_inputs_and_periodic_longitude():
    # Reflect padding on a 1-pixel axis falls back to replicate instead of failing.
    torch.manual_seed(0)
    g = DownscalingGenerator(
        in_channels=1, filters=4, padding_mode=["reflect", "circular"], upsampling_factors=[2]
    )
    assert g(torch.randn(1, 1, 1, 1)).shape == (1, 1, 2, 2)
    assert g(torch.randn(1, 1, 3, 5)).shape == (1, 1, 6, 10)


def test_vaegan_encoder_and_decoder():
    torch.manual_seed(0)
    enc = DownscalingEncoder(in_channels=2, constant_channels=1, latent_variables=5, filters=4)
    dec = DownscalingGenerator(
        in_channels=2, constant_channels=1, latent_variables=5, noise_channels=4, filters=4
    )
    x, k = torch.randn(2, 2, 3, 3), torch.randn(2, 1, 12, 12)
    mean, logvar = enc(x, k)
    assert mean.shape == logvar.shape == (2, 5, 3, 3)
    assert dec.noise_shape(x) == (2, 5, 3, 3)  # latent_variables replaces noise_channels
    z = sample_latent(mean, logvar, generator=torch.Generator().manual_seed(0))
    assert dec(x, k, z).shape == (2, 1, 12, 12)
    torch.testing.assert_close(sample_latent(mean, logvar, torch.zeros_like(mean)), mean)


def test_input_checks_say_what_was_expected():
    g = DownscalingGenerator(in_channels=2, constant_channels=1, filters=4)
    x, k = torch.randn(1, 2, 3, 3), torch.randn(1, 1, 12, 12)
    with pytest.raises(DataError, match=r"input has shape \[1, 3, 3, 3\], expected \[B, 2, H, W\]"):
        g(torch.randn(1, 3, 3, 3), k)
    with pytest.raises(DataError, match=r"constants .* expected \[1, 1, 12, 12\]"):
        g(x, torch.randn(1, 1, 10, 10))
    with pytest.raises(DataError, match="no constants"):
        g(x)
    c = DownscalingCritic(in_channels=2, filters=4)
    with pytest.raises(DataError, match="image"):
        c(x, None, torch.randn(1, 1, 6, 6))
    with pytest.raises(DataError, match="constant_channels=0"):
        c(x, k, torch.randn(1, 1, 12, 12))


def test_bad_config_raises_config_error():
    with pytest.raises(ConfigError, match="arch"):
        DownscalingGenerator(in_channels=1, arch="forcecon")
    with pytest.raises(ConfigError, match="upsampling_factors"):
        DownscalingGenerator(in_channels=1, upsampling_factors=[2, 0])
    with pytest.raises(ConfigError, match="output_activation"):
        DownscalingGenerator(in_channels=1, output_activation="relu6")
    with pytest.raises(ConfigError, match="dims"):
        DownscalingCritic(in_channels=1, dims=1)
    with pytest.raises(TypeError, match="keyword"):
        DownscalingGenerator(1)


def test_critic_has_no_batch_norm_by_default_and_raw_scores():
    torch.manual_seed(0)
    c = DownscalingCritic(in_channels=1, constant_channels=1, filters=4)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in c.modules())
    s = c(torch.randn(4, 1, 2, 2), torch.randn(4, 1, 8, 8), torch.randn(4, 1, 8, 8))
    assert s.shape == (4, 1) and (s.min() < 0 or s.max() > 1)  # not squashed to [0, 1]
    assert DownscalingCritic(in_channels=1, filters=4, batch_norm=True)(
        torch.randn(2, 1, 2, 2), None, torch.randn(2, 1, 8, 8)
    ).shape == (2, 1)


def _reference_inputs():
    g = torch.Generator().manual_seed(2024)
    x = torch.randn(1, 2, 3, 3, generator=g)
    k = torch.randn(1, 1, 12, 12, generator=g)
    noise = torch.randn(1, 4, 3, 3, generator=g)
    image = torch.rand(1, 1, 12, 12, generator=g)
    return x, k, noise, image


def test_reference_outputs():
    """Fixed-seed outputs recorded from this implementation (torch 2.13 CPU) by running
    this test's body and printing ``out.sum()``, ``out[0, 0, 5, :4]``, ``score``,
    ``mean.sum()`` and ``logvar.sum()``. They change only if the architecture,
    the initialisation or the parameter creation order changes; if that was intended,
    re-record them the same way."""
    x, k, noise, image = _reference_inputs()
    torch.manual_seed(0)
    g = DownscalingGenerator(in_channels=2, constant_channels=1, filters=4)
    torch.manual_seed(0)
    c = DownscalingCritic(in_channels=2, constant_channels=1, filters=4)
    torch.manual_seed(0)
    e = DownscalingEncoder(in_channels=2, constant_channels=1, latent_variables=2, filters=4)
    with torch.no_grad():
        out = g(x, k, noise)
        score = c(x, k, image)
        mean, logvar = e(x, k)
    assert out.sum().item() == pytest.approx(REF_GEN_SUM, rel=1e-4)
    torch.testing.assert_close(out[0, 0, 5, :4], torch.tensor(REF_GEN_ROW), rtol=1e-4, atol=1e-5)
    assert score.item() == pytest.approx(REF_CRITIC, rel=1e-4, abs=1e-6)
    assert mean.sum().item() == pytest.approx(REF_MEAN_SUM, rel=1e-4, abs=1e-6)
    assert logvar.sum().item() == pytest.approx(REF_LOGVAR_SUM, rel=1e-4, abs=1e-6)


REF_GEN_SUM = 89.96908569335938
REF_GEN_ROW = [0.6610496640205383, 0.6884039044380188, 0.6184772253036499, 0.6413791179656982]
REF_CRITIC = -0.27167779207229614
REF_MEAN_SUM = -2.6772894859313965
REF_LOGVAR_SUM = -4.591429233551025
