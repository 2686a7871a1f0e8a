"""Slab writer (NetCDF/Zarr, any order, atomic), the divergence and spectrum-band metrics,
and the periodic interpolation baselines."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from geogan.core.errors import DataError, OutputExistsError
from geogan.core.registry import METRICS
from geogan.evaluation.baselines import interpolate
from geogan.recipes.volume.evaluate import interpolate_volume
from geogan.recipes.volume.metrics import DivergenceStats, SpectrumBand, divergence
from geogan.recipes.volume.writer import VolumeWriter


@pytest.mark.parametrize("fmt,suffix", [("netcdf", ".nc"), ("zarr", ".zarr")])
def test_writer_assembles_slabs_in_any_order(tmp_path, fmt, suffix):
    rng = np.random.default_rng(0)
    full = rng.standard_normal((2, 3, 2, 10, 4, 5)).astype(np.float32)  # [M, S, C, D, H, W]
    path = tmp_path / f"out{suffix}"
    coords = {
        "z": xr.Variable("z", np.arange(10.0)),
        "lat": xr.Variable(("y", "x"), np.ones((4, 5))),
    }
    w = VolumeWriter(
        path,
        fmt,
        ["a", "b"],
        {"a": "K", "b": "m s-1"},
        2,
        "face",
        [4, 5, 6],
        ("z", "y", "x"),
        (10, 4, 5),
        coords=coords,
        attrs={"seed": 3, "cfg": {"k": 1}},
        chunk=4,
    )
    pieces = [(0, 3), (7, 10), (3, 7)]
    for m in range(2):
        for s in (2, 0, 1):
            for a, b in pieces:
                w.write(m, s, a, full[m, s, :, a:b])
    assert not path.exists()  # nothing under the final name until close
    w.close()
    ds = xr.open_dataset(path, engine="zarr" if fmt == "zarr" else None)
    assert ds["a"].dims == ("member", "face", "z", "y", "x")
    np.testing.assert_array_equal(ds["face"].values, [4, 5, 6])
    np.testing.assert_array_equal(ds["b"].values, full[:, :, 1])
    assert ds["a"].attrs["units"] == "K" and ds.attrs["seed"] == 3 and "lat" in ds.coords
    ds.close()
    with pytest.raises(OutputExistsError):
        VolumeWriter(path, fmt, ["a"], {}, 1, "face", [0], ("z", "y", "x"), (2, 2, 2))


def test_an_incomplete_volume_leaves_nothing(tmp_path):
    path = tmp_path / "out.nc"
    w = VolumeWriter(
        path, "netcdf", ["a"], {}, 1, "sample", [0], ("z", "y", "x"), (4, 2, 2), chunk=2
    )
    w.write(0, 0, 0, np.zeros((1, 2, 2, 2)))
    with pytest.raises(DataError, match="never completely written"):
        w.close()
    assert not path.exists() and list(tmp_path.iterdir()) == []


def test_divergence_against_an_analytic_field():
    z, y, x = np.meshgrid(*[np.arange(8.0)] * 3, indexing="ij")
    # u = 2x, v = -y, w = 3z: div = 2 - 1 + 3 = 4 everywhere (exact for central differences)
    d = divergence([2 * x, -y, 3 * z], axes=(-1, -2, -3), periodic=(False,) * 3)
    np.testing.assert_allclose(d, 4.0)
    m = DivergenceStats(axes=(-1, -2, -3), periodic=(False,) * 3)
    truth = np.stack([2 * x, -y, 3 * z])[None]
    m.update(truth, np.stack([truth, 0.5 * truth]))
    out = m.finalize()
    assert out["mean_abs_div_truth"] == pytest.approx(4.0)
    assert out["mean_abs_div"] == pytest.approx(3.0) and out["div_ratio"] == pytest.approx(0.75)
    assert METRICS.get("divergence") is DivergenceStats
    # periodic: a sine wave's central difference is exact up to sin(k)/k
    k = 2 * np.pi / 8
    u = np.sin(k * x)
    dp = divergence([u, 0 * u, 0 * u], (-1, -2, -3), (True,) * 3)
    np.testing.assert_allclose(dp, np.sin(k) * np.cos(k * x), atol=1e-12)


def test_spectrum_band_summarises_the_ratio_up_to_nyquist():
    rng = np.random.default_rng(1)
    truth = rng.standard_normal((2, 16, 16, 16))
    m = SpectrumBand(dims=3)
    m.update(truth, np.stack([truth * 1.02, truth * 0.99]))
    out = m.finalize()
    assert 0.97 < out["ratio_min"] <= out["ratio_max"] < 1.05
    assert out["share_in_band"] == 1.0
    smooth = SpectrumBand(dims=3)
    smooth.update(truth, truth * 0 + truth.mean())
    assert smooth.finalize()["ratio_max"] < 1e-6


def test_periodic_interpolation_wraps_and_matches_inside():
    rng = np.random.default_rng(2)
    coarse = rng.standard_normal((2, 6, 5, 8))
    per = interpolate_volume(coarse, (2, 2, 4), "tricubic", (True, True, True))
    plain = interpolate(coarse, (2, 2, 4), "tricubic", dims=3)
    assert per.shape == plain.shape == (2, 12, 10, 32)
    # away from the edges the wrap changes nothing; at the edges it is the periodic field's
    np.testing.assert_allclose(per[:, 4:-4, 4:-4, 8:-8], plain[:, 4:-4, 4:-4, 8:-8], atol=1e-5)
    rolled = interpolate_volume(np.roll(coarse, 2, axis=3), (2, 2, 4), "tricubic", (True,) * 3)
    np.testing.assert_allclose(rolled, np.roll(per, 8, axis=3), atol=1e-5)
