"""The critic as dsrnngan builds it (``style="dsrnngan"``), used by the equal-work speed
benchmark, and the phase options that reproduce dsrnngan's training step."""

from __future__ import annotations

import pytest
import torch

from geogan.core.checkpoint import module_tensors, save_checkpoint
from geogan.core.errors import ConfigError
from geogan.core.modules import model_spec
from geogan.inference.export import load_export
from geogan.models.downscaling import DownscalingCritic


def _block(cin: int, cout: int) -> int:
    """Parameters of a forceconv residual block: two 3x3 convs and a 1x1 skip, with biases."""
    return (cin * cout * 9 + cout) + (cout * cout * 9 + cout) + (cin * cout + cout)


def _dsrnngan_params(c: int, k: int, f: int, factors=(5, 2)) -> int:
    """dsrnngan's ``discriminator()`` (models.py) layer by layer, for two stages."""
    s1, s2 = factors
    const = (k * f * s1 * s1 + f) + (f * f * s2 * s2 + f)  # const_upscale_block, ReLU convs
    low = _block(c + f, f) + _block(f, 2 * f)
    high = ((1 + k) * f * s1 * s1 + f) + _block(f, f) + (f * 2 * f * s2 * s2 + 2 * f)
    high += _block(2 * f, 2 * f)
    joint = _block(4 * f, f) + _block(f, f)
    dense = (f * 64 + 64) + (64 + 1)
    return const + low + high + joint + dense


@pytest.mark.parametrize("f", [8, 512])
def test_parameters_match_the_reference_layer_by_layer(f):
    critic = DownscalingCritic(
        in_channels=9, constant_channels=2, filters=f, downsampling_factors=[5, 2], style="dsrnngan"
    )
    assert sum(p.numel() for p in critic.parameters()) == _dsrnngan_params(9, 2, f)
    if f == 512:
        assert sum(p.numel() for p in critic.parameters()) == 65_693_825  # the 65.7M
    with pytest.raises(ConfigError, match="unknown critic style"):
        DownscalingCritic(in_channels=1, style="keras")


@pytest.mark.parametrize("dims", [2, 3])
def test_shapes_split_equals_whole_and_round_trip(dims, tmp_path):
    torch.manual_seed(0)
    critic = DownscalingCritic(
        dims=dims,
        in_channels=2,
        constant_channels=1,
        filters=4,
        downsampling_factors=[2, 2],
        style="dsrnngan",
    ).eval()
    n = (3,) * dims
    x = torch.randn(2, 2, *n)
    c = torch.randn(2, 1, *(4 * s for s in n))
    im = torch.randn(2, 1, *(4 * s for s in n))
    out = critic(x, c, im)
    assert out.shape == (2, 1)
    torch.testing.assert_close(critic.score(critic.low_features(x, c), c, im), out)
    assert model_spec(critic)["kwargs"]["style"] == "dsrnngan"
    save_checkpoint(
        tmp_path / "m.safetensors",
        module_tensors("critic", critic),
        {"kind": "export", "format": "test/1", "models": {"critic": model_spec(critic)}},
    )
    loaded, _ = load_export(tmp_path / "m.safetensors", format_prefix="test")
    with torch.no_grad():
        torch.testing.assert_close(loaded["critic"](x, c, im), out)


def test_default_style_is_unchanged():
    """The default critic keeps its parameter names (old checkpoints load) and structure."""
    critic = DownscalingCritic(in_channels=1, constant_channels=1, filters=4)
    names = {n.split(".")[0] for n, _ in critic.named_parameters()}
    assert names == {"low_blocks", "high_down", "high_blocks", "joint", "dense"}
    assert len(critic.joint) == 3 and critic.dense[0].out_features == 4
    assert model_spec(critic)["kwargs"]["style"] == "geogan"


