"""Property tests: junk configs give a ConfigError (or a valid config), never anything else."""

from __future__ import annotations

import itertools
import os

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from geogan.config import config_from_dict as _config_from_dict
from geogan.config import load_config as _load_config
from geogan.core.errors import ConfigError
from geogan.recipes.downscaling.config import DownscalingConfig as RunConfig


def load_config(path, overrides=(), schema=RunConfig, **kwargs):
    return _load_config(path, overrides, schema, **kwargs)


def config_from_dict(data, schema=RunConfig, **kwargs):
    return _config_from_dict(data, schema, **kwargs)


def _field_names(model: type[BaseModel], seen: set | None = None) -> set[str]:
    """Every field name in the schema, so that junk often hits real sections."""
    names: set[str] = set()
    for name, field in model.model_fields.items():
        names.add(name)
        for tp in [field.annotation, *getattr(field.annotation, "__args__", ())]:
            if isinstance(tp, type) and issubclass(tp, BaseModel):
                names |= _field_names(tp)
    return names


KEYS = sorted(_field_names(RunConfig) | {"defaults", "precip", "log1pp", "stpes"})

text_keys = st.one_of(st.sampled_from(KEYS), st.text(max_size=8))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["zscore", "wgan", "cpu", "cuda:0", "2", "[1, 2]", "1e-3", "yes"]),
)
junk = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(text_keys, children, max_size=4),
    ),
    max_leaves=20,
)
configs = st.dictionaries(text_keys, junk, max_size=6)
configs_any_keys = st.dictionaries(
    st.one_of(text_keys, st.integers(), st.none(), st.booleans()), junk, max_size=6
)

# YAML values that trip parsers: bad dates, aliases, tags, unclosed brackets, odd numbers.
TRICKY = [
    "2001-13-45",
    "2020-01-01",
    "2020-01-01 10:00:00",
    "&a [*a]",
    "*undefined",
    "!!python/object:os.system",
    "!!binary abc",
    "{a: [",
    ".inf",
    "-.nan",
    "0x1F",
    "1_000",
    "1e400",
    "~",
    "'unterminated",
    "[[[[[[[[[[1]]]]]]]]]]",
]
tricky = st.one_of(st.sampled_from(TRICKY), st.text(max_size=12))

# GEOGAN_FUZZ_EXAMPLES=5000 runs a longer search locally; the default keeps the suite fast.
_FUZZ = settings(
    max_examples=int(os.environ.get("GEOGAN_FUZZ_EXAMPLES", 200)),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
_counter = itertools.count()


def _check(call) -> None:
    try:
        cfg = call()
    except ConfigError as exc:
        message = str(exc)
        assert message and "\n" not in message
    else:
        assert isinstance(cfg, RunConfig)


@_FUZZ
@given(configs_any_keys)
def test_config_from_dict_only_raises_config_error(data):
    _check(lambda: config_from_dict(data))


@_FUZZ
@given(configs)
def test_loader_on_junk_files_only_raises_config_error(tmp_path, data):
    path = tmp_path / f"junk{next(_counter)}.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    _check(lambda: load_config(path))


yaml_lines = st.lists(
    st.builds(
        lambda indent, key, value: f"{' ' * indent}{key}: {value}",
        st.sampled_from([0, 0, 2, 4]),
        st.sampled_from(KEYS),
        tricky,
    ),
    max_size=6,
).map("\n".join)


@_FUZZ
@given(st.one_of(st.text(max_size=80), yaml_lines))
def test_loader_on_junk_text_only_raises_config_error(tmp_path, text):
    path = tmp_path / f"text{next(_counter)}.yaml"
    path.write_text(text, encoding="utf-8")
    _check(lambda: load_config(path))


dotted = st.lists(text_keys, min_size=1, max_size=4).map(".".join)
overrides = st.lists(
    st.one_of(
        st.builds(lambda k, v: f"{k}={v}", dotted, tricky),
        st.builds(lambda k, v: f"{k}={yaml.safe_dump(v, default_flow_style=True)}", dotted, junk),
        st.text(max_size=20),
    ),
    max_size=4,
)


@_FUZZ
@given(overrides)
def test_junk_overrides_only_raise_config_error(overrides):
    _check(lambda: load_config(None, overrides))
