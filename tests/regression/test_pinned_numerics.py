"""The per-CPU choice of pinned values, and the tolerance comparison used elsewhere."""

from __future__ import annotations

import pinned_numerics as pn
import pytest


def test_this_machines_pins_are_exact_and_others_fall_back_to_the_first_set(monkeypatch):
    pins = {"_note": "x", "AuthenticAMD/AVX2": [1.0], "GenuineIntel/AVX512": [2.0]}
    monkeypatch.setattr(pn, "numerics_key", lambda: "GenuineIntel/AVX512")
    assert pn.pins_for_this_machine(pins) == ([2.0], True)
    monkeypatch.setattr(pn, "numerics_key", lambda: "GenuineIntel/AVX2")
    assert pn.pins_for_this_machine(pins) == ([1.0], False)


def test_numerics_key_names_vendor_and_capability():
    vendor, capability = pn.numerics_key().split("/")
    assert vendor and capability in {"DEFAULT", "AVX2", "AVX512", "ZVECTOR", "VSX", "SVE256"}


def test_close_values_tolerates_rounding_and_catches_real_changes():
    want = [{"loss": 1.0, "step": 3}]
    pn.assert_close_values([{"loss": 1.0 + 1e-7, "step": 3}], want, 1e-5, "x")
    with pytest.raises(AssertionError):
        pn.assert_close_values([{"loss": 1.001, "step": 3}], want, 1e-5, "x")
    with pytest.raises(AssertionError):
        pn.assert_close_values([{"loss": 1.0, "step": 4}], want, 1e-5, "x")
    with pytest.raises(AssertionError):
        pn.assert_close_values([{"loss": 1.0}], want, 1e-5, "x")
