"""Transforms, streaming statistics and the statistics file."""

from __future__ import annotations

import json
import tracemalloc
import warnings

import numpy as np
import pytest
import torch

from geogan.config.schema import TransformConfig
from geogan.core.errors import DataError
from geogan.data.normalisation import Normalisation, StatsAccumulator, VarStats
from geogan.data.transforms import VariableTransform


def _rain(shape, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.gamma(0.6, 3.0, size=shape).astype(np.float32)
    x[rng.random(shape) < 0.5] = 0.0
    return x


@pytest.mark.parametrize(
    "cfg",
    [
        TransformConfig(log1p=True, log1p_scale=0.5, norm="zscore"),
        TransformConfig(norm="minmax"),
        TransformConfig(norm="max"),
        TransformConfig(log1p=True, norm="none"),
    ],
    ids=["log1p+zscore", "minmax", "max", "log1p+none"],
)
def test_round_trip_numpy_and_torch(cfg):
    x = _rain((4, 16, 16))
    norm = Normalisation.compute({"precip": [x]}, {"precip": cfg})
    y = norm.forward(x, "precip")
    assert y.dtype == np.float32
    np.testing.assert_allclose(norm.inverse(y, "precip"), x, rtol=1e-5, atol=1e-5)
    xt = torch.from_numpy(x)
    yt = norm.forward(xt, "precip")
    assert yt.dtype == torch.float32
    np.testing.assert_allclose(yt.numpy(), y, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(norm.inverse(yt, "precip").numpy(), x, rtol=1e-5, atol=1e-5)


def test_forward_values_match_formulas():
    x = _rain((3, 10, 10))
    cfgs = {
        "z": TransformConfig(log1p=True, log1p_scale=2.0),
        "mm": TransformConfig(norm="minmax"),
        "mx": TransformConfig(norm="max"),
    }
    norm = Normalisation.compute({k: [x] for k in cfgs}, cfgs)
    z = np.log1p(x.astype(np.float64) / 2.0)
    np.testing.assert_allclose(norm.forward(x, "z"), (z - z.mean()) / z.std(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        norm.forward(x, "mm"), (x - x.min()) / (x.max() - x.min()), rtol=1e-5
    )
    np.testing.assert_allclose(norm.forward(x, "mx"), x / x.max(), rtol=1e-5)
    assert float(norm.forward(np.float32(0.0), "mx")) == 0.0  # max keeps zero at zero


def test_variables_without_entry_use_zscore():
    x = np.arange(10, dtype=np.float32)
    norm = Normalisation.compute({"t2m": [x]})
    assert norm.transforms["t2m"].norm == "zscore" and not norm.transforms["t2m"].log1p
    np.testing.assert_allclose(norm.forward(x, "t2m"), (x - x.mean()) / x.std(), rtol=1e-5)


def test_streaming_stats_equal_numpy_on_whole_array():
    rng = np.random.default_rng(3)
    x = rng.normal(5.0, 2.0, size=(37, 20, 21)).astype(np.float32)
    x[rng.random(x.shape) < 0.3] = np.nan
    x[4] = np.nan  # an all-NaN chunk
    acc = StatsAccumulator()
    for start in range(0, 37, 5):
        acc.update(x[start : start + 5])
    s = acc.result("x")
    assert s.count == int(np.isfinite(x).sum())
    assert s.mean == pytest.approx(float(np.nanmean(x.astype(np.float64))), rel=1e-12)
    assert s.std == pytest.approx(float(np.nanstd(x.astype(np.float64))), rel=1e-10)
    assert s.min == float(np.nanmin(x)) and s.max == float(np.nanmax(x))


def test_streaming_memory_stays_flat():
    """Peak memory is one chunk's worth, whether 5 or 60 chunks are streamed."""

    def chunks(n):
        for i in range(n):
            yield np.full((8, 128, 128), float(i), dtype=np.float32)  # 0.5 MB each

    peaks = []
    for n in (5, 60):
        tracemalloc.start()
        Normalisation.compute({"v": chunks(n)})
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    chunk_bytes = 8 * 128 * 128 * 4
    assert peaks[1] < 1.5 * peaks[0] + chunk_bytes
    assert peaks[1] < 8 * chunk_bytes  # far below the 60 chunks (30 MB) streamed


def test_zero_variance_gives_std_one_with_warning():
    x = np.full((5, 8, 8), 3.0, dtype=np.float32)
    with pytest.warns(UserWarning, match="constant"):
        norm = Normalisation.compute({"lsm": [x]})
    assert norm.stats["lsm"].std == 1.0
    y = norm.forward(x, "lsm")
    assert np.isfinite(y).all() and np.all(y == 0)
    for kind in ("minmax", "max"):
        t = VariableTransform(TransformConfig(norm=kind), mean=0.0, std=1.0, min=0.0, max=0.0)
        assert np.isfinite(t.forward(np.zeros(3, dtype=np.float32))).all()


def test_all_nan_is_an_error():
    x = np.full((3, 4, 4), np.nan, dtype=np.float32)
    with pytest.raises(DataError, match="no finite values"):
        Normalisation.compute({"precip": [x]})


def test_json_round_trip_and_atomic_save(tmp_path):
    x = _rain((2, 8, 8))
    norm = Normalisation.compute(
        {"precip": [x], "orog": [x * 10]}, {"precip": TransformConfig(log1p=True, log1p_scale=0.1)}
    )
    assert Normalisation.from_json(norm.to_json()) == norm
    path = norm.save(tmp_path / "stats" / "norm.json")
    assert json.loads(path.read_text())["format"] == "geogan-normalisation"
    assert Normalisation.load(path) == norm
    assert sorted(p.name for p in path.parent.iterdir()) == ["norm.json"]  # no temporary left


def test_load_errors(tmp_path):
    with pytest.raises(DataError, match="not found; run `geogan prepare`"):
        Normalisation.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        Normalisation.load(bad)
    other = tmp_path / "other.json"
    other.write_text('{"hello": 1}')
    with pytest.raises(DataError, match="not a geogan normalisation file"):
        Normalisation.load(other)


def test_check_compatible():
    norm = Normalisation(
        {"precip": VarStats(0.0, 1.0, 0.0, 5.0, 10)}, {"precip": TransformConfig(log1p=True)}
    )
    norm.check_compatible(["precip"], {"precip": TransformConfig(log1p=True)})
    with pytest.raises(DataError, match="no entry for 'orog'"):
        norm.check_compatible(["precip", "orog"], {"precip": TransformConfig(log1p=True)})
    with pytest.raises(DataError, match="rerun prepare"):
        norm.check_compatible(["precip"], {})


def test_forward_stack_channels():
    norm = Normalisation(
        {"a": VarStats(1.0, 2.0, 0.0, 1.0, 1), "b": VarStats(-1.0, 0.5, 0.0, 1.0, 1)}
    )
    x = np.ones((3, 2, 2, 2), dtype=np.float32)
    y = norm.forward_stack(x, ["a", "b"], channel_axis=1)
    np.testing.assert_allclose(y[:, 0], 0.0)
    np.testing.assert_allclose(y[:, 1], 4.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_allclose(norm.inverse_stack(y, ["a", "b"], channel_axis=1), x)
    with pytest.raises(ValueError, match="expected 2 channels"):
        norm.forward_stack(np.ones((3, 2, 2), dtype=np.float32), ["a", "b"])
