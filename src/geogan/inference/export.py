"""Load an export checkpoint (any recipe): its models, rebuilt from their specs, and metadata.

An export (``meta["kind"] == "export"``) holds the weights of the models needed
to generate, ``meta["models"] = {name: spec}`` (registered model name and
constructor arguments, see :mod:`geogan.core.modules`), the recipe's export
format (``meta["format"]``, e.g. ``"<recipe>/<version>"``), the config and the
normalisation. Nothing is unpickled; the checksums are verified on load.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from geogan.core.checkpoint import load_checkpoint, load_module_tensors
from geogan.core.errors import CheckpointError, ConfigError
from geogan.core.modules import build_model

__all__ = ["format_matches", "load_export"]


def format_matches(fmt: Any, format_prefix: str) -> bool:
    """Whether export format ``fmt`` belongs to ``format_prefix``.

    ``"name"`` (or ``"name/"``) matches ``"name"`` and every ``"name/<version>"``;
    ``"name/2"`` matches that version only (and ``"name/2/..."``).
    """
    if not isinstance(fmt, str):
        return False
    base = format_prefix.rstrip("/")
    return fmt == base or fmt.startswith(base + "/")


def load_export(
    path: str | os.PathLike,
    *,
    format_prefix: str | None = None,
    device: str | torch.device = "cpu",
) -> tuple[dict[str, nn.Module], dict[str, Any]]:
    """``(models, meta)`` of an export checkpoint: every model in ``meta["models"]``.

    Each model is rebuilt with :func:`~geogan.core.modules.build_model` from its
    spec, gets its weights (``"<name>/<param>"`` tensors; the file is read once),
    and is returned in eval mode, without gradients, on ``device``. The module
    that registers a model class must have been imported (the recipe that calls
    this has). Refuses, with a one-line ``CheckpointError``, a checkpoint that is
    not an export (e.g. a resume state) or, with ``format_prefix`` (see
    :func:`format_matches`), one written in another recipe's format.
    """
    tensors, meta = load_checkpoint(path)
    kind = meta.get("kind")
    if kind != "export":
        raise CheckpointError(
            f"{path} is a {kind!r} checkpoint, not an export; use <run>/model.safetensors "
            "or checkpoints/export_*.safetensors"
        )
    fmt = meta.get("format")
    if format_prefix is not None and not format_matches(fmt, format_prefix):
        raise CheckpointError(
            f"{path} is an export in format {fmt!r}, not {format_prefix!r} (written by "
            "another recipe or version); generate with the recipe that wrote it"
        )
    specs = meta.get("models")
    if not isinstance(specs, dict) or not specs:
        raise CheckpointError(f"{path} is an export that names no models (meta['models'])")
    models: dict[str, nn.Module] = {}
    for name, spec in specs.items():
        try:
            model = build_model(spec)
        except ConfigError as exc:  # an unknown (unregistered) model name
            raise CheckpointError(
                f"{path}: cannot rebuild model {name!r} ({exc}); import the module that "
                "registers it, or upgrade geogan"
            ) from None
        load_module_tensors(name, model, tensors)
        # Each weight then lives once, in its model, not also in the loaded dict.
        for key in [k for k in tensors if k.startswith(name + "/")]:
            del tensors[key]
        models[name] = model.to(device).eval().requires_grad_(False)
    return models, meta
