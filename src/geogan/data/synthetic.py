"""Generated (synthetic) physical fields, seeded: for tests, demos, scale and spectrum targets.

These are **synthetic** fields with known statistics, not simulation output. Every function
is a pure function of its arguments (the ``seed`` included): the same call gives the same
array on every machine. Fields are periodic on every axis (they are built in Fourier space),
2D ``[H, W]`` or 3D ``[D, H, W]`` (any rank >= 1 for the scalar fields), of any size (memory:
about five arrays of the field's size at float32 for 3D fields from 256 per axis up).

Wavenumbers follow :func:`geogan.evaluation.metrics.radial_wavenumbers`: ``k = L |f|`` with
``f`` the frequency vector in cycles per voxel and ``L = max(shape)``, i.e. cycles per box
length on cubic boxes. "Spectrum" means power per Fourier mode ``P(k)``; a slope ``n`` means
``P(k) ~ k^-n`` for ``k >= 1`` (the mean, ``k = 0``, is removed).

- :func:`powerlaw_gaussian_field`: zero-mean Gaussian random field with a power-law
  spectrum and an exact sample variance (2D or 3D; the StyleGAN recipe uses the 2D ones).
- :func:`lognormal_field`: ``exp(g - sigma^2 / 2)`` of such a field, mean 1: the one-point
  statistics of cosmological density fields (Coles & Jones 1991).
- :func:`solenoidal_velocity`: a divergence-free velocity, the curl of a random vector
  potential (3D) or of a stream function (2D), with a power-law spectrum.
- :func:`mantle_like`: "mantle-like" temperature + velocity: a solenoidal velocity
  ``(u, v, w)`` and a temperature correlated with the vertical velocity (hot material
  rises) and then advected by the velocity for a few semi-Lagrangian steps, which sharpens
  it into plumes and filaments. A caricature of convection, not a solution of its equations.

The velocity is divergence-free in the spectral sense (``sum_a i k_a u_a = 0`` for every
mode, to rounding); a finite-difference divergence of the gridded field is not zero: it
measures the truncation error of the difference stencil at the smallest scales, which is
what :func:`geogan.recipes.volume.metrics.divergence` reports for truth and generated
fields alike.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import scipy.fft
from scipy import ndimage

from geogan.core.errors import ConfigError

__all__ = [
    "MANTLE_VARIABLES",
    "lognormal_field",
    "mantle_like",
    "powerlaw_gaussian_field",
    "radial_wavenumber_grid",
    "solenoidal_velocity",
]

MANTLE_VARIABLES = ("T", "u", "v", "w")
"""Variables of :func:`mantle_like`: temperature and the velocity components along the
x (last), y and z (first) axes of a ``[D, H, W]`` volume."""

_BIG = 2**24  # fields with more voxels are built in float32 / complex64


def _check_shape(shape: Sequence[int], ndims: tuple[int, ...] | None = None) -> tuple[int, ...]:
    try:
        out = tuple(int(n) for n in shape)
    except TypeError:
        raise ConfigError(f"shape must be a sequence of ints, got {shape!r}") from None
    if not out or any(n < 2 for n in out):
        raise ConfigError(f"field shape needs every axis >= 2 voxels, got {out}")
    if ndims is not None and len(out) not in ndims:
        raise ConfigError(f"this field needs {' or '.join(map(str, ndims))} axes, got shape {out}")
    return out


def _dtypes(shape: tuple[int, ...]) -> tuple[type, type]:
    return (np.float32, np.complex64) if math.prod(shape) > _BIG else (np.float64, np.complex128)


def _freqs(shape: tuple[int, ...], dtype: type) -> list[np.ndarray]:
    """Per-axis frequencies (cycles per voxel) of the ``rfftn`` grid, broadcastable."""
    nd = len(shape)
    out = []
    for a, n in enumerate(shape):
        f = np.fft.rfftfreq(n) if a == nd - 1 else np.fft.fftfreq(n)
        out.append(f.astype(dtype).reshape([-1 if b == a else 1 for b in range(nd)]))
    return out


def radial_wavenumber_grid(shape: Sequence[int], dtype: type = np.float64) -> np.ndarray:
    """``k = max(shape) * |f|`` on the ``rfftn`` grid of ``shape`` (float, cycles per box)."""
    shape = _check_shape(shape)
    f2 = sum(f * f for f in _freqs(shape, dtype))
    return (max(shape) * np.sqrt(f2)).astype(dtype)


def _white_spectrum(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    real, _ = _dtypes(shape)
    white = rng.standard_normal(shape, dtype=np.float32 if real is np.float32 else np.float64)
    return scipy.fft.rfftn(white)


def _amplitude(shape: tuple[int, ...], slope: float, dtype: type) -> np.ndarray:
    """``sqrt(P(k)) = k^(-slope / 2)`` on the rfftn grid, 0 at k = 0 and on Nyquist planes.

    The Nyquist plane of an even axis holds modes whose derivative is not a real field
    (``i k`` at ``f = -1/2``); leaving them out keeps spectral derivatives exact, so the
    curl of a potential is exactly divergence-free.
    """
    k = radial_wavenumber_grid(shape, dtype)
    with np.errstate(divide="ignore"):
        amp = np.where(k > 0, k ** (-0.5 * slope), 0.0).astype(dtype)
    for f in _freqs(shape, dtype):
        amp = np.where(np.abs(f) >= 0.5, 0.0, amp).astype(dtype)
    return amp


def _check_slope(slope: float) -> float:
    slope = float(slope)
    if not math.isfinite(slope) or slope < 0:
        raise ConfigError(f"spectral slope must be finite and >= 0, got {slope}")
    return slope


def powerlaw_gaussian_field(
    shape: Sequence[int],
    slope: float,
    *,
    seed: int,
    variance: float = 1.0,
    mean: float = 0.0,
) -> np.ndarray:
    """A periodic Gaussian random field ``[*shape]`` (float32) with ``P(k) ~ k^-slope``.

    Built from white noise filtered in Fourier space (random phases, Rayleigh amplitudes),
    then shifted and scaled so that its *sample* mean is ``mean`` and its sample variance is
    ``variance`` exactly (units of the field squared). ``slope`` 0 is white noise; 2 to 4
    give smooth, cloud-like fields in 2D, 3 to 5 in 3D. Any rank >= 1.
    """
    shape = _check_shape(shape)
    slope = _check_slope(slope)
    if not variance > 0:
        raise ConfigError(f"variance must be > 0, got {variance}")
    rng = np.random.default_rng(int(seed))
    real, _ = _dtypes(shape)
    spec = _white_spectrum(shape, rng)
    spec *= _amplitude(shape, slope, real)
    field = scipy.fft.irfftn(spec, s=shape, axes=range(len(shape)))
    del spec
    field -= field.mean()
    std = float(field.std())
    if std == 0:
        raise ConfigError(f"shape {shape} is too small to hold a fluctuating field")
    field *= math.sqrt(variance) / std
    field += mean
    return field.astype(np.float32, copy=False)


def lognormal_field(
    shape: Sequence[int], slope: float, *, seed: int, sigma: float = 1.0
) -> np.ndarray:
    """A log-normal field ``exp(g - sigma^2 / 2)`` ``[*shape]`` (float32, > 0, mean ~ 1).

    ``g`` is :func:`powerlaw_gaussian_field` with variance ``sigma^2`` and slope ``slope``;
    the density contrast ``rho - 1`` has a power-law-like spectrum with a heavy-tailed
    one-point distribution (the log-normal model of cosmological density fields).
    """
    if not sigma > 0:
        raise ConfigError(f"sigma must be > 0, got {sigma}")
    g = powerlaw_gaussian_field(shape, slope, seed=seed, variance=sigma**2).astype(np.float64)
    return np.exp(g - 0.5 * sigma**2).astype(np.float32)


def solenoidal_velocity(
    shape: Sequence[int], slope: float, *, seed: int, rms: float = 1.0
) -> np.ndarray:
    """A divergence-free velocity ``[ndim, *shape]`` (float32) with ``P_u(k) ~ k^-slope``.

    3D ``shape = (D, H, W)``: ``u = curl A`` with ``A`` three independent Gaussian fields of
    slope ``slope + 2``; 2D ``(H, W)``: ``u = (d psi / dy, -d psi / dx)`` of a stream
    function ``psi``. Derivatives are spectral, so ``sum_a i k_a u_a = 0`` on every mode.
    Component ``c`` of the result points along axis ``ndim - 1 - c`` (component 0 along
    the last axis, x: the order ``u, v, w``), in voxels; the components are scaled jointly
    so that ``sqrt(mean(|u|^2)) = rms``.
    """
    shape = _check_shape(shape, (2, 3))
    slope = _check_slope(slope)
    nd = len(shape)
    rng = np.random.default_rng(int(seed))
    real, cplx = _dtypes(shape)
    amp = _amplitude(shape, slope + 2.0, real)
    # i * 2 pi f_a: the spectral derivative along axis a (axis order of `shape`)
    deriv = [(2j * np.pi * f).astype(cplx) for f in _freqs(shape, real)]
    if nd == 2:
        psi = _white_spectrum(shape, rng) * amp
        # axis 0 = y, axis 1 = x: u = d psi / dy, v = -d psi / dx
        comps_hat = [deriv[0] * psi, -deriv[1] * psi]
    else:
        # potential components along x, y, z (axes 2, 1, 0)
        a_hat = [_white_spectrum(shape, rng) * amp for _ in range(3)]
        dz, dy, dx = deriv
        ax, ay, az = a_hat
        comps_hat = [dy * az - dz * ay, dz * ax - dx * az, dx * ay - dy * ax]
        del a_hat
    out = np.empty((nd, *shape), dtype=np.float32)
    for c, h in enumerate(comps_hat):
        out[c] = scipy.fft.irfftn(h, s=shape, axes=range(nd))
    del comps_hat
    scale = float(np.sqrt(np.mean(np.sum(out.astype(np.float64) ** 2, axis=0))))
    if scale == 0:
        raise ConfigError(f"shape {shape} is too small to hold a velocity field")
    out *= rms / scale
    return out


def _advect(field: np.ndarray, velocity: np.ndarray, steps: int, cfl: float) -> np.ndarray:
    """``steps`` semi-Lagrangian steps of ``dT/dt + u . grad T = 0`` (periodic, trilinear)."""
    nd = field.ndim
    umax = float(np.abs(velocity).max())
    if steps <= 0 or umax == 0:
        return field
    dt = cfl / umax
    grid = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in field.shape], indexing="ij")
    # velocity component c points along axis nd - 1 - c
    departure = [grid[a] - dt * velocity[nd - 1 - a] for a in range(nd)]
    del grid
    for _ in range(steps):
        field = ndimage.map_coordinates(field, departure, order=1, mode="grid-wrap")
    return field.astype(np.float32, copy=False)


def mantle_like(
    shape: Sequence[int],
    *,
    seed: int,
    velocity_slope: float = 4.0,
    temperature_slope: float = 4.0,
    correlation: float = 0.7,
    advect_steps: int = 2,
    cfl: float = 1.5,
    velocity_rms: float = 1.0,
    temperature_mean: float = 0.5,
    temperature_std: float = 0.15,
) -> dict[str, np.ndarray]:
    """Mantle-like ``{"T", "u", "v", "w"}``: each ``[D, H, W]`` (or ``[H, W]``: T, u, v) float32.

    Synthetic, seeded. The velocity is :func:`solenoidal_velocity` (slope
    ``velocity_slope``, RMS ``velocity_rms`` in voxels per unit time; ``w`` along the first
    axis, "up"). The temperature starts as ``correlation * w / std(w) + sqrt(1 -
    correlation^2) * g`` with ``g`` an independent Gaussian field of slope
    ``temperature_slope`` (positive where material rises), is advected by the velocity for
    ``advect_steps`` semi-Lagrangian steps of ``cfl`` voxels at the fastest point, and is then
    scaled to mean ``temperature_mean`` and standard deviation ``temperature_std``
    (non-dimensional, a mantle between 0 and 1). Seeds of the parts are derived from ``seed``.
    """
    shape = _check_shape(shape, (2, 3))
    if not -1 <= correlation <= 1:
        raise ConfigError(f"correlation must be in [-1, 1], got {correlation}")
    if advect_steps < 0 or not cfl > 0:
        raise ConfigError("advect_steps must be >= 0 and cfl > 0")
    ss = np.random.SeedSequence(int(seed) & (2**63 - 1))
    s_vel, s_temp = (int(s.generate_state(1, dtype=np.uint64)[0]) for s in ss.spawn(2))
    vel = solenoidal_velocity(shape, velocity_slope, seed=s_vel, rms=velocity_rms)
    up = vel[-1].astype(np.float64)
    g = powerlaw_gaussian_field(shape, temperature_slope, seed=s_temp).astype(np.float64)
    temp = correlation * (up - up.mean()) / up.std() + math.sqrt(1 - correlation**2) * g
    temp = _advect(temp.astype(np.float32), vel, advect_steps, cfl).astype(np.float64)
    temp = temperature_mean + temperature_std * (temp - temp.mean()) / temp.std()
    names = MANTLE_VARIABLES if len(shape) == 3 else ("T", "u", "v")
    out = {"T": temp.astype(np.float32)}
    for c, name in enumerate(names[1:]):
        out[name] = vel[c]
    return out
