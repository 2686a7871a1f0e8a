"""Experiment tracking: ``stats.jsonl`` always, TensorBoard by default, MLflow optionally.

Only the main rank writes. Scalars are appended to ``stats.jsonl`` (one JSON
object per logged step) so a run can be inspected without TensorBoard.

MLflow (``train.mlflow: true``, extra ``geogan[mlflow]``):

- tracking URI: the ``MLFLOW_TRACKING_URI`` environment variable, else a file
  store in the run directory, ``file://<run_dir>/mlruns``; experiment:
  ``MLFLOW_EXPERIMENT_NAME``, else ``geogan``. MLflow 3 refuses file stores
  unless ``MLFLOW_ALLOW_FILE_STORE`` is true; for a file URI we set it (when the
  environment does not say otherwise), since a local folder beside the run is
  the point of the default.
- the MLflow run is named after the run directory; its id is kept in
  ``<run_dir>/mlflow_run.json`` so that a resumed run (``--resume auto``, a
  requeued job) continues the same MLflow run instead of starting another.
- params: the config flattened to dotted keys (``train.gen_optim.lr``), values
  cut to MLflow's length limit, sent in batches of at most 100.
- metrics: every :meth:`Tracker.log_scalars` call, with its step.
- artifacts: the resolved ``config.yaml`` (and the other reproducibility files
  present in the run directory) under ``run/``.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

import torch

from geogan.core.atomic import atomic_write_text
from geogan.core.errors import ConfigError

__all__ = ["MLFLOW_RUN_FILE", "Tracker", "flatten_params"]

MLFLOW_RUN_FILE = "mlflow_run.json"
"""Written in the run directory: ``{"tracking_uri": ..., "run_id": ...}``."""

# MLflow's limits (mlflow.utils.validation); the conservative values of older servers
_MAX_PARAM_VALUE = 500
_MAX_KEY = 250
_PARAMS_PER_BATCH = 100
_METRICS_PER_BATCH = 1000
_ARTIFACTS = ("config.yaml", "reproduce.json", "command.txt", "git.txt", "pip_freeze.txt")
_BAD_KEY_CHARS = re.compile(r"[^\w./\- ]")


class Tracker:
    """Writes scalars (and images) of one run; a no-op when ``enabled`` is false.

    ``params`` (the run's config as a nested mapping) are logged to MLflow once.
    """

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
        self._mlflow: _MlflowRun | None = None
        self._stats = None
        self._tensorboard = tensorboard
        if not enabled:
            return
        self._open()
        if mlflow:
            self._mlflow = _MlflowRun(self.run_dir, params or {})

    def _open(self) -> None:
        """Open the writers (again, after :meth:`close`: a Trainer may ``fit`` twice)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self._stats is None:
            self._stats = open(self.run_dir / "stats.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        if self._tensorboard and self._tb is None:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(self.run_dir / "tensorboard"))
        if self._mlflow is not None:
            self._mlflow.reopen()

    def log_scalars(self, step: int, scalars: dict[str, float]) -> None:
        """Append ``scalars`` at ``step`` to ``stats.jsonl``, TensorBoard and MLflow."""
        if not self.enabled:
            return
        self._open()
        values = {k: float(v) for k, v in scalars.items()}
        record = {"step": step, "time": time.time(), **values}
        self._stats.write(json.dumps(record) + "\n")
        self._stats.flush()
        if self._tb is not None:
            for k, v in values.items():
                self._tb.add_scalar(k, v, step)
        if self._mlflow is not None:
            self._mlflow.log_metrics(step, values)

    def log_images(self, step: int, tag: str, images: torch.Tensor) -> None:
        """``images``: ``[N, 1|3, H, W]`` in [0, 1]."""
        if not self.enabled or self._tb is None:
            return
        self._tb.add_images(tag, images.clamp(0, 1), step)

    def close(self, status: str = "FINISHED") -> None:
        """Close the writers; the MLflow run ends with ``status`` (FINISHED, FAILED, KILLED)."""
        if self._stats is not None:
            self._stats.close()
            self._stats = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._mlflow is not None:
            self._mlflow.close(status)


def flatten_params(params: dict[str, Any], *, max_value: int = _MAX_PARAM_VALUE) -> dict[str, str]:
    """A nested mapping as ``{"a.b.c": "value"}`` with MLflow-safe keys and values.

    Lists and other values are written as JSON (``[2, 2]``); values longer than
    ``max_value`` characters are cut and end in ``...``; characters MLflow refuses
    in keys become ``_``.
    """
    out: dict[str, str] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict) and node:
            for k, v in node.items():
                walk(v, f"{prefix}{k}.")
            return
        key = _BAD_KEY_CHARS.sub("_", prefix[:-1])[:_MAX_KEY]
        text = node if isinstance(node, str) else json.dumps(node, default=str)
        if len(text) > max_value:
            text = text[: max_value - 3] + "..."
        out[key] = text

    for k, v in params.items():
        walk(v, f"{k}.")
    return out


def _metric_key(name: str) -> str:
    key = _BAD_KEY_CHARS.sub("_", name).strip("/") or "value"
    return re.sub(r"/+", "/", key).replace("..", "_")[:_MAX_KEY]


class _MlflowRun:
    """One MLflow run, driven through ``MlflowClient`` (no global active-run state)."""

    def __init__(self, run_dir: Path, params: dict[str, Any]) -> None:
        try:
            import mlflow  # noqa: F401
            from mlflow.tracking import MlflowClient
        except ImportError:  # optional extra
            raise ConfigError(
                "train.mlflow is true but mlflow is not installed; "
                "pip install 'geogan[mlflow]' or set train.mlflow=false"
            ) from None
        from mlflow.entities import Metric, Param

        self._Metric, self._Param = Metric, Param
        self.run_dir = run_dir
        self.uri = os.environ.get("MLFLOW_TRACKING_URI") or (run_dir / "mlruns").resolve().as_uri()
        if self.uri.startswith("file:") or "://" not in self.uri:
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.closed = False
        try:
            self.client = MlflowClient(tracking_uri=self.uri)
            self.run_id = self._existing_run() or self._new_run(params)
        except ConfigError:
            raise
        except Exception as exc:  # MlflowException, connection errors, ...
            raise ConfigError(
                f"cannot start an MLflow run at {self.uri}: {' '.join(str(exc).split())[:300]}; "
                "check MLFLOW_TRACKING_URI or set train.mlflow=false"
            ) from None

    def _existing_run(self) -> str | None:
        """The run recorded in the run directory, if it is in this store (a resumed run)."""
        path = self.run_dir / MLFLOW_RUN_FILE
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(saved, dict) or saved.get("tracking_uri") != self.uri:
            return None
        run_id = saved.get("run_id")
        try:
            self.client.get_run(run_id)
        except Exception:  # deleted, or another store
            return None
        self.client.update_run(run_id, status="RUNNING")
        return run_id

    def _new_run(self, params: dict[str, Any]) -> str:
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or "geogan"
        experiment = self.client.get_experiment_by_name(name)
        experiment_id = (
            experiment.experiment_id
            if experiment is not None
            else self.client.create_experiment(name)
        )
        run = self.client.create_run(
            experiment_id,
            run_name=self.run_dir.name,
            tags={"geogan.run_dir": str(self.run_dir.resolve())},
        )
        run_id = run.info.run_id
        items = [self._Param(k, v) for k, v in flatten_params(params).items()]
        for i in range(0, len(items), _PARAMS_PER_BATCH):
            self.client.log_batch(run_id, params=items[i : i + _PARAMS_PER_BATCH])
        for name in _ARTIFACTS:
            if (self.run_dir / name).is_file():
                self.client.log_artifact(run_id, str(self.run_dir / name), artifact_path="run")
        atomic_write_text(
            self.run_dir / MLFLOW_RUN_FILE,
            json.dumps({"tracking_uri": self.uri, "run_id": run_id}, indent=2) + "\n",
        )
        return run_id

    def reopen(self) -> None:
        if self.closed:
            self.client.update_run(self.run_id, status="RUNNING")
            self.closed = False

    def log_metrics(self, step: int, values: dict[str, float]) -> None:
        now = int(time.time() * 1000)
        items = [self._Metric(_metric_key(k), v, now, step) for k, v in values.items()]
        for i in range(0, len(items), _METRICS_PER_BATCH):
            self.client.log_batch(self.run_id, metrics=items[i : i + _METRICS_PER_BATCH])

    def close(self, status: str) -> None:
        if not self.closed:
            self.client.set_terminated(self.run_id, status=status)
            self.closed = True
