"""Physical units through one units library (``cf-units``, UDUNITS-2: the CF conventions' own).

Sources spell one unit many ways (``mm/h``, ``mm h-1``, ``mm hr-1``, ``mm hr**-1``; ``K``,
``kelvin``); UDUNITS parses them all, so "the same unit spelt differently" is told from
"a different unit" by the library, never by a list of spellings. Conversions are the
library's too. One physical rule is added, because precipitation is reported both as a
depth rate and as a mass flux of water: with ``water=True``, ``kg m-2`` of liquid water is
``1 mm`` (density 1000 kg m-3), so ``kg m-2 s-1`` converts to ``mm s-1`` and ``kg m-2 h-1``
to ``mm h-1``.

Missing or unknown units are not guessed: :func:`parse_units` returns None and the callers
warn, naming the variable.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

import numpy as np

from geogan.core.errors import DataError

log = logging.getLogger(__name__)

__all__ = [
    "convert",
    "convertible",
    "describe",
    "is_nonnegative_quantity",
    "parse_units",
    "same_units",
]

_MISSING = {"", "none", "unknown", "no_unit"}
# Common spellings UDUNITS lacks (ocean salinity, geopotential metres, percent words).
_ALIASES = {"psu": "1e-3", "pss-78": "1e-3", "gpm": "m", "percent": "%", "pct": "%"}
_WATER_DENSITY = "1000 kg m-3"


@functools.lru_cache(maxsize=256)
def _parse(text: str):
    import cf_units

    try:
        unit = cf_units.Unit(_ALIASES.get(text.lower(), text))
    except (ValueError, TypeError):
        return None
    return None if unit.is_unknown() or unit.is_no_unit() else unit


def parse_units(units: str | None):
    """The ``cf_units.Unit`` of a unit string, or None when it is missing or unknown."""
    if units is None:
        return None
    text = " ".join(str(units).split())
    if text.lower() in _MISSING:
        return None
    return _parse(text)


def describe(units: str | None) -> str:
    """``'mm/h'`` for messages (``'(none)'`` when missing)."""
    return repr(units) if units else "(none)"


def same_units(a: str | None, b: str | None) -> bool | None:
    """True/False when both units are known; None when either is missing or unknown."""
    ua, ub = parse_units(a), parse_units(b)
    if ua is None or ub is None:
        return None
    return bool(ua == ub)


def _water_equivalent(unit):
    """``kg m-2 ...`` (mass of water per area) as the depth ``mm ...`` it makes; else ``unit``."""
    import cf_units

    mass_flux_like = [cf_units.Unit("kg m-2"), cf_units.Unit("kg m-2 s-1")]
    if any(unit.is_convertible(ref) for ref in mass_flux_like):
        return unit / cf_units.Unit(_WATER_DENSITY)
    return unit


def convertible(source: str | None, target: str | None, *, water: bool = False) -> bool | None:
    """Whether values in ``source`` units can be converted to ``target`` (None: cannot tell)."""
    us, ut = parse_units(source), parse_units(target)
    if us is None or ut is None:
        return None
    if water:
        us, ut = _water_equivalent(us), _water_equivalent(ut)
    return bool(us.is_convertible(ut))


def convert(
    values: np.ndarray, source: str, target: str, *, water: bool = False, name: str = "values"
) -> np.ndarray:
    """``values`` in ``source`` units converted to ``target`` (same dtype); identical units are
    returned as they are. A :class:`DataError` names ``name`` when they are incompatible."""
    return converter(source, target, water=water, name=name)(values)


def converter(
    source: str, target: str, *, water: bool = False, name: str = "values"
) -> Callable[[np.ndarray], np.ndarray]:
    """A function converting arrays from ``source`` to ``target`` units (see :func:`convert`)."""
    us, ut = parse_units(source), parse_units(target)
    if us is None or ut is None:
        raise DataError(
            f"{name}: cannot convert {describe(source)} to {describe(target)} (unknown units); "
            "set the variable's units attribute to a UDUNITS unit"
        )
    if us == ut:
        return lambda v: v
    if water:
        us, ut = _water_equivalent(us), _water_equivalent(ut)
    if not us.is_convertible(ut):
        raise DataError(
            f"{name} is in {describe(source)}, which cannot be converted to the expected "
            f"{describe(target)}; check the variable or the preset's expected units"
        )

    def fn(v: np.ndarray) -> np.ndarray:
        v = np.asarray(v)
        return np.asarray(us.convert(v, ut), dtype=v.dtype)

    return fn


#: precipitation-like rates are slower than this (in m s-1): mm/h is 2.8e-7, mm/s 1e-3
_RATE_CEILING = 1e-3


def is_nonnegative_quantity(units: str | None, standard_name: str | None = None) -> bool:
    """Whether a variable cannot be negative (precipitation: rates, amounts, water fluxes).

    True when the CF ``standard_name`` names precipitation, rain, snow or hail; or when the
    units are a mass of water per area (``kg m-2``) or its flux (``kg m-2 s-1`` in any time
    unit); or a depth per time no faster than 1 mm/s (``mm h-1``, ``mm/hr``, ``cm day-1``,
    not a wind speed in ``m s-1`` or ``km/h``); or a depth in mm. Anything else (winds,
    temperatures, unknown units) may be negative.
    """
    name = (standard_name or "").lower()
    if any(w in name for w in ("precipitation", "rainfall", "rain_", "snowfall", "hail")):
        return True
    unit = parse_units(units)
    if unit is None:
        return False
    import cf_units

    if unit.is_convertible(cf_units.Unit("kg m-2")) or unit.is_convertible(
        cf_units.Unit("kg m-2 s-1")
    ):
        return True
    speed = cf_units.Unit("m s-1")
    if unit.is_convertible(speed):
        return float(unit.convert(1.0, speed)) <= _RATE_CEILING
    if unit.is_convertible(cf_units.Unit("m")):
        return float(unit.convert(1.0, cf_units.Unit("m"))) <= 1e-3  # mm, not m or km
    return False
