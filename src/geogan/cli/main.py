"""The ``geogan`` command.

Commands are recipe-independent: the config's ``recipe:`` key (or the recipe recorded in a
checkpoint or output file) picks the recipe, whose plug-in does the work; recipes add
their own commands (``geogan recipes`` lists them).

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
        "  geogan recipes\n\n"
        "  geogan prepare downscaling/radar_knmi_x8\n\n"
        "  geogan train downscaling/radar_knmi_x8 train.steps=2000 model.filters_gen=64\n\n"
        "  geogan generate runs/00000-knmi_x8/model.safetensors --out ens.nc --members 16\n\n"
        "  geogan evaluate ens.nc --out report/"
    ),
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    add_completion=False,
)

_STATE = {"debug": False, "quiet": False}

TIMES_HELP = (
    "Which times: 'test' (the held-out times of the config's data.split: the last share of "
    "each day, or of the record), 'train', 'all', a date range 'START/END' (inclusive, e.g. "
    "2021-06-01/2021-06-02T12:00) or a comma-separated list of dates."
)


@app.callback()
def _main_options(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks for errors."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    _STATE["debug"] = debug or bool(os.environ.get("GEOGAN_DEBUG"))
    _STATE["quiet"] = quiet


def echo_json(summary: dict) -> None:
    """Print a command's summary as JSON (unless ``--quiet``)."""
    if not _STATE["quiet"]:
        typer.echo(json.dumps(summary, indent=2, default=str))


def quiet() -> bool:
    """Whether ``--quiet`` was given (recipes' commands use it for their progress bars)."""
    return bool(_STATE["quiet"])


@app.command(help=("Versions, device, threads and bf16 support.\n\nExample:\n\n  geogan info"))
def info() -> None:
    from geogan.cli.info import collect_info

    echo_json(collect_info())


@app.command(
    help=(
        "The recipes this installation knows: description, presets, extra commands.\n\n"
        "Example:\n\n  geogan recipes"
    )
)
def recipes() -> None:
    from geogan.config.loader import list_presets
    from geogan.recipes import all_recipes

    out = {}
    for r in all_recipes():
        folder = r.presets_dir()
        out[r.name] = {
            "description": r.description,
            "presets": [f"{r.name}/{p}" for p in list_presets(folder)] if folder else [],
            "commands": sorted(r.commands()),
        }
    echo_json(out)


@app.command(
    help=(
        "Compute normalisation statistics (and optionally a Zarr patch store) for a config.\n\n"
        "Example:\n\n  geogan prepare downscaling/radar_knmi_x8 --patches 2000 data.patch_store=patches.zarr"
    ),
    context_settings={"allow_extra_args": False},
)
def prepare(
    config: Path = typer.Argument(..., help="YAML config file or recipe preset."),
    overrides: list[str] = typer.Argument(None, help="Dotted overrides such as data.factor=8."),
    patches: int = typer.Option(0, help="Training patches to write to data.patch_store (0: none)."),
    overwrite: bool = typer.Option(False, help="Replace existing statistics / patch store."),
) -> None:
    from geogan.recipes import get_recipe
    from geogan.recipes.config import load_run_config

    cfg = load_run_config(config, overrides or [])
    summary = get_recipe(cfg.recipe).prepare(cfg, patches=patches, overwrite=overwrite)
    echo_json(summary)


@app.command(
    help=(
        "Train a model. Runs go to <run_root>/NNNNN-<name>/ unless --run-dir is given.\n\n"
        "Examples:\n\n  geogan train downscaling/radar_knmi_x8 train.steps=2000 model.filters_gen=64\n\n"
        "  geogan train cfg.yaml --run-dir runs/00003-knmi --resume auto\n\n"
        "  torchrun --nproc-per-node 4 -m geogan.cli.main train cfg.yaml"
    )
)
def train(
    config: Path = typer.Argument(..., help="YAML config file or recipe preset."),
    overrides: list[str] = typer.Argument(None, help="Dotted overrides such as train.steps=2000."),
    run_dir: Path = typer.Option(None, help="Run directory (default: a new numbered one)."),
    resume: str = typer.Option(
        None, help="'auto' (newest intact checkpoint in --run-dir) or a resume_*.safetensors path."
    ),
    restart: bool = typer.Option(
        False,
        help="Start over from step 0 in a --run-dir that holds checkpoints (they are moved aside).",
    ),
) -> None:
    from geogan.recipes.config import load_run_config
    from geogan.recipes.run import train_from_config

    cfg = load_run_config(config, overrides or [])
    summary = train_from_config(
        cfg,
        run_dir=run_dir,
        resume=resume,
        restart=restart,
        progress=not _STATE["quiet"],
        command=sys.argv,
    )
    echo_json(summary)


