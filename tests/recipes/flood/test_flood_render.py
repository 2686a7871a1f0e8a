"""The simulated domain's renderer: determinism, exact labels, flooded/dry shares, shading."""

import numpy as np
import pytest

from geogan.core.errors import ConfigError
from geogan.recipes.flood.render import (
    N_CLASSES,
    WATER,
    gaussian_field,
    hillshade,
    render_tile,
    simulate_world,
)


def test_tiles_are_pure_functions_of_their_seed():
    a, b, c = render_tile(32, 5), render_tile(32, 5), render_tile(32, 6)
    for k in ("x", "s", "w", "h"):
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["x"], c["x"])


@pytest.mark.parametrize("seed", range(4))
def test_labels_are_exact(seed):
    t = render_tile(48, seed, "flooded", water_fraction=(0.2, 0.4))
    assert t["x"].shape == (3, 48, 48) and t["x"].dtype == np.uint8
    assert t["s"].min() >= 0 and t["s"].max() < N_CLASSES
    np.testing.assert_array_equal(t["w"], (t["s"] == WATER).astype(np.uint8))
    # water exactly where the relief is at or below sea level
    np.testing.assert_array_equal(t["w"] == 1, t["h"][0] <= 0)
    assert 0.2 - 1 / 48**2 <= t["w"].mean() <= 0.4 + 1 / 48**2


def test_dry_tiles_have_no_water_and_water_looks_blue():
    for seed in range(3):
        assert render_tile(32, seed, "dry")["w"].sum() == 0
    t = render_tile(64, 1, "flooded")
    x = t["x"].astype(float)
    water, land = t["w"] == 1, t["w"] == 0
    assert (x[2][water] - x[0][water]).mean() > (x[2][land] - x[0][land]).mean() + 20


def test_gaussian_field_statistics_and_hillshade_formula():
    f = gaussian_field(64, 3.0, np.random.default_rng(0))
    assert abs(f.mean()) < 1e-5 and abs(f.std() - 1) < 1e-4
    # a 45-degree plane rising to the east faces west: cos(z)cos(s) + sin(z)sin(s)cos(az - 270)
    x = np.arange(16, dtype=float)[None].repeat(16, 0)
    for azimuth, expected in ((270.0, 1.0), (90.0, 0.0), (0.0, 0.5)):
        shade = hillshade(x * 100.0, 100.0, azimuth_deg=azimuth, altitude_deg=45.0)
        np.testing.assert_allclose(shade[4:12, 4:12], expected, atol=1e-6)
    flat = hillshade(np.zeros((8, 8)), 1.0)
    np.testing.assert_allclose(flat, np.cos(np.deg2rad(45)), atol=1e-7)


def test_bad_arguments():
    with pytest.raises(ConfigError, match="flooded' or 'dry"):
        simulate_world(16, 0, "wet")
