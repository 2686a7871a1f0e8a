"""Seed-004 transforms (fitted, inverted exactly) and the ensemble data sources."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from sg_helpers import write_ensemble

from geogan.core.errors import DataError
from geogan.recipes.stylegan.config import StyleGANData, TransformSpec
from geogan.recipes.stylegan.data import load_samples, select_samples, training_rows
from geogan.recipes.stylegan.transforms import FieldTransform, blur_map, ensemble_stats


def _ensembles(rng, n=3, m=5, shape=(2, 6, 8), rain=False):
    out = []
    for _ in range(n):
        x = rng.normal(10, 2, size=(m, *shape))
        if rain:
            x[:, 0] = rng.gamma(0.5, 2.0, size=(m, *shape[1:]))
        out.append(x.astype(np.float32))
    return out


@pytest.mark.parametrize(
    "spec",
    [
        TransformSpec(norm="mean"),
        TransformSpec(norm="minmax", per_pixel=True, blur_iterations=2),
        TransformSpec(norm="mean", per_pixel=True),
        TransformSpec(norm="none"),
        TransformSpec(norm="minmax"),
    ],
)
@pytest.mark.parametrize("anomaly", ["none", "mean", "standardised"])
def test_forward_inverse_round_trip(spec, anomaly):
    rng = np.random.default_rng(0)
    ens = _ensembles(rng)
    t = FieldTransform.fit(["a", "b"], {"a": spec, "b": spec}, ens, anomaly=anomaly, anomaly_blur=1)
    for members in ens:
        stats = t.group_stats(members, blur=1, floor=0.05, periodic_x=False)
        y = t.forward(members, stats)
        np.testing.assert_allclose(t.inverse(y, stats), members, rtol=1e-5, atol=1e-4)
    if spec.norm == "mean" and not spec.per_pixel:
        y = np.concatenate(
            [t.forward(e, t.group_stats(e, blur=1, floor=0.05, periodic_x=False)) for e in ens]
        )
        assert abs(y.mean()) < 1e-5 and y.std() == pytest.approx(1.0, rel=1e-4)
    if spec.norm == "minmax" and not spec.per_pixel:
        y = np.concatenate(
            [t.forward(e, t.group_stats(e, blur=1, floor=0.05, periodic_x=False)) for e in ens]
        )
        assert np.abs(y).max() == pytest.approx(0.95, rel=1e-5)  # seed 004's 1 / 0.95 margin


def test_rain_log_iterations_noise_and_symmetrisation():
    rng = np.random.default_rng(1)
    ens = _ensembles(rng, rain=True)
    rain = TransformSpec(log_iterations=2, noise_below=0.05, symmetrize=True, norm="mean")
    t = FieldTransform.fit(["rr", "t"], {"rr": rain, "t": TransformSpec()}, ens)
    x = ens[0]
    # deterministic path: log applied twice, exact inverse where rain is above the threshold
    y = t.forward(x)
    back = t.inverse(y)
    wet = np.log1p(np.log1p(x[:, 0])) >= 0.05
    np.testing.assert_allclose(back[:, 0][wet], x[:, 0][wet], rtol=1e-5)
    assert (back[:, 0][~wet] == 0).all()
    # training draws: some samples flipped, noise below the threshold, all recovered by |x|
    ys = [t.forward(x[:1], rng=np.random.default_rng(s)) for s in range(20)]
    signs = {bool((yy[0, 0] * y[0, 0] < 0).mean() > 0.5) for yy in ys}
    assert signs == {True, False}
    # statistics of a symmetrised channel: mean zero
    assert t._stats["rr"]["offset"] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(DataError, match="log"):
        FieldTransform.fit(["rr"], {"rr": rain}, [np.full((2, 1, 4, 4), -2.0)])


def test_ensemble_stats_and_blur():
    rng = np.random.default_rng(2)
    m = rng.normal(size=(6, 1, 8, 8))
    mean, sd = ensemble_stats(m, True, 0, 0.0)
    np.testing.assert_allclose(mean, m.mean(0), rtol=1e-6)
    np.testing.assert_allclose(sd, m.std(0), rtol=1e-5)
    a = (m - mean) / sd
    assert np.mean(a**2) == pytest.approx(1.0, rel=1e-5)
    spike = np.zeros((5, 5))
    spike[2, 2] = 16.0
    b = blur_map(spike, 1)
    assert b.sum() == pytest.approx(16.0) and b[2, 2] == pytest.approx(4.0)
    np.testing.assert_allclose(blur_map(np.ones((3, 4)), 3, periodic_x=True), 1.0)
    with pytest.raises(DataError, match="at least 2"):
        ensemble_stats(m[:1], True, 0, 0.0)


def test_netcdf_source_levels_members_crop_and_selection(tmp_path):
    data = write_ensemble(tmp_path, members=4)
    with xr.open_dataset(data) as ds:
        stacked = xr.concat([ds, ds + 1], dim="level").assign_coords(level=[850.0, 500.0])
        stacked = stacked.transpose("number", "time", "level", "latitude", "longitude")
        stacked.to_netcdf(tmp_path / "levels.nc")
    cfg = StyleGANData(
        source={
            "path": str(tmp_path / "levels.nc"),
            "variables": ["u"],
            "level_dim": "level",
            "levels": [500, 850],
            "members": [1, 3],
            "crop": [1, 7, 2, 14],
        },
        dates={"end": "2021-06-01T12:00"},
    )
    samples = load_samples(cfg)
    assert samples.variables == ["u500", "u850"] and samples.shape == (2, 6, 12)
    assert len(samples) == 4 * 2
    with xr.open_dataset(tmp_path / "levels.nc") as ds:
        want = ds["u"].isel(number=3, time=1, level=1).values[1:7, 2:14]
    row = samples.frame.index[
        (samples.frame["Member"] == 3) & (samples.frame["Date"] == "2021-06-01T12:00")
    ][0]
    np.testing.assert_allclose(samples.read(row)[0], want)  # u500 is level index 1
    assert len(training_rows(samples, cfg)) == 4  # two dates x two members
    test = select_samples(samples, cfg, times="test", members=[3])
    assert sorted(set(test.frame["Date"].astype(str))) == [
        "2021-06-02 00:00:00",
        "2021-06-02 12:00:00",
    ]
    assert samples.coords["y"][0] == "latitude" and len(samples.coords["x"][1]) == 12
    for bad, match in [
        ({"levels": [700]}, "not 700"),
        ({"members": [9]}, r"not \[9\]"),
        ({"variables": ["uu"]}, "did you mean 'u'"),
        ({"crop": [0, 9, 0, 16]}, "outside"),
    ]:
        src = {
            "path": str(tmp_path / "levels.nc"),
            "variables": ["u"],
            "level_dim": "level",
            "levels": [500],
            **bad,
        }
        with pytest.raises(DataError, match=match):
            load_samples(StyleGANData(source=src))
