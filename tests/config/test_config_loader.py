"""YAML config loading: defaults inheritance, overrides, error messages, round trips."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, Field

from geogan.config import (
    CONFIG_FILENAME,
    config_to_yaml,
    list_presets,
    parse_override,
    save_resolved_config,
)
from geogan.config import config_from_dict as _config_from_dict
from geogan.config import load_config as _load_config
from geogan.config import loader as loader_module
from geogan.core.errors import ConfigError
from geogan.recipes.downscaling.config import DownscalingConfig as RunConfig


# The loader is schema-agnostic; these tests exercise it with recipe 1's schema.
def load_config(path, overrides=(), schema=RunConfig, **kwargs):
    return _load_config(path, overrides, schema, **kwargs)


def config_from_dict(data, schema=RunConfig, **kwargs):
    return _config_from_dict(data, schema, **kwargs)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def config_error(*args, **kwargs) -> str:
    """Run load_config expecting a ConfigError; return its (one-line) message."""
    with pytest.raises(ConfigError) as info:
        load_config(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


# --------------------------------------------------------------------------- defaults


def test_defaults_two_levels_override_order_and_lists_replaced(tmp_path):
    write(
        tmp_path / "grand.yaml",
        """
        name: grand
        seed: 1
        train: {steps: 10, batch_size: 2, critic_steps: 3}
        evaluate: {thresholds: [1.0, 2.0, 3.0], fss_scales: [1, 2]}
        """,
    )
    write(
        tmp_path / "parent.yaml",
        """
        defaults: [grand.yaml]
        name: parent
        train: {steps: 20}
        evaluate: {thresholds: [4.0]}
        """,
    )
    cfg_path = write(
        tmp_path / "child.yaml",
        """
        defaults: [parent.yaml]
        train: {batch_size: 16}
        """,
    )
    cfg = load_config(cfg_path)
    assert cfg.name == "parent"  # parent over grand
    assert cfg.seed == 1  # only in grand
    assert cfg.train.steps == 20  # parent over grand, deep merge keeps the rest
    assert cfg.train.batch_size == 16  # child over both
    assert cfg.train.critic_steps == 3
    assert cfg.evaluate.thresholds == [4.0]  # replaced, not [1, 2, 3, 4]
    assert cfg.evaluate.fss_scales == [1, 2]


def test_several_defaults_merge_in_order_then_own_keys(tmp_path):
    write(tmp_path / "a.yaml", "name: a\nseed: 1\ntrain: {steps: 5}\n")
    write(tmp_path / "b.yaml", "name: b\ntrain: {batch_size: 3}\n")
    cfg = load_config(write(tmp_path / "c.yaml", "defaults: [a, b]\nseed: 9\n"))
    assert (cfg.name, cfg.seed, cfg.train.steps, cfg.train.batch_size) == ("b", 9, 5, 3)
    # A single default may be written as a string.
    assert load_config(write(tmp_path / "d.yaml", "defaults: a\n")).name == "a"


def test_defaults_paths_are_relative_to_the_naming_file(tmp_path, monkeypatch):
    write(tmp_path / "common" / "base.yaml", "train: {steps: 7}\n")
    write(tmp_path / "common" / "more" / "deep.yml", "defaults: [../base.yaml]\nseed: 3\n")
    cfg_path = write(tmp_path / "exp" / "run.yaml", "defaults: [../common/more/deep]\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_config(cfg_path)
    assert (cfg.train.steps, cfg.seed) == (7, 3)


def test_diamond_defaults_are_not_a_cycle(tmp_path):
    write(tmp_path / "root.yaml", "seed: 1\n")
    write(tmp_path / "left.yaml", "defaults: [root]\nname: left\n")
    write(tmp_path / "right.yaml", "defaults: [root]\nrun_root: right\n")
    cfg = load_config(write(tmp_path / "top.yaml", "defaults: [left, right]\n"))
    assert (cfg.seed, cfg.name, cfg.run_root) == (1, "left", "right")


def test_defaults_cycle_is_a_clear_error(tmp_path):
    write(tmp_path / "a.yaml", "defaults: [b.yaml]\n")
    write(tmp_path / "b.yaml", "defaults: [a.yaml]\n")
    message = config_error(tmp_path / "a.yaml")
    assert "cycle" in message and "a.yaml" in message and "b.yaml" in message
    write(tmp_path / "self.yaml", "defaults: [self]\n")
    assert "cycle" in config_error(tmp_path / "self.yaml")


def test_missing_or_malformed_defaults(tmp_path):
    message = config_error(write(tmp_path / "a.yaml", "defaults: [nothere]\n"))
    assert "'nothere'" in message and "a.yaml" in message
    message = config_error(write(tmp_path / "b.yaml", "defaults: {x: 1}\n"))
    assert "'defaults'" in message and "list" in message
    message = config_error(write(tmp_path / "c.yaml", "defaults: [3]\n"))
    assert "defaults entry 3" in message


def test_packaged_style_presets(tmp_path):
    presets = tmp_path / "presets"
    write(presets / "downscaling" / "base.yaml", "recipe: downscaling\ntrain: {steps: 11}\n")
    write(presets / "downscaling" / "tiny.yaml", "defaults: [base]\ntrain: {batch_size: 1}\n")
    assert list_presets(presets) == ["downscaling/base", "downscaling/tiny"]
    cfg_path = write(tmp_path / "run.yaml", "defaults: [downscaling/tiny]\nseed: 4\n")
    cfg = load_config(cfg_path, preset_dir=presets)
    assert (cfg.train.steps, cfg.train.batch_size, cfg.seed) == (11, 1, 4)
    # The top-level path may itself name a preset.
    assert load_config("downscaling/tiny", preset_dir=presets).train.steps == 11
    # An unknown preset suggests the closest one.
    message = config_error(
        write(tmp_path / "bad.yaml", "defaults: [downscaling/tinny]\n"), preset_dir=presets
    )
    assert "did you mean preset 'downscaling/tiny'?" in message


def test_presets_folder_may_be_absent(tmp_path, monkeypatch):
    monkeypatch.setattr(loader_module, "packaged_presets_dir", lambda: None)
    assert list_presets() == []
    message = config_error(write(tmp_path / "a.yaml", "defaults: [downscaling/base]\n"))
    assert "'downscaling/base'" in message and "not found" in message
    assert list_presets(tmp_path / "no-such-folder") == []


# --------------------------------------------------------------------------- overrides


def test_overrides_are_typed(tmp_path):
    cfg_path = write(tmp_path / "c.yaml", "train: {steps: 5, time_limit_minutes: 3.0}\n")
    cfg = load_config(
        cfg_path,
        [
            "train.steps=2000",
            "train.optimizers.generator.lr=1e-4",
            "train.kl_weight=0.5",
            "model.upsampling_factors=[2,2]",
            "train.compile=true",
            "train.time_limit_minutes=null",
            "name=my run",
            "data.transforms.precip.log1p=true",  # creates data.transforms.precip
            "data.transforms.precip.norm=max",
        ],
    )
    assert cfg.train.steps == 2000 and isinstance(cfg.train.steps, int)
    assert cfg.train.optimizers["generator"].lr == pytest.approx(1e-4)
    assert cfg.train.kl_weight == 0.5
    assert cfg.model.upsampling_factors == [2, 2]
    assert cfg.train.compile is True
    assert cfg.train.time_limit_minutes is None
    assert cfg.name == "my run"
    assert cfg.data.transforms["precip"].log1p is True
    assert cfg.data.transforms["precip"].norm == "max"


def test_parse_override_values():
    assert parse_override("a.b.c=2000") == (("a", "b", "c"), 2000)
    assert parse_override("x=1.5") == (("x",), 1.5)
    assert parse_override("x=1e-3") == (("x",), 1e-3)
    assert parse_override("x=[1, 2]") == (("x",), [1, 2])
    assert parse_override("x=false") == (("x",), False)
    assert parse_override("x=null") == (("x",), None)
    assert parse_override("x=") == (("x",), "")
    assert parse_override("x=a=b") == (("x",), "a=b")
    assert parse_override(" x.y = 'quoted: yes' ") == (("x", "y"), "quoted: yes")


def test_override_later_wins_and_list_items(tmp_path):
    cfg = load_config(
        None,
        ["seed=1", "seed=2", "evaluate.thresholds=[1, 2]", "evaluate.thresholds.1=5"],
    )
    assert cfg.seed == 2
    assert cfg.evaluate.thresholds == [1.0, 5.0]


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("train.steps", "has no '='"),
        ("=5", "bad key"),
        ("train..steps=5", "bad key"),
        ("defaults=[a]", "'defaults' cannot be overridden"),
        ("name=[1", "cannot read value '[1' as YAML"),
        ("name=2001-13-45", "cannot read value '2001-13-45' as YAML"),
        ("name=&a [*a]", "cannot read value '&a [*a]' as YAML"),
        ("train.steps.x=1", "train.steps is 1000, not a section"),
        ("evaluate.thresholds.7=1", "list of 3 items"),
    ],
)
def test_bad_overrides(tmp_path, override, expected):
    cfg_path = write(
        tmp_path / "c.yaml", "train: {steps: 1000}\nevaluate: {thresholds: [1, 2, 3]}\n"
    )
    assert expected in config_error(cfg_path, [override])


def test_yaml_aliases_are_not_shared_by_overrides(tmp_path):
    cfg_path = write(
        tmp_path / "c.yaml",
        """
        train:
          optimizers:
            generator: &opt {lr: 0.001}
            critic: *opt
        """,
    )
    cfg = load_config(cfg_path, ["train.optimizers.generator.lr=0.5"])
    assert cfg.train.optimizers["generator"].lr == 0.5
    assert cfg.train.optimizers["critic"].lr == 0.001


# --------------------------------------------------------------------------- unknown keys


def test_misspelt_top_level_key(tmp_path):
    message = config_error(write(tmp_path / "cfg.yaml", "trian: {steps: 5}\n"))
    assert message.startswith("unknown key 'trian' in ") and "cfg.yaml" in message
    assert message.endswith("; did you mean 'train'?")
    message = config_error(write(tmp_path / "d.yaml", "default: [x]\n"))
    assert "did you mean 'defaults'?" in message


def test_misspelt_nested_key_names_closest_and_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "cfg.yaml", "train:\n  stpes: 5\n")
    message = config_error("cfg.yaml")
    assert message == "unknown key 'train.stpes' in cfg.yaml; did you mean 'train.steps'?"


def test_misspelt_key_in_inherited_file_names_that_file(tmp_path):
    write(tmp_path / "base.yaml", "train:\n  batch_sise: 5\n")
    message = config_error(write(tmp_path / "top.yaml", "defaults: [base]\n"))
    assert "unknown key 'train.batch_sise' in" in message and "base.yaml" in message
    assert "did you mean 'train.batch_size'?" in message


def test_misspelt_key_inside_dict_valued_section(tmp_path):
    cfg_path = write(
        tmp_path / "cfg.yaml",
        """
        data:
          transforms:
            precip: {log1pp: true}
        """,
    )
    message = config_error(cfg_path)
    assert "unknown key 'data.transforms.precip.log1pp'" in message
    assert "did you mean 'data.transforms.precip.log1p'?" in message


def test_misspelt_key_in_override(tmp_path):
    cfg_path = write(tmp_path / "cfg.yaml", "seed: 1\n")
    message = config_error(cfg_path, ["train.stpes=5"])
    assert message == (
        "unknown key 'train.stpes' in override 'train.stpes=5'; did you mean 'train.steps'?"
    )
    message = config_error(None, ["data.transforms.rain.nrom=max"])
    assert "did you mean 'data.transforms.rain.norm'?" in message


def test_key_at_the_wrong_level_points_to_its_section(tmp_path):
    message = config_error(write(tmp_path / "cfg.yaml", "steps: 5\n"))
    assert message.startswith("unknown key 'steps' in ") and "cfg.yaml" in message
    assert message.endswith("; did you mean 'train.steps'? ('steps' belongs under 'train')")
    message = config_error(None, ["data.weights=[1, 1, 1, 1]"])
    assert "did you mean 'data.sampling.weights'?" in message


def test_unknown_key_without_close_match_lists_valid_keys(tmp_path):
    message = config_error(write(tmp_path / "cfg.yaml", "train: {zzzzzz: 1}\n"))
    assert "unknown key 'train.zzzzzz'" in message and "valid keys under 'train'" in message
    assert "steps" in message and "batch_size" in message


# --------------------------------------------------------------------------- values


def test_wrong_type_message(tmp_path):
    message = config_error(write(tmp_path / "cfg.yaml", "train: {batch_size: big}\n"))
    assert message.startswith("train.batch_size: expected an integer, got 'big'")
    assert "cfg.yaml" in message


def test_negative_size_message(tmp_path):
    message = config_error(write(tmp_path / "cfg.yaml", "train: {steps: -5}\n"))
    assert message.startswith("train.steps: must be > 0 (got -5)")
    message = config_error(None, ["data.num_workers=-1"])
    assert message.startswith("data.num_workers: must be >= 0 (got -1)")


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("train.compile=maybe", "train.compile: must be one of"),
        (
            "train.optimizers.generator.lr=fast",
            "train.optimizers.generator.lr: expected a number, got 'fast'",
        ),
        ("train.steps=2.5", "train.steps: expected an integer, got 2.5"),
        ("model.upsampling_factors=3", "model.upsampling_factors: expected a list, got 3"),
        ("model.upsampling_factors=[2,0]", "model.upsampling_factors[1]: must be > 0 (got 0)"),
        ("train=5", "train: expected a section (a mapping of keys), got 5"),
        ("name=no", "name: expected a string, got false (quote it in YAML"),
        ("name=2020-01-01", "name: expected a string, got datetime.date(2020, 1, 1) (quote it"),
        ("train.ema.decay=1", "train.ema.decay: must be < 1.0 (got 1)"),
        ("evaluate.pool_windows=[[1,2,3]]", "evaluate.pool_windows[0]: expected at most 2 items"),
        (
            "train.optimizers.generator.betas=[0.5]",
            "train.optimizers.generator.betas: item [1] is missing",
        ),
        ("device=gpu", "device must be 'auto', 'cpu' or 'cuda[:N]' (got 'gpu')"),
    ],
)
def test_value_errors_are_one_clear_line(override, expected):
    message = config_error(None, [override])
    assert message.startswith(expected), message
    assert f"in override {override!r}" in message


def test_literal_error_suggests_closest_choice():
    message = config_error(None, ["train.adversarial_loss=hinje"])
    assert message.startswith("train.adversarial_loss: must be one of 'wgan', 'hinge'")
    assert "did you mean 'hinge'?" in message


def test_patch_size_not_divisible_by_factor(tmp_path):
    cfg_path = write(tmp_path / "cfg.yaml", "data: {factor: 4, patch_size: 66}\n")
    message = config_error(cfg_path)
    assert message.startswith("data.patch_size (66) must be divisible by data.factor (4)")
    assert "try 64" in message


def test_model_validator_error_gets_its_full_path():
    message = config_error(None, ["data.sampling.weights=[1.0]"])
    assert message.startswith("data.sampling.weights needs 4 entries")


def test_several_errors_report_first_and_count(tmp_path):
    cfg_path = write(tmp_path / "cfg.yaml", "train: {steps: -1, batch_size: x, critic_steps: 0}\n")
    message = config_error(cfg_path)
    assert message.startswith("train.steps: must be > 0 (got -1)")
    assert message.endswith("(and 2 other errors)")
    message = config_error(None, ["train.steps=0", "seed=x"])
    assert message.endswith("(and 1 other error)")


# --------------------------------------------------------------------------- files


def test_yaml_syntax_error_reports_line(tmp_path):
    cfg_path = write(
        tmp_path / "cfg.yaml",
        """
        seed: 1
        train:
          steps: 5
           batch_size: 3
        """,
    )
    message = config_error(cfg_path)
    assert "YAML syntax error in" in message and "cfg.yaml" in message
    assert "line 4" in message


def test_file_problems(tmp_path):
    assert "not found" in config_error(tmp_path / "missing.yaml")
    assert "is a folder" in config_error(tmp_path)
    message = config_error(write(tmp_path / "list.yaml", "- 1\n- 2\n"))
    assert "mapping" in message and "list" in message
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00bad")
    assert "UTF-8" in config_error(tmp_path / "bin.yaml")
    message = config_error(write(tmp_path / "date.yaml", "name: 2001-13-45\n"))
    assert "date.yaml" in message
    message = config_error(write(tmp_path / "loop.yaml", "evaluate: {thresholds: &a [*a]}\n"))
    assert "recursive alias" in message


def test_empty_file_and_no_file_give_defaults(tmp_path):
    assert load_config(write(tmp_path / "empty.yaml", "# nothing\n")) == RunConfig()
    assert load_config(None) == RunConfig()


# --------------------------------------------------------------------------- round trips


def test_resolved_config_round_trip(tmp_path):
    write(tmp_path / "base.yaml", "data: {factor: 2, patch_size: 32}\n")
    cfg_path = write(
        tmp_path / "cfg.yaml",
        """
        defaults: [base]
        name: '1e5'
        data:
          transforms:
            precip: {log1p: true, log1p_scale: 0.5, norm: max}
        evaluate: {pool_windows: [[2, 1], [8, 2]]}
        """,
    )
    cfg = load_config(
        cfg_path, ["train.optimizers.generator.lr=3e-5", "model.upsampling_factors=[2]"]
    )
    text = config_to_yaml(cfg)
    again = load_config(write(tmp_path / "resolved.yaml", text))
    assert again == cfg
    assert again.name == "1e5"  # a string that looks like a float stays a string
    assert again.evaluate.pool_windows == [(2, 1), (8, 2)]

    run_dir = tmp_path / "runs" / "00001"
    written = save_resolved_config(cfg, run_dir)
    assert written == run_dir / CONFIG_FILENAME
    assert load_config(written) == cfg
    assert sorted(p.name for p in run_dir.iterdir()) == [CONFIG_FILENAME]  # no temporaries left


def test_config_from_dict(tmp_path):
    cfg = load_config(None, ["train.steps=7", "data.transforms.t2m.norm=minmax"])
    stored = json.loads(json.dumps(cfg.model_dump(mode="json")))
    assert config_from_dict(stored) == cfg
    with pytest.raises(ConfigError, match=r"did you mean 'train\.steps'\?") as info:
        config_from_dict({"train": {"stpes": 1}}, source="checkpoint run.safetensors")
    assert "in checkpoint run.safetensors" in str(info.value)
    with pytest.raises(ConfigError, match="must be a mapping"):
        config_from_dict(["not", "a", "mapping"])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="keys must be strings"):
        config_from_dict({5: 1})


def test_custom_schema(tmp_path):
    class Inner(BaseModel):
        model_config = ConfigDict(extra="forbid")
        width: int = Field(3, gt=0)

    class Tiny(BaseModel):
        model_config = ConfigDict(extra="forbid")
        inner: Inner = Field(default_factory=Inner)
        tags: dict[str, Inner] = Field(default_factory=dict)

    cfg = load_config(write(tmp_path / "t.yaml", "inner: {width: 5}\n"), ["tags.a.width=2"], Tiny)
    assert isinstance(cfg, Tiny) and cfg.inner.width == 5 and cfg.tags["a"].width == 2
    message = config_error(tmp_path / "t.yaml", ["inner.widht=1"], Tiny)
    assert "did you mean 'inner.width'?" in message
    with pytest.raises(ConfigError, match="did you mean 'tags.b.width'"):
        config_from_dict({"tags": {"b": {"wdth": 1}}}, Tiny)
