#!/usr/bin/env python
"""Can an ensemble built from N members beat those N members on the fair CRPS?

The recipe-5 skill target asks the enriched ensemble (100 members made from 5 inverted
members) to be at least as good on fair CRPS as the 5 conditioning members alone. When
the held-out truth is another member of the same ensemble, the 5 members' fair CRPS is an
unbiased estimate of the expected CRPS of the ensemble's own distribution F (Ferro 2014),
and by propriety no forecast G, however made, has a lower expected CRPS than F itself::

    E_x,y[fairCRPS(x_1..N, y)] = E_y[CRPS(F, y)] <= E_y[CRPS(G, y)]   for every G

So any enrichment that is a function of the N members (and of anything learnt elsewhere)
is, in expectation, at least as bad as the members' fair score; it ties only if it
reproduces F exactly. The same holds for the rank histogram: the truth and the N members
are exchangeable, so the truth's rank among them is uniform in expectation (the flattest
there is), while among members made from them it is not. This script measures the gap in the simplest world (F Gaussian,
pointwise, independent trials) with geogan's own estimators
(``geogan.evaluation.metrics.crps_ensemble`` and the recipe's linear-combination baseline)::

    python benchmarks/fair_crps_bound.py --trials 200000 --out benchmarks/results/fair_crps_bound.json

Rows: the N members; random linear combinations of their anomalies (the recipe's baseline);
Gaussians from the members' sample mean and standard deviation (inflated by 1 and by
sqrt(1 + 1/N)); and, for reference, 100 members drawn from F itself (the oracle).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def run(trials: int, members: int, enriched: int, seed: int) -> dict[str, Any]:
    import numpy as np

    from geogan.evaluation.metrics import crps_ensemble
    from geogan.recipes.stylegan.baselines import linear_combinations
    from geogan.recipes.stylegan.evaluate import rank_flatness

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((members, trials))  # the conditioning members, F = N(0, 1)
    y = rng.standard_normal(trials)  # a held-out member: the truth
    mean, std = x.mean(0), x.std(0, ddof=1)
    forecasts = {
        f"{members} members": x,
        "linear combinations (recipe baseline)": linear_combinations(x, enriched, seed + 1),
        "Gaussian(sample mean, sample std)": mean + std * rng.standard_normal((enriched, trials)),
        "Gaussian(sample mean, sqrt(1 + 1/N) sample std)": mean
        + np.sqrt(1 + 1 / members) * std * rng.standard_normal((enriched, trials)),
        f"oracle: {enriched} draws from F": rng.standard_normal((enriched, trials)),
    }
    rows = {}
    for name, fc in forecasts.items():
        ecdf, fair = crps_ensemble(np.asarray(fc, dtype=np.float64), y)
        ranks = (fc < y).sum(axis=0)  # continuous values: no ties
        hist = np.bincount(ranks, minlength=fc.shape[0] + 1) / trials
        rows[name] = {
            **rank_flatness(hist, trials),
            "members": int(fc.shape[0]),
            "crps_fair": float(fair.mean()),
            "crps_fair_se": float(fair.std(ddof=1) / np.sqrt(trials)),
            "crps_ecdf": float(ecdf.mean()),
        }
    base = rows[f"{members} members"]["crps_fair"]
    for r in rows.values():
        r["fair_vs_members"] = r["crps_fair"] / base - 1
    return {
        "trials": trials,
        "members": members,
        "enriched": enriched,
        "seed": seed,
        "expected_crps_of_F": 1 / np.sqrt(np.pi),
        "rows": rows,
    }


def table(result: dict[str, Any]) -> str:
    lines = [
        "| forecast | members | fair CRPS (s.e.) | vs the members | ecdf CRPS | rank_cdf_rms |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in result["rows"].items():
        lines.append(
            f"| {name} | {r['members']} | {r['crps_fair']:.4f} ({r['crps_fair_se']:.4f}) | "
            f"{r['fair_vs_members']:+.1%} | {r['crps_ecdf']:.4f} | {r['rank_cdf_rms']:.4f} |"
        )
    lines.append(f"\nexpected CRPS of F = N(0, 1) itself: {result['expected_crps_of_F']:.4f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=200_000)
    p.add_argument("--members", type=int, default=5)
    p.add_argument("--enriched", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args(argv)
    result = run(a.trials, a.members, a.enriched, a.seed)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(result, indent=2))
    print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
