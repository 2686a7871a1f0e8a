"""Checkpoints in a safe format: safetensors weights plus JSON metadata.

One file per checkpoint. Tensors are stored by safetensors (no pickle, no
code); everything else (config, step, model specs, normalisation, the
non-tensor parts of optimizer and RNG states) is JSON in the safetensors
header metadata. Loading never unpickles. Legacy ``.pt`` files are read only
with ``torch.load(weights_only=True)``, which refuses pickled code.

Two kinds (``meta["kind"]``):
- ``export``: EMA generator weights, model spec, config, normalisation: enough to generate.
- ``resume``: all models, optimizers, scaler, step, RNG states, sampler position.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

import geogan
from geogan.core.atomic import atomic_path
from geogan.core.errors import CheckpointError

FORMAT_VERSION = 1
SUFFIX = ".safetensors"


def save_checkpoint(
    path: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
) -> Path:
    """Write ``tensors`` and JSON ``meta`` atomically to ``path``.

    Tensors are made contiguous CPU copies; shared storage is split (safetensors
    refuses aliasing), so tied weights are stored twice.
    """
    path = Path(path)
    clean = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    header = {
        "geogan_format": str(FORMAT_VERSION),
        "geogan_version": geogan.__version__,
        "meta": json.dumps(meta, default=_json_default),
    }
    with atomic_path(path) as tmp:
        save_file(clean, str(tmp), metadata=header)
    return path


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint: ``(tensors, meta)``. Never unpickles anything but plain tensors."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found; check the path or the run directory")
    if path.suffix in {".pt", ".pth", ".ckpt"}:
        return _load_legacy(path)
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            header = fh.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"checkpoint {path} is not a readable safetensors file ({exc}); it may be truncated"
        ) from None
    if "geogan_format" not in header:
        raise CheckpointError(
            f"checkpoint {path} was not written by geogan (no geogan_format header)"
        )
    try:
        version = int(header["geogan_format"])
        meta = json.loads(header.get("meta", "{}"))
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        raise CheckpointError(
            f"checkpoint {path} has a corrupt geogan header ({str(exc)[:120]}); use another checkpoint"
        ) from None
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format {version}, newer than this geogan reads ({FORMAT_VERSION}); upgrade geogan"
        )
    if not isinstance(meta, dict):
        raise CheckpointError(
            f"checkpoint {path} has a corrupt geogan header (metadata is not a JSON object)"
        )
    meta["geogan_version"] = header.get("geogan_version")
    meta["format_version"] = version
    return tensors, meta


def _load_legacy(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """A legacy torch file: a flat dict of tensors, loaded with ``weights_only=True``."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, AttributeError, EOFError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"refused to load {path}: it is not a plain tensor file and may contain code ({first[:160]})"
        ) from None
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"legacy checkpoint {path} must be a flat dict of tensors")
    return dict(obj), {"kind": "legacy", "format_version": 0}


def module_tensors(prefix: str, module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``{prefix/param: tensor}`` for a module's state dict (DDP / compile unwrapped)."""
    inner = getattr(module, "module", module)
    inner = getattr(inner, "_orig_mod", inner)
    return {f"{prefix}/{k}": v for k, v in inner.state_dict().items()}


def load_module_tensors(
    prefix: str, module: torch.nn.Module, tensors: dict[str, torch.Tensor]
) -> None:
    inner = getattr(module, "module", module)
    inner = getattr(inner, "_orig_mod", inner)
    sd = {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + "/")}
    try:
        inner.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        msg = str(exc).splitlines()[0]
        raise CheckpointError(f"weights for {prefix!r} do not match the model: {msg}") from None


def flatten_state(prefix: str, state: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Move every tensor of a nested state (optimizer, scaler) into ``tensors``.

    Returns a JSON-able copy where each tensor is replaced by ``{"__tensor__": key}``.
    """
    if isinstance(state, torch.Tensor):
        key = f"{prefix}"
        tensors[key] = state
        return {"__tensor__": key}
    if isinstance(state, dict):
        return {
            "__dict__": [[k, flatten_state(f"{prefix}/{k}", v, tensors)] for k, v in state.items()]
        }
    if isinstance(state, (list, tuple)):
        return [flatten_state(f"{prefix}/{i}", v, tensors) for i, v in enumerate(state)]
    return state


def unflatten_state(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`flatten_state` (dict keys keep their types, int or str)."""
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__dict__" in obj:
            return {k: unflatten_state(v, tensors) for k, v in obj["__dict__"]}
        return {k: unflatten_state(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [unflatten_state(v, tensors) for v in obj]
    return obj
