"""What a recipe is: a plug-in that brings its own schema, data, models, phases and commands.

A recipe is a package ``geogan/recipes/<name>/`` (or any importable package named by a
``geogan.recipes`` entry point) whose ``__init__`` registers a :class:`Recipe` subclass::

    @RECIPES.register("myrecipe")
    class MyRecipe(Recipe):
        name = "myrecipe"
        config_schema = MyConfig               # a RunConfig subclass: its own sections
        def build_training(self, cfg, *, device, run_dir, dist_info): ...
        def generate(self, checkpoint, **options): ...
        def evaluate(self, ensemble, **options): ...

The engine (CLI, Trainer, loader) only talks to this interface; it never branches on a
recipe's name. Keep the package's ``__init__`` light (no torch at import time): every
recipe is imported when the CLI starts, to register its commands.
"""

from __future__ import annotations

import importlib
import importlib.resources
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from geogan.core.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import typer

    from geogan.config.schema import RunConfig
    from geogan.training.phases import TrainingSetup


class Recipe:
    """Base of every recipe; commands a recipe does not offer say so in one line."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    #: the pydantic schema of this recipe's configs (``recipe: <name>`` selects it)
    config_schema: ClassVar[type[RunConfig] | None] = None
    #: export checkpoints written by this recipe carry ``meta["format"]`` starting with this
    export_format: ClassVar[str] = ""

    # ------------------------------------------------------------------ configuration
    def schema(self) -> type[RunConfig]:
        """The config schema (imported lazily by recipes that keep ``__init__`` light)."""
        if self.config_schema is None:
            raise ConfigError(f"recipe {self.name!r} has no config schema")
        return self.config_schema

    def presets_dir(self) -> Path | None:
        """Folder of this recipe's presets (``<package>/presets``), or None."""
        try:
            folder = importlib.resources.files(type(self).__module__) / "presets"
        except (ModuleNotFoundError, TypeError):
            return None
        path = Path(str(folder))
        return path if path.is_dir() else None

    def migrate_config(self, tree: dict[str, Any]) -> list[str]:
        """Rename keys of older versions of this recipe's configs in place; notes per key."""
        return []

    # ---------------------------------------------------------------------- commands
    def prepare(self, cfg: RunConfig, *, patches: int = 0, overwrite: bool = False) -> dict:
        raise ConfigError(f"recipe {self.name!r} has no prepare step; train directly")

    def build_training(self, cfg: RunConfig, *, device, run_dir, dist_info) -> TrainingSetup:
        raise ConfigError(f"recipe {self.name!r} cannot be trained")

    def generate(self, checkpoint: str | Path, **options: Any) -> dict:
        raise ConfigError(f"recipe {self.name!r} has no generate command")

    def evaluate(self, ensemble: str | Path, **options: Any) -> dict:
        raise ConfigError(f"recipe {self.name!r} has no evaluate command")

    def demo(self, out: Path, **options: Any) -> dict:
        raise ConfigError(f"recipe {self.name!r} has no demo")

    def register_commands(self, app: typer.Typer) -> None:
        """Add this recipe's own subcommands (e.g. ``invert``, ``perturb``) to the CLI."""

    def commands(self) -> dict[str, Callable[..., Any]]:
        """Names of the extra commands this recipe adds (for ``geogan recipes``)."""
        return {}


def delegate(module: str, function: str) -> Callable[..., Any]:
    """A :class:`Recipe` method that imports ``module`` on first call and forwards to it.

    ``module`` is relative to the package that defines the recipe class (``"generate"`` in
    ``geogan/recipes/volume/__init__.py`` is ``geogan.recipes.volume.generate``), so that
    the recipe's ``__init__`` stays light: torch and the models load only when a command
    runs. Positional and keyword arguments are passed through unchanged.
    """

    def method(self: Recipe, *args: Any, **kwargs: Any) -> Any:
        package = type(self).__module__
        target = importlib.import_module(f".{module}", package=package)
        return getattr(target, function)(*args, **kwargs)

    method.__name__ = method.__qualname__ = function
    method.__doc__ = f"Forwards to ``{function}`` of the recipe's ``{module}`` module."
    return method
