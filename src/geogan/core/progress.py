"""One progress bar for every long command: training, generation, evaluation, data writing.

Every bar shows what is done of the total, the rate in the command's own unit (steps/s,
times/s, volumes/s, tiles/s), the elapsed time and the ETA. ``enabled=False`` turns every
call into a no-op, so callers never branch on it. A time-limited training run counts seconds
of its limit instead of steps (``count=False``, ``rate=`` given by the caller), so its ETA is
the end of the limit, not of ``train.steps``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


class ProgressBar:
    """A rich progress bar of ``total`` units (``enabled=False``: no output at all).

    ``advance(n)`` or ``update(completed)`` move it; the rate is ``completed / elapsed`` in
    ``unit``/s unless the caller passes ``rate=`` (a text). ``fields`` names extra text
    columns (e.g. ``("steps", "losses")``) that ``advance``/``update`` fill by keyword.
    Use it as a context manager, or ``start()``/``stop()``; ``stop`` is idempotent.
    """

    def __init__(
        self,
        description: str,
        total: float,
        *,
        unit: str = "it",
        enabled: bool = True,
        count: bool = True,
        fields: Sequence[str] = (),
        transient: bool = True,
        console: Any = None,
    ) -> None:
        self.description, self.total, self.unit = description, float(total), unit
        self.enabled = bool(enabled)
        self.fields = tuple(fields)
        self.completed = 0.0
        self._count, self._transient, self._console = count, transient, console
        self._progress: Any = None
        self._task: Any = None
        self._started: float | None = None

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> ProgressBar:
        if self._started is not None:
            return self
        self._started = time.perf_counter()
        if not self.enabled:
            return self
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        columns: list[Any] = [TextColumn("[bold]{task.description}"), BarColumn()]
        if self._count:
            columns.append(MofNCompleteColumn())
        columns += [TextColumn(f"{{task.fields[{f}]}}") for f in self.fields]
        columns += [
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
        ]
        kwargs = {"transient": self._transient}
        if self._console is not None:
            kwargs["console"] = self._console
        self._progress = Progress(*columns, **kwargs)
        self._progress.start()
        self._task = self._progress.add_task(
            self.description, total=self.total, rate="", **{f: "" for f in self.fields}
        )
        return self

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __enter__(self) -> ProgressBar:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- state ---------------------------------------------------------------------------
    @property
    def elapsed(self) -> float:
        """Seconds since ``start`` (0 before)."""
        return 0.0 if self._started is None else time.perf_counter() - self._started

    @property
    def rate(self) -> float:
        """``completed / elapsed`` in ``unit``/s (0 before any progress)."""
        elapsed = self.elapsed
        return self.completed / elapsed if elapsed > 0 else 0.0

    @property
    def remaining_s(self) -> float | None:
        """The ETA in seconds at the current rate (``None`` before any progress)."""
        rate = self.rate
        return max(self.total - self.completed, 0.0) / rate if rate > 0 else None

    # -- moving it -----------------------------------------------------------------------
    def update(self, completed: float, *, rate: str | None = None, **fields: str) -> None:
        """Set the done amount to ``completed`` units; ``fields`` fill the extra columns."""
        if self._started is None:
            self.start()
        self.completed = float(completed)
        if self._progress is not None:
            text = rate if rate is not None else f"{self.rate:.2f} {self.unit}/s"
            self._progress.update(self._task, completed=self.completed, rate=text, **fields)

    def advance(self, n: float = 1, *, rate: str | None = None, **fields: str) -> None:
        """Move the bar by ``n`` units."""
        self.update(self.completed + n, rate=rate, **fields)


def track(
    items: Iterable[T],
    description: str,
    *,
    enabled: bool = True,
    unit: str = "it",
    total: float | None = None,
) -> Iterator[T]:
    """Yield ``items`` while a :class:`ProgressBar` advances by one per item.

    ``total`` defaults to ``len(items)``; without it (and no ``len``) the bar has no ETA.
    """
    if not enabled:
        yield from items
        return
    if total is None:
        total = len(items) if hasattr(items, "__len__") else 0  # type: ignore[arg-type]
    with ProgressBar(description, total, unit=unit) as bar:
        for item in items:
            yield item
            bar.advance()
