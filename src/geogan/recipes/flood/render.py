"""The simulated domain: satellite-like tiles that geogan renders, with perfect labels.

ClimateGAN's simulated domain came from a 3D game engine; ours is a small procedural
renderer for nadir imagery. A tile is a pure function of ``(seed, size, kind)``:

1. **Relief** (metres): a Gaussian random field with a power-law spectrum (slope 3.5,
   drawn on twice the tile and cropped, so tiles are not periodic), scaled to a relief
   amplitude drawn per tile and shifted so that a chosen share of the tile lies below
   sea level (``kind="flooded"``) or none of it does (``kind="dry"``).
2. **Land cover** (the 17 IGBP classes of MODIS MCD12C1, 0 = water): water below sea
   level; elsewhere classes chosen from elevation bands and a second random field
   (moisture): snow and ice / barren high up, forests where moist, savannas, grassland,
   shrublands where dry, croplands and urban patches from a third field, wetlands on
   low moist ground beside water.
3. **Image**: the class colour (a palette, by default one measured on the real domain's
   training tiles), a multiplicative texture per class, Lambertian hill shading from the
   relief (sun from the north-west, 45 degrees up) on land, and water whose colour goes
   from a shallow to a deep tone with depth.

Labels: ``s`` (classes ``[H, W]``), ``w`` (water ``[H, W]``, 0/1) and ``h`` (height above
sea level in metres ``[1, H, W]``, negative under water) are exact by construction.
"""

from __future__ import annotations

import numpy as np

from geogan.core.errors import ConfigError
from geogan.data.landcover import IGBP_CLASSES  # the one class table

__all__ = [
    "DEFAULT_PALETTE",
    "IGBP_CLASSES",
    "N_CLASSES",
    "WATER",
    "gaussian_field",
    "hillshade",
    "render_image",
    "render_tile",
    "simulate_world",
]

WATER = 0
N_CLASSES = len(IGBP_CLASSES)

# RGB in [0, 1] of each class as Blue Marble shows it, roughly (used when no palette is
# measured from real tiles): dark ocean, dark greens for forests, tans for dry land.
DEFAULT_PALETTE = np.array(
    [
        [0.04, 0.07, 0.17],
        [0.11, 0.18, 0.10],
        [0.08, 0.17, 0.06],
        [0.16, 0.20, 0.13],
        [0.14, 0.21, 0.10],
        [0.13, 0.19, 0.10],
        [0.35, 0.33, 0.24],
        [0.45, 0.40, 0.30],
        [0.20, 0.24, 0.13],
        [0.33, 0.32, 0.20],
        [0.38, 0.37, 0.25],
        [0.15, 0.20, 0.14],
        [0.30, 0.32, 0.20],
        [0.35, 0.34, 0.32],
        [0.24, 0.27, 0.15],
        [0.90, 0.92, 0.95],
        [0.62, 0.52, 0.40],
    ],
    dtype=np.float32,
)

# texture amplitude (relative) per class: water and snow smooth, cropland and urban busy
_TEXTURE = np.array(
    [
        0.03,
        0.12,
        0.10,
        0.12,
        0.12,
        0.12,
        0.15,
        0.15,
        0.14,
        0.14,
        0.12,
        0.10,
        0.22,
        0.25,
        0.20,
        0.04,
        0.12,
    ],
    dtype=np.float32,
)


def gaussian_field(size: int, slope: float, rng: np.random.Generator) -> np.ndarray:
    """``[size, size]`` zero-mean unit-variance field with power ``~ k**-slope``, not periodic
    (drawn on ``2 * size`` and the top-left quarter kept)."""
    n = 2 * size
    k = np.hypot(*np.meshgrid(np.fft.fftfreq(n), np.fft.fftfreq(n), indexing="ij"))
    k[0, 0] = np.inf
    spectrum = np.fft.fft2(rng.standard_normal((n, n))) * k ** (-slope / 2)
    field = np.fft.ifft2(spectrum).real[:size, :size]
    field = field - field.mean()
    return (field / (field.std() + 1e-12)).astype(np.float32)


def hillshade(
    elevation: np.ndarray, pixel_m: float, azimuth_deg: float = 315.0, altitude_deg: float = 45.0
) -> np.ndarray:
    """Lambertian shading in [0, 1] of a relief ``[H, W]`` (metres, pixels ``pixel_m`` wide):
    ``cos(zenith) cos(slope) + sin(zenith) sin(slope) cos(azimuth - aspect)``, clipped at 0.
    Row 0 is north; ``azimuth_deg`` is clockwise from north (315: sun in the north-west)."""
    dz_dy, dz_dx = np.gradient(elevation.astype(np.float64), pixel_m)
    dz_dy = -dz_dy  # rows run southwards: north is up
    slope = np.arctan(np.hypot(dz_dx, dz_dy))
    aspect = np.arctan2(-dz_dx, dz_dy)  # direction the slope faces, clockwise from north
    zenith = np.deg2rad(90.0 - altitude_deg)
    az = np.deg2rad(azimuth_deg)
    shade = np.cos(zenith) * np.cos(slope) + np.sin(zenith) * np.sin(slope) * np.cos(az - aspect)
    return np.clip(shade, 0.0, 1.0).astype(np.float32)


