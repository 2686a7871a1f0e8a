"""Registries by name for models, losses, metrics, data readers and recipes.

A registry maps a short name (used in YAML configs) to a class or function.
Unknown names raise a :class:`ConfigError` that suggests the closest name.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from geogan.core.errors import ConfigError

T = TypeVar("T")


def closest(name: str, choices: list[str] | tuple[str, ...]) -> str | None:
    """The choice closest to ``name`` (difflib ratio >= 0.5), or None."""
    match = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return match[0] if match else None


class Registry(Generic[T]):
    """A named collection of objects, filled with the :meth:`register` decorator."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that registers ``obj`` under ``name``; names are unique."""

        def decorator(obj: T) -> T:
            if name in self._entries and self._entries[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        """The entry called ``name``; a ConfigError naming the closest entry otherwise."""
        try:
            return self._entries[name]
        except KeyError:
            hint = closest(name, self.names())
            suggestion = f"; did you mean {hint!r}?" if hint else ""
            raise ConfigError(
                f"unknown {self.kind} {name!r}{suggestion} (choices: {', '.join(self.names())})"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def items(self) -> list[tuple[str, T]]:
        return [(k, self._entries[k]) for k in self.names()]


MODELS: Registry[Any] = Registry("model")
LOSSES: Registry[Any] = Registry("loss")
METRICS: Registry[Any] = Registry("metric")
READERS: Registry[Any] = Registry("data reader")
RECIPES: Registry[Any] = Registry("recipe")
