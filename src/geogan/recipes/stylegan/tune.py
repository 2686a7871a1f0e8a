"""``geogan tune``: the perturbation intensity per style input that makes enriched ensembles
match the mean and the (inflated) spread of held-out real members (seed 004's
``scale_tune.py``).

For each tuning ensemble the reference members are those of its date and lead time that
were not inverted (held out), or all of them when every member was inverted; both the
generated and the reference members are normalised with the conditioning members'
statistics, so the loss compares like with like:

    loss = lambda_bias   * mean_pixels |mean(gen) - mean(ref)|
         + lambda_spread * mean_pixels |std(gen) - (1 + inflate) * std(ref)|

Adam on the raw parameters (``scale = exp(raw)`` or ``max_scale * sigmoid(raw)``), with
exploration noise on them that anneals from ``anneal`` to 0, and the result is the
moving average (0.9) of the scales over the steps, as seed 004 keeps.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from geogan.core.atomic import atomic_write_text, check_writable
from geogan.core.errors import DataError
from geogan.core.progress import ProgressBar
from geogan.core.seeding import derive_seed
from geogan.recipes.stylegan.enrich import enrich
from geogan.recipes.stylegan.perturb import conditioning_sets, settings
from geogan.recipes.stylegan.workflow import (
    group_members,
    load_inversion,
    load_model,
)

__all__ = ["inflation", "run_tune"]


def inflation(inflate: float | str, n_conditioning: int) -> float:
    """``inflate`` as a number (``auto``: ``sqrt(1 + 1 / N) - 1``)."""
    if inflate == "auto":
        return math.sqrt(1.0 + 1.0 / max(n_conditioning, 1)) - 1.0
    return float(inflate)


def _raw(value: torch.Tensor, rule: str, max_scale: float) -> torch.Tensor:
    value = value.clamp_min(1e-4)
    if rule == "exp":
        return value.log()
    p = (value / max_scale).clamp(1e-4, 1 - 1e-4)
    return torch.log(p / (1 - p))


def _scale(raw: torch.Tensor, rule: str, max_scale: float) -> torch.Tensor:
    return raw.exp() if rule == "exp" else max_scale * torch.sigmoid(raw)


def run_tune(
    inversion: str | Path,
    *,
    out: str | Path,
    checkpoint: str | Path | None = None,
    rule: str | None = None,
    style_indices: Sequence[int] | None = None,
    conditioning_members: int | None = None,
    overrides: Iterable[str] = (),
    overwrite: bool = False,
    progress: bool = True,
    device: str = "cpu",
) -> dict[str, Any]:
    """Tune on every ensemble of the inversion file; writes ``out`` (JSON) and returns it."""
    out = check_writable(out, overwrite)
    inv = load_inversion(inversion)
    model = load_model(checkpoint or inv.checkpoint, overrides, device)
    t, p = model.cfg.tune, model.cfg.perturb
    chosen = settings(model, None, rule=rule, style_indices=style_indices)
    n_cond = conditioning_members or p.conditioning_members
    sets = conditioning_sets(
        model, inv, n_conditioning=n_cond, step=p.inversion_step, keep_residual=p.keep_residual
    )
    samples = model.samples(times="all")
    inverted = {
        (d, lead): set(inv.frame["Member"].iloc[rows].astype(int))
        for d, lead, rows in inv.ensembles()
    }
    refs = []
    held_out_counts = []
    for s in sets:
        rows, members = group_members(samples, s.date, s.lead_time)
        held = [r for r, m in zip(rows, members) if m not in inverted[(s.date, s.lead_time)]]
        use = held or rows
        held_out_counts.append(len(held))
        if len(use) < 2:
            raise DataError(
                f"tuning ensemble {s.date} lead time {s.lead_time:g} h has {len(use)} reference "
                "member(s); the spread needs at least 2"
            )
        refs.append(model.normalise(samples.stack(use), s.stats))
    n_latent = model.g.n_latent
    inflate = inflation(t.inflate, len(sets[0].members))
    init = torch.full((n_latent,), float(t.init_scale))
    raw_scale = _raw(init, t.scale_rule, t.max_scale).requires_grad_(True)
    params = [raw_scale]
    raw_alpha = None
    if t.tune_alpha:
        a0 = chosen["alpha_t"].clamp(1e-3, 1 - 1e-3)
        raw_alpha = torch.log(a0 / (1 - a0)).requires_grad_(True)
        params.append(raw_alpha)
    opt = torch.optim.Adam(params, lr=t.lr)
    w_avg = model.g.mean_w(model.cfg.invert.mean_latents, torch.Generator().manual_seed(0))[0]
    order_rng = np.random.default_rng(derive_seed(t.seed, 1))
    order: list[int] = []
    history: list[float] = []
    ema_scale = None
    ema_alpha = None
    with ProgressBar("tune", t.steps, unit="steps", enabled=progress) as bar:
        for step in range(t.steps):
            if not order:
                order = list(order_rng.permutation(len(sets)))
            e = int(order.pop())
            cond, ref = sets[e], refs[e]
            gen = torch.Generator().manual_seed(derive_seed(t.seed, 2, step))
            sigma = t.anneal * (1.0 - (step / t.steps) ** 2)
            jitter = torch.randn((n_latent,), generator=gen) * sigma
            scale = _scale(raw_scale + jitter, t.scale_rule, t.max_scale)
            alpha = torch.sigmoid(raw_alpha) if raw_alpha is not None else chosen["alpha_t"]
            fields = enrich(
                model.g,
                cond.ws,
                t.samples,
                rule=chosen["rule"],
                scale=scale,
                alpha=alpha,
                mask=chosen["mask"],
                w_avg=w_avg,
                generator=gen,
                noises=cond.noises,
                residual=cond.residual,
                batch_size=t.samples,
            )
            bias = (fields.mean(0) - ref.mean(0)).abs().mean()
            spread = (fields.std(0) - (1.0 + inflate) * ref.std(0)).abs().mean()
            loss = t.lambda_bias * bias + t.lambda_spread * spread
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            history.append(float(loss.detach()))
            with torch.no_grad():
                now = _scale(raw_scale, t.scale_rule, t.max_scale)
                ema_scale = now.clone() if ema_scale is None else 0.9 * ema_scale + 0.1 * now
                if raw_alpha is not None:
                    a = torch.sigmoid(raw_alpha)
                    ema_alpha = a.clone() if ema_alpha is None else 0.9 * ema_alpha + 0.1 * a
            bar.advance(1)
    scale_out = (ema_scale * chosen["mask"]).tolist()
    alpha_out = (ema_alpha if ema_alpha is not None else chosen["alpha_t"]).tolist()
    result = {
        "format": "stylegan-tuning/1",
        "rule": chosen["rule"],
        "style_indices": chosen["style_indices"],
        "scale": scale_out,
        "alpha": alpha_out,
        "inflate": inflate,
        "conditioning_members": len(sets[0].members),
        "ensembles": [
            {"date": str(s.date), "lead_time": s.lead_time, "held_out_members": h}
            for s, h in zip(sets, held_out_counts)
        ],
        "loss_first": history[0] if history else None,
        "loss_last_10pct": float(np.mean(history[-max(1, len(history) // 10) :])),
        "loss_history": history,
        "checkpoint": str(model.path),
        "inversion": str(inv.path),
        "output": str(out),
    }
    atomic_write_text(out, json.dumps(result, indent=2, default=str))
    return {k: v for k, v in result.items() if k != "loss_history"}