@app.command(
    help=(
        "Generate an ensemble with a trained model (any recipe).\n\n"
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
    times: str = typer.Option("test", help=TIMES_HELP),
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
    echo_json(summary)


@app.command(
    help=(
        "Verify an output against the truth and the recipe's baselines; writes metrics.json, "
        "plots and report.html.\n\nExample:\n\n  geogan evaluate ens.nc --out report/"
    )
)
def evaluate(
    ensemble: Path = typer.Argument(..., help="Output written by 'geogan generate'."),
    overrides: list[str] = typer.Argument(
        None, help="Dotted overrides of the run's config, e.g. evaluate.thresholds=[1,5]."
    ),
    out: Path = typer.Option(..., help="Output folder for the report."),
    overwrite: bool = typer.Option(False, help="Replace an existing report folder."),
) -> None:
    from geogan.recipes import recipe_for_ensemble

    recipe = recipe_for_ensemble(ensemble)
    summary = recipe.evaluate(ensemble, out=out, overrides=overrides or [], overwrite=overwrite)
    echo_json(summary)


@app.command(
    help=(
        "Train, generate and evaluate a recipe on data shipped with the install; no network.\n"
        "The default recipe (downscaling) uses NASA Blue Marble imagery x4 and a land-sea mask.\n\n"
        "Examples:\n\n  geogan demo --out demo_run --minutes 7\n\n"
        "  geogan recipes   # which recipes have a demo: geogan demo --recipe NAME"
    )
)
def demo(
    recipe: str = typer.Option("downscaling", help="Which recipe's demo (see 'geogan recipes')."),
    out: Path = typer.Option(Path("demo_run"), help="Output folder."),
    minutes: float = typer.Option(None, help="Training time budget in minutes (recipe default)."),
    steps: int = typer.Option(
        None, help="Stop after this many steps (default: the time budget decides)."
    ),
    members: int = typer.Option(16, help="Ensemble members for the held-out data."),
    overwrite: bool = typer.Option(False, help="Replace an existing output folder."),
) -> None:
    from geogan.recipes import get_recipe

    options = {"steps": steps, "members": members, "overwrite": overwrite}
    if minutes is not None:
        options["minutes"] = minutes
    summary = get_recipe(recipe).demo(out, progress=not _STATE["quiet"], **options)
    echo_json(summary)


@app.command(
    help=(
        "Build an image list (JSON/YAML) from a folder with one sub-folder per key (x, s, d, "
        "h, w, ...), optionally inside domain folders (rf, rn, sf, sn).\n\n"
        "Example:\n\n  geogan index data/floods --out data/floods/index.yaml --val-fraction 0.2"
    )
)
def index(
    folder: Path = typer.Argument(..., help="Folder to index."),
    out: Path = typer.Option(
        None, help="List to write (.json or .yaml; default FOLDER/index.json)."
    ),
    val_fraction: float = typer.Option(0.1, help="Share of entries in the validation split."),
    seed: int = typer.Option(0, help="Seed of the train/val split."),
    overwrite: bool = typer.Option(False, help="Replace an existing list."),
) -> None:
    from geogan.cli.index import index_command

    echo_json(index_command(folder, out, val_fraction, seed, overwrite, _STATE["quiet"]))


@app.command(
    help=(
        "Expand an experiment file into one run directory per run (resolved config + job "
        "script from a template, SLURM by default); --local runs them here one after another.\n\n"
        "Examples:\n\n  geogan sweep exp.yaml --out sweeps/exp1\n\n"
        "  geogan sweep exp.yaml --out sweeps/exp1 --local"
    )
)
def sweep(
    experiment: Path = typer.Argument(..., help="Experiment YAML file."),
    out: Path = typer.Option(..., help="Folder for the run directories."),
    local: bool = typer.Option(False, help="Run the runs here, one after another."),
    template: str = typer.Option(
        None, help="Job-script template: 'slurm', 'slurm_multinode' or a file path."
    ),
    dry_run: bool = typer.Option(False, help="Only list the runs; write nothing."),
    overwrite: bool = typer.Option(False, help="Replace an existing output folder."),
) -> None:
    from geogan.cli.sweep import sweep_command

    echo_json(sweep_command(experiment, out, local, template, dry_run, overwrite, _STATE["quiet"]))


def _register_recipe_commands() -> None:
    """Recipes add their own subcommands (e.g. ``invert``, ``perturb``, ``tune``)."""
    from geogan.recipes import all_recipes

    for recipe in all_recipes():
        recipe.register_commands(app)


_register_recipe_commands()


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
