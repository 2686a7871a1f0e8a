"""Engine behaviour every recipe relies on: presets by name, the recipe key, YAML homes for
anchors, per-axis padding, one unwrap for wrappers, migrated legacy keys."""

from __future__ import annotations

import textwrap

import pytest
import torch

from geogan.core.errors import ConfigError
from geogan.core.modules import unwrap
from geogan.recipes.config import load_run_config, run_config_from_dict


def test_packaged_presets_are_found_by_recipe_and_name():
    cfg = load_run_config("downscaling/radar_knmi_x8", ["train.steps=5"])
    assert cfg.recipe == "downscaling" and cfg.name == "knmi_x8" and cfg.train.steps == 5
    assert cfg.data.factor == 8  # from radar_base.yaml, the preset's own defaults
    with pytest.raises(ConfigError, match="radar_knmi_x8"):
        load_run_config("downscaling/radar_knmi_x9")


def test_the_recipe_key_selects_the_schema():
    with pytest.raises(ConfigError, match="recipe"):
        run_config_from_dict({"train": {"steps": 3}})
    with pytest.raises(ConfigError, match="did you mean 'downscaling'"):
        run_config_from_dict({"recipe": "downscalling"})
    with pytest.raises(ConfigError, match="train.critic_stps"):
        run_config_from_dict({"recipe": "downscaling", "train": {"critic_stps": 3}})


def test_x_keys_are_homes_for_yaml_anchors(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text(
        textwrap.dedent(
            """
            recipe: downscaling
            x-optim: &optim {lr: 3.0e-4, betas: [0.0, 0.99]}
            train:
              optimizers:
                generator: *optim
                critic: {<<: *optim, lr: 1.0e-4}
            """
        )
    )
    cfg = load_run_config(path)
    assert cfg.train.optimizers["generator"].lr == pytest.approx(3e-4)
    assert cfg.train.optimizers["critic"].lr == pytest.approx(1e-4)
    assert cfg.train.optimizers["critic"].betas == (0.0, 0.99)
    assert "x-optim" not in cfg.model_dump()


def test_legacy_optimizer_keys_are_migrated(caplog):
    cfg = run_config_from_dict(
        {"recipe": "downscaling", "train": {"gen_optim": {"lr": 5e-4}, "disc_optim": {"lr": 6e-4}}}
    )
    assert cfg.train.optimizers["generator"].lr == pytest.approx(5e-4)
    assert cfg.train.optimizers["critic"].lr == pytest.approx(6e-4)
    assert "train.gen_optim is now train.optimizers.generator" in caplog.text


def test_padding_mode_per_axis_reaches_the_model():
    from geogan.recipes.downscaling.build import model_kwargs

    cfg = run_config_from_dict(
        {"recipe": "downscaling", "model": {"padding_mode": ["reflect", "circular"]}}
    )

    class Data:
        input_vars, target_vars, constant_vars = ["tp"], ["tp"], []

    kw = model_kwargs(cfg, Data())
    assert kw["generator"]["padding_mode"] == ["reflect", "circular"]
    with pytest.raises(ConfigError, match="one mode per spatial axis"):
        run_config_from_dict({"recipe": "downscaling", "model": {"padding_mode": ["reflect"] * 3}})
    from geogan.models.downscaling import DownscalingGenerator

    torch.manual_seed(0)
    g = DownscalingGenerator(**kw["generator"]).eval()
    x = torch.rand(1, 1, 6, 6)
    noise = torch.rand(1, g.noise_channels, 6, 6)
    with torch.no_grad():
        out = g(x, None, noise)
        rolled = g(x.roll(2, -1), None, noise.roll(2, -1))
    # periodic in x: rolling the input rolls the output (factor 4); not so in y (reflect)
    torch.testing.assert_close(rolled, out.roll(8, -1), rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        rolled_y = g(x.roll(2, -2), None, noise.roll(2, -2))
    assert not torch.allclose(rolled_y, out.roll(8, -2), atol=1e-4)


def test_one_unwrap_for_every_wrapper():
    inner = torch.nn.Linear(2, 2)
    compiled = torch.compile(inner, backend="eager")
    assert unwrap(compiled) is inner
    data_parallel = torch.nn.DataParallel(compiled)
    assert unwrap(data_parallel) is inner
    assert unwrap(inner) is inner