def test_phase_options_reproduce_the_reference_step():
    """``share_low_features=False`` gives the same critic loss as the shared stream (it is
    only more work); ``separate_adversarial`` draws members + 1 generator samples."""
    from geogan.models.downscaling import DownscalingGenerator
    from geogan.recipes.downscaling.phases import CriticPhase, GeneratorPhase
    from geogan.training.phases import StepContext

    torch.manual_seed(1)
    g = DownscalingGenerator(in_channels=1, filters=4, noise_channels=2, upsampling_factors=[2])
    d = DownscalingCritic(in_channels=1, filters=4, downsampling_factors=[2], style="dsrnngan")
    batch = {
        "input": torch.randn(2, 1, 4, 4),
        "target": torch.rand(2, 1, 8, 8),
        "constants": torch.zeros(2, 0, 8, 8),
        "mask": torch.ones(2, 1, 8, 8),
    }

    def ctx():
        import contextlib

        return StepContext(
            step=0,
            repeat=0,
            rank=0,
            seed=0,
            device=torch.device("cpu"),
            autocast=contextlib.nullcontext,
            models={"generator": g, "critic": d},
            memory_format=torch.contiguous_format,
        )

    shared, _ = CriticPhase(repeats=1, mode="gan", adversarial="wgan", gp_weight=10.0).loss(
        batch, ctx()
    )
    whole, _ = CriticPhase(
        repeats=1, mode="gan", adversarial="wgan", gp_weight=10.0, share_low_features=False
    ).loss(batch, ctx())
    torch.testing.assert_close(shared, whole)
    calls = []
    hook = g.register_forward_hook(lambda m, i, o: calls.append(o.shape[0]))
    kw = dict(mode="gan", adversarial="wgan", content_kind="crps", content_weight=1.0, kl_weight=0)
    GeneratorPhase(members=3, **kw).loss(batch, ctx())
    GeneratorPhase(members=3, separate_adversarial=True, **kw).loss(batch, ctx())
    hook.remove()
    assert calls == [3 * 2, 4 * 2]  # one batched call each: 3 members, then 3 + 1


def test_block_mean_penalty_equals_its_formula():
    """``return_block_error`` is ``coarse - pool(output before the constraint)``; the
    generator phase adds ``weight * mean |error|`` over fully valid coarse pixels, and the
    config key reaches the phase."""
    import contextlib

    from geogan.models.downscaling import DownscalingGenerator
    from geogan.recipes.downscaling.config import ContentLossConfig
    from geogan.recipes.downscaling.phases import GeneratorPhase
    from geogan.training.phases import StepContext

    assert ContentLossConfig().block_mean_weight == 0.0
    assert ContentLossConfig(block_mean_weight=0.5).block_mean_weight == 0.5
    torch.manual_seed(2)
    g = DownscalingGenerator(
        in_channels=1, filters=4, noise_channels=0, upsampling_factors=[2], conserve_mean="additive"
    )
    x = torch.randn(2, 1, 4, 4)
    y, error = g(x, None, None, return_block_error=True)
    # the constraint makes the output's block means equal the input exactly
    torch.testing.assert_close(torch.nn.functional.avg_pool2d(y, 2), x, atol=1e-5, rtol=0)
    g.conserve_mean = "none"
    raw = g(x, None, None)
    g.conserve_mean = "additive"
    torch.testing.assert_close(error, x - torch.nn.functional.avg_pool2d(raw, 2))

    mask = torch.ones(2, 1, 8, 8)
    mask[0, :, :2, :2] = 0  # one coarse pixel of sample 0 not fully valid
    batch = {
        "input": x,
        "target": torch.rand(2, 1, 8, 8),
        "constants": torch.zeros(2, 0, 8, 8),
        "mask": mask,
    }
    ctx = StepContext(
        step=0,
        repeat=0,
        rank=0,
        seed=0,
        device=torch.device("cpu"),
        autocast=contextlib.nullcontext,
        models={"generator": g},
        memory_format=torch.contiguous_format,
    )
    kw = dict(mode="det", adversarial="wgan", content_kind="mse", content_weight=1.0, kl_weight=0)
    base, _ = GeneratorPhase(members=1, **kw).loss(batch, ctx)
    loss, parts = GeneratorPhase(members=1, block_mean_weight=0.5, **kw).loss(batch, ctx)
    ok = torch.ones(2, 1, 4, 4)
    ok[0, :, 0, 0] = 0
    want = (error.abs() * ok).sum() / ok.sum()
    torch.testing.assert_close(parts["block_error"], want.detach())
    torch.testing.assert_close(loss, base + 0.5 * want)
