"""The commands recipe 5 adds to ``geogan``: ``invert``, ``tune``, ``perturb``.

Kept light (typer only): the CLI imports it at start-up; the work is imported when a
command runs. Each prints its JSON summary (unless ``geogan --quiet``).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

INVERT_HELP = (
    "Invert real ensemble members into a trained StyleGAN2's latent space (W or W+) and write "
    "the latents (NetCDF) plus a JSON summary.\n\n"
    "Examples:\n\n"
    "  geogan invert runs/00000-era5/model.safetensors --out inv.nc --times 2017-01-02T12:00 "
    "--members 0,1,2,3,4\n\n"
    "  geogan invert model.safetensors --out inv.nc --times 2021-06-01/2021-06-30 "
    "--lead-times 3,6,9 invert.steps=500 invert.space=w"
)
TUNE_HELP = (
    "Choose the perturbation intensity per style input so that enriched ensembles match the "
    "mean and the spread (times 1 + inflate) of the held-out members of the inverted "
    "ensembles; writes a JSON file for 'geogan perturb --scales'.\n\n"
    "Example:\n\n  geogan tune inv_tuning.nc --out scales.json tune.steps=300 perturb.rule=normal"
)
PERTURB_HELP = (
    "Enrich inverted ensembles: N new members per ensemble around the conditioning members, "
    "written in physical units with a member dimension (NetCDF/Zarr).\n\n"
    "Examples:\n\n  geogan perturb inv.nc --out enriched.nc --scales scales.json --n-samples 100\n\n"
    "  geogan perturb inv.nc --out enriched.nc --rule random --style-indices 0,1,2,3 "
    "--conditioning-members 5"
)


def _quiet() -> bool:
    try:
        import click

        root = click.get_current_context().find_root()
        return bool(root.params.get("quiet"))
    except RuntimeError:
        return False


def _echo(summary: dict) -> None:
    if not _quiet():
        typer.echo(json.dumps(summary, indent=2, default=str))


def _floats(text: str | None) -> list[float] | None:
    from geogan.recipes.stylegan.workflow import parse_floats

    return parse_floats(text, "--lead-times")


def invert_command(
    checkpoint: Path = typer.Argument(..., help="Export checkpoint (model.safetensors)."),
    overrides: list[str] = typer.Argument(
        None, help="Dotted overrides of the run's config, e.g. invert.steps=500."
    ),
    out: Path = typer.Option(..., help="Output inversion file (.nc or .zarr)."),
    times: str = typer.Option(
        "test",
        help="Dates: 'test' (not in data.dates), 'train', 'all', a range START/END "
        "(inclusive) or a list T1,T2.",
    ),
    lead_times: str = typer.Option(None, help="Lead times in hours, e.g. 3,6,9 (default all)."),
    members: str = typer.Option(None, help="Members to invert, e.g. 0,1,2,3,4 (default all)."),
    config: Path = typer.Option(None, help="YAML config to use instead of the checkpoint's."),
    device: str = typer.Option("cpu", help="cpu or cuda[:N]."),
    overwrite: bool = typer.Option(False, help="Replace existing outputs."),
) -> None:
    from geogan.recipes.stylegan.invert import run_invert
    from geogan.recipes.stylegan.workflow import parse_ints

    _echo(
        run_invert(
            checkpoint,
            out=out,
            times=times,
            lead_times=_floats(lead_times),
            members=parse_ints(members, "--members"),
            overrides=overrides or [],
            config_path=config,
            overwrite=overwrite,
            progress=not _quiet(),
            device=device,
        )
    )


def tune_command(
    inversion: Path = typer.Argument(..., help="Inversion file of the tuning ensembles."),
    overrides: list[str] = typer.Argument(
        None, help="Dotted overrides, e.g. tune.steps=300 tune.inflate=0.1."
    ),
    out: Path = typer.Option(..., help="Output JSON of tuned scales."),
    checkpoint: Path = typer.Option(None, help="Export (default: the inversion's)."),
    rule: str = typer.Option(None, help="random, normal, w or extrapolation (default config)."),
    style_indices: str = typer.Option(None, help="Style inputs to perturb, e.g. 0,1,2,3."),
    conditioning_members: int = typer.Option(None, help="Members per ensemble to start from."),
    device: str = typer.Option("cpu", help="cpu or cuda[:N]."),
    overwrite: bool = typer.Option(False, help="Replace an existing output."),
) -> None:
    from geogan.recipes.stylegan.tune import run_tune
    from geogan.recipes.stylegan.workflow import parse_ints

    _echo(
        run_tune(
            inversion,
            out=out,
            checkpoint=checkpoint,
            rule=rule,
            style_indices=parse_ints(style_indices, "--style-indices"),
            conditioning_members=conditioning_members,
            overrides=overrides or [],
            overwrite=overwrite,
            progress=not _quiet(),
            device=device,
        )
    )


def perturb_command(
    inversion: Path = typer.Argument(..., help="Inversion file written by 'geogan invert'."),
    overrides: list[str] = typer.Argument(
        None, help="Dotted overrides, e.g. perturb.keep_residual=false perturb.alpha=0.2."
    ),
    out: Path = typer.Option(..., help="Output enriched ensemble (.nc or .zarr)."),
    checkpoint: Path = typer.Option(None, help="Export (default: the inversion's)."),
    scales: Path = typer.Option(None, help="Tuned scales from 'geogan tune'."),
    n_samples: int = typer.Option(None, help="Members out per ensemble (default config)."),
    rule: str = typer.Option(None, help="random, normal, w or extrapolation (default config)."),
    style_indices: str = typer.Option(None, help="Style inputs to perturb, e.g. 0,1,2,3."),
    conditioning_members: int = typer.Option(None, help="Members per ensemble to start from."),
    seed: int = typer.Option(None, help="Base seed (default perturb.seed)."),
    device: str = typer.Option("cpu", help="cpu or cuda[:N]."),
    overwrite: bool = typer.Option(False, help="Replace existing outputs."),
) -> None:
    from geogan.recipes.stylegan.perturb import run_perturb
    from geogan.recipes.stylegan.workflow import parse_ints

    _echo(
        run_perturb(
            inversion,
            out=out,
            checkpoint=checkpoint,
            scales=scales,
            n_samples=n_samples,
            rule=rule,
            style_indices=parse_ints(style_indices, "--style-indices"),
            conditioning_members=conditioning_members,
            seed=seed,
            overrides=overrides or [],
            overwrite=overwrite,
            progress=not _quiet(),
            device=device,
        )
    )
