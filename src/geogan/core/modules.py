"""Models that rebuild themselves from JSON constructor arguments.

``@register_model("name")`` records the keyword arguments a model was built
with in ``model.model_spec``; a checkpoint stores that spec as JSON beside the
weights, and :func:`build_model` rebuilds the same architecture without
pickling any code (as PhysicsNeMo ``Module`` / diffusers ``register_to_config``).
Constructor arguments must therefore be keyword-only JSON values.
"""

from __future__ import annotations

import functools
import inspect
import json
from typing import Any

from torch import nn

from geogan.core.errors import CheckpointError
from geogan.core.registry import MODELS


def register_model(name: str):
    """Class decorator: register an ``nn.Module`` subclass and record its init kwargs."""

    def decorator(cls: type[nn.Module]) -> type[nn.Module]:
        original_init = cls.__init__

        @functools.wraps(original_init)
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            if args:
                raise TypeError(f"{cls.__name__} takes keyword arguments only")
            original_init(self, **kwargs)
            if type(self) is cls:  # the most derived registered class records its spec
                # Store defaults too: a later change of a default must not silently
                # rebuild an old checkpoint with a different architecture.
                bound = inspect.signature(original_init).bind(self, **kwargs)
                bound.apply_defaults()
                kwargs = {k: v for k, v in bound.arguments.items() if k != "self"}
                kwargs = json.loads(json.dumps(kwargs)) if _jsonable(kwargs) else kwargs
                try:
                    json.dumps(kwargs)
                except TypeError as exc:
                    raise TypeError(
                        f"{cls.__name__} arguments must be JSON values: {exc}"
                    ) from None
                self.model_spec = {"name": name, "kwargs": dict(kwargs)}

        cls.__init__ = __init__  # type: ignore[method-assign]
        cls.registry_name = name  # type: ignore[attr-defined]
        return MODELS.register(name)(cls)

    return decorator


def _jsonable(obj: Any) -> bool:
    try:
        json.dumps(obj)
    except TypeError:
        return False
    return True


def build_model(spec: dict[str, Any]) -> nn.Module:
    """Rebuild a model from ``{"name": ..., "kwargs": {...}}``."""
    try:
        cls = MODELS.get(spec["name"])
        return cls(**spec.get("kwargs", {}))
    except (KeyError, TypeError) as exc:
        raise CheckpointError(f"cannot rebuild model from spec {spec}: {exc}") from None


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside DistributedDataParallel and ``torch.compile`` wrappers (any nesting)."""
    while True:
        inner = getattr(model, "_orig_mod", None)  # torch.compile's OptimizedModule
        if inner is None and isinstance(getattr(model, "module", None), nn.Module):
            inner = model.module  # DistributedDataParallel / DataParallel
        if inner is None:
            return model
        model = inner


def model_spec(model: nn.Module) -> dict[str, Any]:
    """The spec of a registered model (unwrapping DDP / torch.compile wrappers)."""
    inner = unwrap(model)
    spec = getattr(inner, "model_spec", None)
    if spec is None:
        raise TypeError(f"{type(inner).__name__} is not a registered geogan model")
    return spec