def simulate_world(
    size: int, seed: int, kind: str = "flooded", water_fraction: tuple[float, float] = (0.1, 0.6)
) -> tuple[np.ndarray, np.ndarray]:
    """``(classes [H, W] int64, elevation [H, W] float32 metres)`` of one procedural tile.

    ``kind="flooded"``: a share of the tile drawn from ``water_fraction`` is below sea level
    (water, class 0); ``kind="dry"``: none is.
    """
    if kind not in ("flooded", "dry"):
        raise ConfigError(f"simulated tile kind must be 'flooded' or 'dry', got {kind!r}")
    rng = np.random.default_rng(seed)
    relief = rng.uniform(150.0, 2500.0)
    base = gaussian_field(size, 3.5, rng)
    moisture = gaussian_field(size, 3.0, rng)
    human = gaussian_field(size, 2.5, rng)
    if kind == "flooded":
        frac = rng.uniform(*water_fraction)
        level = np.quantile(base, frac)
        elev = (base - level) * relief / 3.0
    else:
        elev = (base - base.min()) * relief / 3.0 + rng.uniform(5.0, 300.0)
    elev = elev.astype(np.float32)
    cls = np.full((size, size), 10, dtype=np.int64)  # grasslands
    wet_bias = rng.uniform(-0.8, 0.8)  # whole tile moister or drier
    m = moisture + wet_bias
    cls[m > 0.9] = 2  # evergreen broadleaf
    cls[(m > 0.3) & (m <= 0.9)] = 5  # mixed forest
    cls[(m > -0.1) & (m <= 0.3)] = 8  # woody savannas
    cls[(m > -0.5) & (m <= -0.1)] = 9  # savannas
    cls[(m > -1.2) & (m <= -0.5)] = 7  # open shrublands
    cls[m <= -1.2] = 16  # barren
    high = elev > 1800.0
    cls[high & (m > 0.0)] = 1  # evergreen needleleaf up high
    cls[elev > 2600.0] = 15  # snow and ice
    cls[(elev > 2200.0) & (elev <= 2600.0) & (m <= 0.0)] = 16
    low = (elev > 0) & (elev < 400.0)
    cls[low & (human > 1.0)] = 12  # croplands on low ground
    cls[low & (human > 0.6) & (human <= 1.0)] = 14
    cls[(elev > 0) & (elev < 300.0) & (human > 2.2)] = 13  # towns
    cls[(elev > 0) & (elev < 8.0) & (m > 0.5)] = 11  # wetlands by the water
    cls[elev <= 0] = WATER
    return cls, elev


def render_image(
    classes: np.ndarray,
    elevation: np.ndarray,
    seed: int,
    palette: np.ndarray | None = None,
    pixel_m: float = 7400.0,
) -> np.ndarray:
    """RGB ``[3, H, W]`` uint8 of a land-cover map ``[H, W]`` and relief ``[H, W]`` (metres).

    ``palette``: ``[17, 3]`` class colours in [0, 1] (default :data:`DEFAULT_PALETTE`).
    ``pixel_m``: pixel width for the shading (Blue Marble's 1/15 degree is about 7.4 km;
    the relief is exaggerated accordingly, as shaded-relief maps do)."""
    pal = DEFAULT_PALETTE if palette is None else np.asarray(palette, dtype=np.float32)
    if pal.shape != (N_CLASSES, 3):
        raise ConfigError(f"palette must be [{N_CLASSES}, 3] RGB in [0, 1], got {pal.shape}")
    if classes.shape != elevation.shape or classes.ndim != 2:
        raise ConfigError(
            f"classes {classes.shape} and elevation {elevation.shape} must be the same [H, W]"
        )
    rng = np.random.default_rng(seed)
    size = max(classes.shape)
    cls = np.clip(classes, 0, N_CLASSES - 1)
    rgb = pal[cls].transpose(2, 0, 1).copy()  # [3, H, W]
    texture = gaussian_field(size, 1.5, rng)[: classes.shape[0], : classes.shape[1]]
    tint = gaussian_field(size, 3.0, rng)[: classes.shape[0], : classes.shape[1]]
    rgb *= 1.0 + _TEXTURE[cls] * texture + 0.05 * tint
    land = cls != WATER
    # shading exaggerated 20x: at 7 km pixels real slopes are far too gentle to show
    shade = hillshade(np.where(land, elevation, 0.0) * 20.0, pixel_m)
    flat = np.cos(np.deg2rad(45.0))
    rgb = np.where(land[None], rgb * (0.55 + 0.45 * shade / flat), rgb)
    depth = np.clip(-elevation, 0.0, None)
    shallow = pal[WATER] * np.array([1.6, 2.4, 2.0], dtype=np.float32) + 0.02
    mix = np.exp(-depth / 60.0)[None]
    water = shallow[:, None, None] * mix + pal[WATER][:, None, None] * (1.0 - mix)
    water = water * (1.0 + 0.03 * texture[None])
    rgb = np.where(land[None], rgb, water)
    return np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)


def render_tile(
    size: int,
    seed: int,
    kind: str = "flooded",
    palette: np.ndarray | None = None,
    water_fraction: tuple[float, float] = (0.1, 0.6),
) -> dict[str, np.ndarray]:
    """One simulated tile: ``{"x": [3, H, W] uint8, "s": [H, W] int64, "w": [H, W] uint8,
    "h": [1, H, W] float32 metres}``; a pure function of its arguments."""
    classes, elevation = simulate_world(size, seed, kind, water_fraction)
    image = render_image(classes, elevation, seed + 1, palette)
    return {
        "x": image,
        "s": classes,
        "w": (classes == WATER).astype(np.uint8),
        "h": elevation[None].astype(np.float32),
    }
