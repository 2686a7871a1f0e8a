"""benchmarks/fair_crps_bound.py: the N members' fair CRPS estimates the CRPS of their own
distribution (1/sqrt(pi) for N(0, 1)), and ensembles made from them score worse."""

from __future__ import annotations

import math

import fair_crps_bound
import pytest


def test_members_fair_crps_is_that_of_their_distribution_and_derived_ensembles_are_worse():
    result = fair_crps_bound.run(trials=20_000, members=5, enriched=50, seed=0)
    rows = result["rows"]
    members = rows["5 members"]
    assert members["crps_fair"] == pytest.approx(
        1 / math.sqrt(math.pi), abs=4 * members["crps_fair_se"]
    )
    oracle = rows["oracle: 50 draws from F"]
    assert oracle["crps_fair"] == pytest.approx(
        1 / math.sqrt(math.pi), abs=4 * oracle["crps_fair_se"]
    )
    derived = [r for name, r in rows.items() if name.startswith(("linear", "Gaussian"))]
    assert len(derived) == 3
    for r in derived:
        assert r["fair_vs_members"] > 0.05  # ~ +13 % for N = 5
        assert r["crps_ecdf"] < members["crps_ecdf"]  # while the ecdf CRPS favours them
        assert r["rank_cdf_rms"] > 2 * members["rank_cdf_rms"]  # the members' ranks are uniform
    assert "| 5 members | 5 |" in fair_crps_bound.table(result)
