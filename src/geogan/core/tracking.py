"""Experiment tracking: ``stats.jsonl`` always, TensorBoard by default, MLflow optionally.

Only the main rank writes. Scalars are appended to ``stats.jsonl`` (one JSON
object per logged step) so a run can be inspected without TensorBoard.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch


class Tracker:
    def __init__(
        self,
        run_dir: str | Path,
        *,
        enabled: bool = True,
        tensorboard: bool = True,
        mlflow: bool = False,
        params: dict[str, Any] | None = None,
    ) -> None:
        self.enabled = enabled
        self.run_dir = Path(run_dir)
        self._tb = None
        self._mlflow = None
        self._stats = None
        self._tensorboard = tensorboard
        if not enabled:
            return
        self._open()
        if mlflow:
            try:
                import mlflow as _mlflow
            except ImportError:  # optional extra
                from geogan.core.errors import ConfigError

                raise ConfigError(
                    "train.mlflow is true but mlflow is not installed; pip install 'geogan[mlflow]' or set train.mlflow=false"
                ) from None
            self._mlflow = _mlflow
            _mlflow.set_tracking_uri(f"file://{(self.run_dir / 'mlruns').resolve()}")
            _mlflow.start_run(run_name=self.run_dir.name)
            if params:
                _mlflow.log_params(_flatten(params))

    def _open(self) -> None:
        """Open the writers (again, after :meth:`close`: a Trainer may ``fit`` twice)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self._stats is None:
            self._stats = open(self.run_dir / "stats.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        if self._tensorboard and self._tb is None:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(self.run_dir / "tensorboard"))

    def log_scalars(self, step: int, scalars: dict[str, float]) -> None:
        if not self.enabled:
            return
        self._open()
        record = {"step": step, "time": time.time(), **{k: float(v) for k, v in scalars.items()}}
        self._stats.write(json.dumps(record) + "\n")
        self._stats.flush()
        if self._tb is not None:
            for k, v in scalars.items():
                self._tb.add_scalar(k, float(v), step)
        if self._mlflow is not None:
            self._mlflow.log_metrics(
                {k.replace("/", "_"): float(v) for k, v in scalars.items()}, step=step
            )

    def log_images(self, step: int, tag: str, images: torch.Tensor) -> None:
        """``images``: ``[N, 1|3, H, W]`` in [0, 1]."""
        if not self.enabled or self._tb is None:
            return
        self._tb.add_images(tag, images.clamp(0, 1), step)

    def close(self) -> None:
        if self._stats is not None:
            self._stats.close()
            self._stats = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._mlflow is not None:
            self._mlflow.end_run()
            self._mlflow = None


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = str(v)[:250]
    return out
