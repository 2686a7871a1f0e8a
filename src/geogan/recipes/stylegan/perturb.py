"""``geogan perturb``: enriched ensembles around inverted members, written in physical units.

Output: one variable per channel with dims ``(member, time, y, x)`` on the training grid,
``time`` = the ensembles' dates with a ``lead_time`` coordinate, ``conditioning_member
(time, cond)`` the members the enrichment started from, and the run's config in the
``geogan_config`` attribute (``geogan evaluate`` reads it).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import xarray as xr

from geogan.core.atomic import atomic_write_text, check_writable
from geogan.core.errors import ConfigError, DataError
from geogan.core.progress import ProgressBar
from geogan.core.seeding import derive_seed
from geogan.inference.writers import write_dataset
from geogan.recipes.stylegan.enrich import RULES, enrich, per_style, style_mask
from geogan.recipes.stylegan.workflow import (
    Inversion,
    LoadedModel,
    group_members,
    load_inversion,
    load_model,
    summary_path,
)

__all__ = ["Conditioning", "conditioning_sets", "run_perturb", "settings"]

PERTURB_FORMAT = "stylegan-enriched/1"


@dataclass
class Conditioning:
    """One inverted ensemble ready to enrich: latents, noise maps, members, statistics."""

    date: pd.Timestamp
    lead_time: float
    members: list[int]
    ws: torch.Tensor  # [N, L, D]
    noises: list[torch.Tensor]  # [N, 1, h, w] each
    physical: np.ndarray  # [N, C, H, W]
    normalised: torch.Tensor  # [N, C, H, W]
    stats: Any  # (mean, spread) maps or None
    residual: torch.Tensor | None  # [N, C, H, W]


def conditioning_sets(
    model: LoadedModel,
    inv: Inversion,
    *,
    n_conditioning: int | None,
    step: int | None,
    keep_residual: bool,
) -> list[Conditioning]:
    """The inverted ensembles of ``inv``, each cut to its first ``n_conditioning`` members."""
    ws_all, noises_all = inv.at(step)
    if ws_all.shape[1] != model.g.n_latent or ws_all.shape[2] != model.g.latent_dim:
        raise DataError(
            f"{inv.path} holds latents {list(ws_all.shape[1:])} but the generator takes "
            f"[{model.g.n_latent}, {model.g.latent_dim}]; invert with this checkpoint"
        )
    samples = model.samples(times="all")
    out = []
    for date, lead, rows in inv.ensembles():
        if n_conditioning is not None and n_conditioning > len(rows):
            raise DataError(
                f"{n_conditioning} conditioning members asked, but {inv.path.name} holds "
                f"{len(rows)} inverted members for {date} lead time {lead:g} h; lower "
                "--conditioning-members or invert more members"
            )
        rows = rows[: n_conditioning or len(rows)]
        members = inv.frame["Member"].iloc[rows].astype(int).tolist()
        data_rows, data_members = group_members(samples, date, lead)
        missing = sorted(set(members) - set(data_members))
        if missing:
            raise DataError(
                f"members {missing} of {date} lead time {lead:g} h are in {inv.path.name} "
                f"but not in the data ({samples.source}); use the data they were inverted from"
            )
        phys = samples.stack([data_rows[data_members.index(m)] for m in members])
        stats = model.group_stats(phys)
        normalised = model.normalise(phys, stats)
        ws = ws_all[rows]
        noises = [n[rows] for n in noises_all]
        residual = None
        if keep_residual:
            with torch.no_grad():
                rec = model.g.synthesis(ws, noise=noises or None)
            residual = normalised - rec
        out.append(Conditioning(date, lead, members, ws, noises, phys, normalised, stats, residual))
    return out


def settings(
    model: LoadedModel,
    scales: str | Path | None,
    *,
    rule: str | None,
    style_indices: Sequence[int] | None,
) -> dict[str, Any]:
    """Rule, style mask, scale and alpha per style input: from the config, then a tuning
    file (``geogan tune``), then the command line."""
    p = model.cfg.perturb
    n_latent = model.g.n_latent
    chosen = {
        "rule": p.rule,
        "style_indices": p.style_indices,
        "scale": p.scale,
        "alpha": p.alpha,
        "source": "config",
    }
    if scales is not None:
        path = Path(scales)
        if not path.exists():
            raise ConfigError(f"--scales {path} not found; run 'geogan tune' first")
        try:
            tuned = json.loads(path.read_text())
            chosen.update(
                rule=tuned["rule"],
                style_indices=tuned["style_indices"],
                scale=tuned["scale"],
                alpha=tuned["alpha"],
                source=str(path),
            )
        except (ValueError, KeyError) as exc:
            raise ConfigError(f"--scales {path} is not a file of 'geogan tune' ({exc})") from None
    if rule is not None:
        if scales is not None and rule != chosen["rule"]:
            raise ConfigError(
                f"--rule {rule} differs from the rule {chosen['rule']!r} the scales in {scales} "
                "were tuned for; tune again with this rule or drop --rule"
            )
        chosen["rule"] = rule
    if style_indices is not None:
        chosen["style_indices"] = list(style_indices)
    if chosen["rule"] not in RULES:
        raise ConfigError(
            f"unknown perturbation rule {chosen['rule']!r}; choose one of {', '.join(RULES)}"
        )
    chosen["mask"] = style_mask(chosen["style_indices"], n_latent)
    chosen["scale_t"] = per_style(chosen["scale"], n_latent, "scale")
    chosen["alpha_t"] = per_style(chosen["alpha"], n_latent, "alpha")
    return chosen


def run_perturb(
    inversion: str | Path,
    *,
    out: str | Path,
    checkpoint: str | Path | None = None,
    scales: str | Path | None = None,
    n_samples: int | None = None,
    rule: str | None = None,
    style_indices: Sequence[int] | None = None,
    conditioning_members: int | None = None,
    seed: int | None = None,
    overrides: Iterable[str] = (),
    overwrite: bool = False,
    progress: bool = True,
    device: str = "cpu",
) -> dict[str, Any]:
    """Enrich every ensemble of an inversion file; returns the JSON summary (also written)."""
    out = check_writable(out, overwrite)
    summary_file = check_writable(summary_path(out), overwrite)
    inv = load_inversion(inversion)
    model = load_model(checkpoint or inv.checkpoint, overrides, device)
    p = model.cfg.perturb
    n_out = n_samples or p.n_samples
    n_cond = conditioning_members or p.conditioning_members
    base_seed = p.seed if seed is None else seed
    chosen = settings(model, scales, rule=rule, style_indices=style_indices)
    sets = conditioning_sets(
        model, inv, n_conditioning=n_cond, step=p.inversion_step, keep_residual=p.keep_residual
    )
    w_avg = model.g.mean_w(model.cfg.invert.mean_latents, torch.Generator().manual_seed(0))[0]
    fields = np.empty((n_out, len(sets), *model.shape), dtype=np.float32)
    with ProgressBar("perturb", n_out * len(sets), unit="members", enabled=progress) as bar:
        for e, cond in enumerate(sets):
            gen = torch.Generator().manual_seed(derive_seed(base_seed, e))
            for lo in range(0, n_out, p.batch_size):
                k = min(p.batch_size, n_out - lo)
                with torch.no_grad():
                    norm = enrich(
                        model.g,
                        cond.ws,
                        k,
                        rule=chosen["rule"],
                        scale=chosen["scale_t"],
                        alpha=chosen["alpha_t"],
                        mask=chosen["mask"],
                        w_avg=w_avg,
                        generator=gen,
                        noises=cond.noises,
                        residual=cond.residual,
                        batch_size=k,
                        start=lo,
                    )
                fields[lo : lo + k, e] = model.transform.inverse(norm, cond.stats)
                bar.advance(k)
    ds = enriched_dataset(fields, sets, model, chosen, inv, n_out)
    write_dataset(ds, out, p.format if Path(out).suffix != ".zarr" else "zarr", overwrite=overwrite)
    summary = {
        "output": str(out),
        "inversion": str(inv.path),
        "checkpoint": str(model.path),
        "ensembles": len(sets),
        "members": n_out,
        "conditioning_members": len(sets[0].members) if sets else 0,
        "rule": chosen["rule"],
        "style_indices": chosen["style_indices"],
        "scale": chosen["scale_t"].tolist(),
        "alpha": chosen["alpha_t"].tolist(),
        "settings_from": chosen["source"],
        "keep_residual": p.keep_residual,
    }
    atomic_write_text(summary_file, json.dumps(summary, indent=2, default=str))
    return summary


def enriched_dataset(
    fields: np.ndarray,
    sets: list[Conditioning],
    model: LoadedModel,
    chosen: dict[str, Any],
    inv: Inversion,
    n_out: int,
) -> xr.Dataset:
    """``fields [M, T, C, H, W]`` (physical) as a Dataset on the training grid."""
    ycoord, xcoord = model.meta["coords"]["y"], model.meta["coords"]["x"]
    ydim, xdim = ycoord["name"], xcoord["name"]
    data = {}
    for c, var in enumerate(model.variables):
        attrs = (
            {"units": model.meta.get("units", {}).get(var, "")} if model.meta.get("units") else {}
        )
        data[var] = (("member", "time", ydim, xdim), fields[:, :, c], attrs)
    n_cond = max(len(s.members) for s in sets)
    cond = np.full((len(sets), n_cond), -1, dtype=np.int64)
    for e, s in enumerate(sets):
        cond[e, : len(s.members)] = s.members
    data["conditioning_member"] = (("time", "conditioning"), cond)
    coords = {
        "member": np.arange(n_out),
        "time": np.asarray([np.datetime64(s.date, "ns") for s in sets]),
        "lead_time": ("time", np.asarray([s.lead_time for s in sets]), {"units": "hours"}),
        ydim: (ydim, np.asarray(ycoord["values"]), ycoord.get("attrs", {})),
        xdim: (xdim, np.asarray(xcoord["values"]), xcoord.get("attrs", {})),
    }
    attrs = {
        "format": PERTURB_FORMAT,
        "geogan_config": json.dumps(model.cfg.model_dump(mode="json")),
        "checkpoint": str(model.path),
        "inversion": str(inv.path),
        "rule": chosen["rule"],
        "style_indices": json.dumps(chosen["style_indices"]),
        "scale": json.dumps(chosen["scale_t"].tolist()),
        "alpha": json.dumps(chosen["alpha_t"].tolist()),
        "title": "geogan stylegan enriched ensemble (generated members)",
    }
    return xr.Dataset(data, coords=coords, attrs=attrs)
