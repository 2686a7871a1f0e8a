"""The ``geogan`` command.

Errors the user can fix (:class:`GeoganError`) print one line and exit with
code 2; ``--debug`` shows the traceback. So does a full disk (ENOSPC, EDQUOT,
EFBIG), wherever it happens. A run stopped by SIGTERM/SIGUSR1 exits
with code 75 after writing a resume checkpoint.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path

import typer

from geogan.core.errors import GeoganError

app = typer.Typer(
    name="geogan",
    help=(
        "Generative adversarial networks for gridded Earth-science data.\n\n"
        "Examples:\n\n"
        "  geogan demo --out demo_run\n\n"
        "  geogan prepare configs/downscaling/radar_knmi_x8.yaml\n\n"
        "  geogan train configs/downscaling/radar_knmi_x8.yaml train.steps=2000 model.filters_gen=64\n\n"
        "  geogan generate runs/00000-knmi/model.safetensors --out ens.nc --members 16\n\n"
        "  geogan evaluate ens.nc --out report/"
    ),
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    add_completion=False,
)

_STATE = {"debug": False, "quiet": False}


@app.callback()
def _main_options(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks for errors."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    _STATE["debug"] = debug or bool(os.environ.get("GEOGAN_DEBUG"))
    _STATE["quiet"] = quiet


def _echo_json(summary: dict) -> None:
    if not _STATE["quiet"]:
        typer.echo(json.dumps(summary, indent=2, default=str))


@app.command(help=("Versions, device, threads and bf16 support.\n\nExample:\n\n  geogan info"))
def info() -> None:
    from geogan.cli.info import collect_info

    _echo_json(collect_info())


@app.command(
    help=(
        "Compute normalisation statistics (and optionally a Zarr patch store) for a config.\n\n"
        "Example:\n\n  geogan prepare configs/downscaling/radar_knmi_x8.yaml --patches 2000 data.patch_store=patches.zarr"
    ),
    context_settings={"allow_extra_args": False},
)
def prepare(
    config: Path = typer.Argument(..., help="YAML config file."),
    overrides: list[str] = typer.Argument(None, help="Dotted overrides such as data.factor=8."),
    patches: int = typer.Option(0, help="Training patches to write to data.patch_store (0: none)."),
    overwrite: bool = typer.Option(False, help="Replace existing statistics / patch store."),
) -> None:
    from geogan.config import load_config
    from geogan.recipes import get_recipe

    cfg = load_config(config, overrides or [])
    summary = get_recipe(cfg.recipe).prepare(cfg, patches=patches, overwrite=overwrite)
    _echo_json(summary)


@app.command(
    help=(
        "Train a model. Runs go to <run_root>/NNNNN-<name>/ unless --run-dir is given.\n\n"
        "Examples:\n\n  geogan train configs/downscaling/radar_knmi_x8.yaml train.steps=2000 model.filters_gen=64\n\n"
        "  geogan train cfg.yaml --run-dir runs/00003-knmi --resume auto\n\n"
        "  torchrun --nproc-per-node 4 -m geogan.cli.main train cfg.yaml"
    )
)
def train(
    config: Path = typer.Argument(..., help="YAML config file."),
    overrides: list[str] = typer.Argument(None, help="Dotted overrides such as train.steps=2000."),
    run_dir: Path = typer.Option(None, help="Run directory (default: a new numbered one)."),
    resume: str = typer.Option(
        None, help="'auto' (newest valid checkpoint in --run-dir) or a resume_*.safetensors path."
    ),
) -> None:
    from geogan.config import load_config
    from geogan.recipes.run import train_from_config

    cfg = load_config(config, overrides or [])
    summary = train_from_config(
        cfg, run_dir=run_dir, resume=resume, progress=not _STATE["quiet"], command=sys.argv
    )
    _echo_json(summary)


@app.command(
    help=(
        "Generate an ensemble for every selected time of a dataset with a trained model.\n\n"
        "Example:\n\n  geogan generate runs/00000-knmi/model.safetensors --out ens.nc --members 16 --times test\n\n"
        "  geogan generate model.safetensors data.truth.path=other_radar.nc --times all --out other.nc"
    )
)
def generate(
    checkpoint: Path = typer.Argument(..., help="Export checkpoint (model.safetensors)."),
    overrides: list[str] = typer.Argument(
        None, help="Dotted overrides of the checkpoint's config, e.g. data.truth.path=x.nc."
    ),
    out: Path = typer.Option(..., help="Output .nc or .zarr."),
    members: int = typer.Option(
        None, help="Ensemble size (default: generate.members of the config)."
    ),
    seed: int = typer.Option(None, help="Base seed; member m uses a seed derived from (seed, m)."),
    times: str = typer.Option("test", help="Which times: test, train or all."),
    config: Path = typer.Option(None, help="YAML config to use instead of the checkpoint's."),
    overwrite: bool = typer.Option(False, help="Replace an existing output."),
) -> None:
    from geogan.recipes import recipe_for_checkpoint

    recipe = recipe_for_checkpoint(checkpoint)
    summary = recipe.generate(
        checkpoint,
        out=out,
        overrides=overrides or [],
        members=members,
        seed=seed,
        times=times,
        config_path=config,
        overwrite=overwrite,
        progress=not _STATE["quiet"],
    )
    _echo_json(summary)


@app.command(
    help=(
        "Verify an ensemble against the truth and interpolation baselines; writes metrics.json, plots and report.html.\n\n"
        "Example:\n\n  geogan evaluate ens.nc --out report/"
    )
)
def evaluate(
    ensemble: Path = typer.Argument(..., help="Ensemble written by 'geogan generate'."),
    overrides: list[str] = typer.Argument(
        None, help="Dotted overrides of the run's config, e.g. evaluate.thresholds=[1,5]."
    ),
    out: Path = typer.Option(..., help="Output folder for the report."),
    overwrite: bool = typer.Option(False, help="Replace an existing report folder."),
) -> None:
    from geogan.recipes import recipe_for_ensemble

    recipe = recipe_for_ensemble(ensemble)
    summary = recipe.evaluate(ensemble, out=out, overrides=overrides or [], overwrite=overwrite)
    _echo_json(summary)


@app.command(
    help=(
        "Train, generate and evaluate on embedded real data (NASA Blue Marble imagery x4, land-sea mask);"
        " no network needed.\n\nExample:\n\n  geogan demo --out demo_run --minutes 7"
    )
)
def demo(
    out: Path = typer.Option(Path("demo_run"), help="Output folder."),
    minutes: float = typer.Option(7.0, help="Training time budget in minutes."),
    steps: int = typer.Option(
        None, help="Stop after this many steps (default: the time budget decides)."
    ),
    members: int = typer.Option(16, help="Ensemble members for the held-out region."),
    overwrite: bool = typer.Option(False, help="Replace an existing output folder."),
) -> None:
    from geogan.recipes.downscaling.demo import run_demo

    summary = run_demo(
        out,
        minutes=minutes,
        steps=steps,
        members=members,
        overwrite=overwrite,
        progress=not _STATE["quiet"],
    )
    _echo_json(summary)


def main(argv: list[str] | None = None) -> int:
    """Entry point: runs the app and maps errors to exit codes."""
    from geogan.training.trainer import Preempted

    try:
        app(args=argv, standalone_mode=False)
    except GeoganError as exc:
        if _STATE["debug"]:
            traceback.print_exc()
        typer.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except Preempted as exc:
        typer.echo(f"stopped: {exc}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return 130
    except OSError as exc:
        # a full disk outside the atomic writers (which name their output): logs, run folders
        from geogan.core.atomic import DISK_FULL_ERRNOS, write_failure

        if exc.errno not in DISK_FULL_ERRNOS:
            raise
        if _STATE["debug"]:
            traceback.print_exc()
        failure = write_failure(exc, exc.filename or "an output")
        typer.echo(f"error: {failure}", err=True)
        return failure.exit_code
    except Exception as exc:  # click usage errors carry their own exit codes
        import click

        if isinstance(exc, click.exceptions.Exit):
            return exc.exit_code
        if isinstance(exc, click.ClickException):
            exc.show()
            return 2
        if isinstance(exc, click.exceptions.Abort):
            return 1
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
