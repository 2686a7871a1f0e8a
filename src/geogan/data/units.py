"""Comparing unit strings without a units library.

Sources spell one unit many ways (``mm/h``, ``mm h-1``, ``mm hr**-1``;
``K``, ``kelvin``; ``degC``, ``Celsius``). :func:`parse_units` turns a CF/UDUNITS-like
string into ``{symbol: exponent}`` after mapping common aliases, so that
:func:`same_units` can tell "the same unit spelt differently" from "a different unit"
(``K`` vs ``degC``, ``mm/h`` vs ``kg m-2 s-1``). No conversion is attempted: geogan
refuses mismatched units instead of guessing a conversion factor.
"""

from __future__ import annotations

import re

_ALIASES = {
    "kelvin": "k",
    "kelvins": "k",
    "degk": "k",
    "deg_k": "k",
    "degree_kelvin": "k",
    "degrees_kelvin": "k",
    "celsius": "degc",
    "deg_c": "degc",
    "°c": "degc",
    "degree_c": "degc",
    "degrees_c": "degc",
    "degree_celsius": "degc",
    "degrees_celsius": "degc",
    "hr": "h",
    "hrs": "h",
    "hour": "h",
    "hours": "h",
    "sec": "s",
    "second": "s",
    "seconds": "s",
    "min": "min",
    "minute": "min",
    "minutes": "min",
    "day": "d",
    "days": "d",
    "metre": "m",
    "meter": "m",
    "metres": "m",
    "meters": "m",
    "millimetre": "mm",
    "millimeter": "mm",
    "millimetres": "mm",
    "millimeters": "mm",
    "percent": "%",
    "pct": "%",
}
_DIMENSIONLESS = {"", "1", "-", "none", "dimensionless", "unitless"}
_TOKEN = re.compile(r"^([^\d^+-]+?)(?:\^|\*\*)?([+-]?\d+)?$")


def parse_units(units: str) -> dict[str, int] | None:
    """``{symbol: exponent}`` of a unit string (``{}`` when dimensionless), or None if unparseable.

    Products are separated by spaces, ``*`` or ``.``; ``/`` divides by the following
    factor (``kg/m2/s`` is ``kg m-2 s-1``). Symbols are compared case-insensitively.
    """
    text = str(units).strip().lower()
    if text in _DIMENSIONLESS:
        return {}
    text = text.replace("**", "^")
    text = re.sub(r"\s*/\s*", " /", text)
    text = re.sub(r"(?<=[a-z%\d])[*.](?=[a-z%])", " ", text)
    out: dict[str, int] = {}
    for raw in text.replace("*", " ").split():
        sign = -1 if raw.startswith("/") else 1
        raw = raw.lstrip("/")
        match = _TOKEN.match(raw)
        if not match or not match.group(1):
            return None
        symbol = _ALIASES.get(match.group(1), match.group(1))
        if symbol == "1":
            continue
        exponent = sign * int(match.group(2) or 1)
        out[symbol] = out.get(symbol, 0) + exponent
        if out[symbol] == 0:
            del out[symbol]
    return out


def same_units(a: str | None, b: str | None) -> bool | None:
    """True/False when both unit strings are given; None when either is missing (cannot tell)."""
    if a is None or b is None or not str(a).strip() or not str(b).strip():
        return None
    pa, pb = parse_units(a), parse_units(b)
    if pa is None or pb is None:
        return " ".join(str(a).split()) == " ".join(str(b).split())
    return pa == pb
