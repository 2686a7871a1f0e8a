"""srsgan-style generator and critic: construction, shapes (2D, 3D, per-axis factors),
receptive radius, a reference formula, and the export round trip."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from geogan.core.checkpoint import module_tensors, save_checkpoint
from geogan.core.errors import ConfigError
from geogan.core.modules import model_spec
from geogan.inference.export import load_export
from geogan.models.srsgan import SRSGANCritic, SRSGANGenerator, channel_schedule, stage_factors


def _gen(**kw):
    base = dict(
        dims=3, in_channels=2, out_channels=2, factor=4, chan_base=8, chan_min=4, chan_max=8
    )
    return SRSGANGenerator(**{**base, **kw})


def test_stage_factors_and_channel_schedule():
    assert stage_factors(8, 2) == [(2, 2), (2, 2), (2, 2)]
    assert stage_factors([1, 4, 2], 3) == [(1, 2, 2), (1, 2, 1)]
    # srsgan's clamp(base >> b, min, max)
    assert channel_schedule(512, 64, 512, 3) == [512, 256, 128, 64]
    with pytest.raises(ConfigError, match="power of 2"):
        stage_factors(3, 3)
    with pytest.raises(ConfigError, match="nothing to super-resolve"):
        stage_factors(1, 3)


@pytest.mark.parametrize("noise", ["add", "concat", "none"])
def test_generator_shapes_in_3d_and_2d(noise):
    g = _gen(noise=noise)
    x = torch.randn(2, 2, 5, 6, 7)
    assert g(x).shape == (2, 2, 20, 24, 28)
    shapes = g.noise_shapes(x.shape)
    assert len(shapes) == (0 if noise == "none" else 4)
    if shapes:
        assert shapes[-1] == (2, 1, 20, 24, 28) and shapes[0] == (2, 1, 5, 6, 7)
    g2 = SRSGANGenerator(
        dims=2, in_channels=1, out_channels=1, factor=8, chan_base=8, chan_min=4, noise=noise
    )
    assert g2(torch.randn(3, 1, 4, 5)).shape == (3, 1, 32, 40)


def test_generator_with_a_factor_per_axis_keeps_the_levels():
    g = _gen(factor=[1, 4, 4], in_channels=3, out_channels=2)
    assert g(torch.randn(1, 3, 15, 8, 8)).shape == (1, 2, 15, 32, 32)
    assert g.receptive_radius() == (4, 3, 3)


def test_noise_enters_every_block_and_changes_the_output():
    torch.manual_seed(0)
    g = _gen(noise="concat").eval()
    x = torch.randn(1, 2, 4, 4, 4)
    a, b = g(x), g(x)
    assert not torch.allclose(a, b)
    zeros = [torch.zeros(s) for s in g.noise_shapes(x.shape)]
    torch.testing.assert_close(g(x, zeros), g(x, zeros))
    for k in range(4):  # each injection point matters
        noise = [torch.zeros(s) for s in g.noise_shapes(x.shape)]
        noise[k] = torch.randn(noise[k].shape)
        assert not torch.allclose(g(x, noise), g(x, zeros))


def test_residual_generator_without_detail_is_the_trilinear_upsampling():
    """Reference formula: with zero projections the output path is linear interpolation."""
    g = _gen(factor=[2, 4, 2], padding_mode="replicate").eval()
    for block in g.blocks:
        torch.nn.init.zeros_(block.proj.weight)
        torch.nn.init.zeros_(block.proj.bias)
    x = torch.randn(2, 2, 5, 6, 7)
    expected = x
    for f in g.stages:
        size = [n * k for n, k in zip(expected.shape[2:], f)]
        expected = F.interpolate(expected, size=size, mode="trilinear", align_corners=False)
    torch.testing.assert_close(g(x), expected, atol=1e-6, rtol=1e-6)


def test_receptive_radius_bounds_the_reach_of_an_input_voxel():
    torch.manual_seed(1)
    g = _gen(noise="none").eval()
    for p in g.parameters():
        p.data.normal_(0, 0.3)
    r = g.receptive_radius()
    assert r == (3, 3, 3)
    x = torch.randn(1, 2, 12, 12, 12)
    x2 = x.clone()
    x2[0, :, 6, 6, 6] += 1.0
    diff = (g(x2) - g(x)).abs().sum(dim=(0, 1))
    hit = diff.nonzero()
    lo, hi = hit.min(0).values, hit.max(0).values
    assert (lo >= 4 * (6 - r[0])).all() and (hi < 4 * (7 + r[0])).all()


def test_critic_shapes_min_size_and_condition_upsampling():
    d = SRSGANCritic(
        dims=3,
        condition_channels=3,
        image_channels=2,
        factor=4,
        chan_base=8,
        chan_min=4,
        chan_max=16,
    )
    assert d.min_image_size() == (16, 16, 16)
    cond, img = torch.randn(2, 3, 4, 4, 4), torch.randn(2, 2, 16, 16, 16)
    assert d(cond, img).shape == (2,)
    up = F.interpolate(cond, scale_factor=4, mode="trilinear", align_corners=False)
    torch.testing.assert_close(d.condition_features(cond), up)
    torch.testing.assert_close(d(cond, img), d.score(up, img))
    with pytest.raises(ValueError, match="at least"):
        d(torch.randn(1, 3, 3, 3, 3), torch.randn(1, 2, 12, 12, 12))
    same = SRSGANCritic(
        dims=2,
        condition_channels=1,
        image_channels=1,
        factor=2,
        chan_base=8,
        chan_min=4,
        padding="same",
    )
    assert same(torch.randn(1, 1, 3, 3), torch.randn(1, 1, 6, 6)).shape == (1,)
    aniso = SRSGANCritic(
        dims=3, condition_channels=1, image_channels=1, factor=[1, 4, 4], chan_base=8, chan_min=4
    )
    assert aniso.min_image_size() == (9, 16, 16)


def test_critic_scores_each_sample_on_its_own():
    d = SRSGANCritic(
        dims=3, condition_channels=1, image_channels=1, factor=2, chan_base=8, chan_min=4
    )
    cond, img = torch.randn(3, 1, 6, 6, 6), torch.randn(3, 1, 12, 12, 12)
    both = d(cond, img)
    torch.testing.assert_close(both[1:2], d(cond[1:2], img[1:2]))


def test_export_round_trip_rebuilds_both_models(tmp_path):
    torch.manual_seed(3)
    g = _gen(noise="add", factor=[2, 2, 4])
    d = SRSGANCritic(
        dims=3, condition_channels=2, image_channels=2, factor=[2, 2, 4], chan_base=8, chan_min=4
    )
    for p in g.parameters():  # non-zero noise scales too
        p.data.normal_(0, 0.2)
    path = tmp_path / "export.safetensors"
    tensors = {**module_tensors("generator", g), **module_tensors("critic", d)}
    meta = {
        "kind": "export",
        "format": "volume/1",
        "models": {"generator": model_spec(g), "critic": model_spec(d)},
    }
    save_checkpoint(path, tensors, meta)
    models, back = load_export(path, format_prefix="volume/")
    assert back["format"] == "volume/1"
    x = torch.randn(1, 2, 6, 6, 4)
    noise = [torch.randn(s) for s in g.noise_shapes(x.shape)]
    g.eval()
    with torch.no_grad():
        torch.testing.assert_close(models["generator"](x, noise), g(x, noise))
        img = torch.randn(1, 2, 12, 12, 16)
        torch.testing.assert_close(models["critic"](x, img), d(x, img))
