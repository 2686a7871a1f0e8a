"""What ``invert``, ``tune``, ``perturb`` and ``evaluate`` share: the loaded export, the
data it was trained on (or other data with the same variables and grid), normalisation of
one ensemble with its own statistics, and the inversion file format."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import xarray as xr

from geogan.core.errors import CheckpointError, DataError
from geogan.inference.export import load_export
from geogan.models import stylegan2 as _models  # noqa: F401 - registers the models
from geogan.models.stylegan2 import StyleGAN2Generator
from geogan.recipes.stylegan.config import StyleGANConfig
from geogan.recipes.stylegan.data import EnsembleSamples, load_samples, select_samples
from geogan.recipes.stylegan.transforms import FieldTransform

__all__ = [
    "INVERSION_FORMAT",
    "Inversion",
    "LoadedModel",
    "check_compatible",
    "load_inversion",
    "load_model",
    "parse_ints",
]

INVERSION_FORMAT = "stylegan-inversion/1"


@dataclass
class LoadedModel:
    """An export of this recipe: the EMA generator (eval, no grad), its config and transforms."""

    path: Path
    g: StyleGAN2Generator
    meta: dict[str, Any]
    cfg: StyleGANConfig
    transform: FieldTransform

    @property
    def variables(self) -> list[str]:
        return list(self.meta["variables"])

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.meta["shape"])  # type: ignore[return-value]

    @property
    def periodic_x(self) -> bool:
        return bool(self.meta.get("periodic_x", False))

    def group_stats(self, members: np.ndarray):
        """``(mean, spread)`` maps of one ensemble (physical ``[M, C, H, W]``), or None."""
        return self.transform.group_stats(
            members,
            blur=int(self.meta.get("anomaly_blur", 0)),
            floor=float(self.meta.get("anomaly_floor", 0.05)),
            periodic_x=self.periodic_x,
        )

    def normalise(self, members: np.ndarray, stats) -> torch.Tensor:
        """Physical members ``[M, C, H, W]`` -> normalised float32 tensor (no training draws)."""
        return torch.from_numpy(self.transform.forward(members, stats))

    def samples(
        self,
        *,
        times: str = "all",
        lead_times: Sequence[float] | None = None,
        members: Sequence[int] | None = None,
    ) -> EnsembleSamples:
        """The config's data (after overrides), selected, checked against the generator."""
        samples = select_samples(
            load_samples(self.cfg.data),
            self.cfg.data,
            times=times,
            lead_times=lead_times,
            members=members,
        )
        check_compatible(samples, self)
        return samples


def load_model(
    checkpoint: str | Path,
    overrides: Iterable[str] = (),
    device: str | torch.device = "cpu",
    config_path: str | Path | None = None,
) -> LoadedModel:
    """The generator and everything around it from an export (``model.safetensors``)."""
    from geogan.recipes.config import load_run_config, run_config_from_dict

    models, meta = load_export(checkpoint, format_prefix="stylegan/", device=device)
    if "generator" not in models:
        raise CheckpointError(f"{checkpoint} holds no generator; use <run>/model.safetensors")
    if config_path is not None:
        cfg = load_run_config(config_path, list(overrides))
    else:
        cfg = run_config_from_dict(
            meta["config"], source=f"checkpoint {checkpoint}", overrides=list(overrides)
        )
    return LoadedModel(
        path=Path(checkpoint).resolve(),
        g=models["generator"],
        meta=meta,
        cfg=cfg,
        transform=FieldTransform.from_dict(meta["transform"]),
    )


def check_compatible(samples: EnsembleSamples, model: LoadedModel) -> None:
    """Refuse data whose variables or grid differ from the generator's (one line)."""
    if list(samples.variables) != model.variables:
        raise DataError(
            f"{samples.source} gives variables {samples.variables} but the generator "
            f"{model.path.name} was trained on {model.variables}; select the same variables "
            "(data.source.variables/levels or data.npy.channels)"
        )
    if tuple(samples.shape) != model.shape:
        raise DataError(
            f"{samples.source} gives fields of shape {list(samples.shape)} (channels, y, x) "
            f"but the generator {model.path.name} makes {list(model.shape)}; use the same crop "
            "(data.source.crop / data.npy.crop)"
        )


def parse_ints(text: str | Sequence[int] | None, what: str) -> list[int] | None:
    """``"0,1,2"`` / ``"[0, 1, 2]"`` / a list -> ints; None stays None."""
    from geogan.core.errors import ConfigError

    if text is None:
        return None
    if isinstance(text, (list, tuple)):
        return [int(v) for v in text]
    cleaned = str(text).strip().strip("[]")
    if not cleaned:
        return []
    try:
        return [int(v) for v in cleaned.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{what} must be integers separated by commas, got {text!r}") from None


def parse_floats(text: str | None, what: str) -> list[float] | None:
    from geogan.core.errors import ConfigError

    if text is None:
        return None
    cleaned = str(text).strip().strip("[]")
    try:
        return [float(v) for v in cleaned.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{what} must be numbers separated by commas, got {text!r}") from None


# --------------------------------------------------------------------------- inversion file


@dataclass
class Inversion:
    """An inversion file: latents per saved step and the inverted samples' keys.

    ``ws [S, N, L, D]``, ``noises``: per noise input ``[S, N, 1, h, w]``, ``frame``: Date,
    LeadTime, Member per sample (N rows), ``psnr [S, N]``.
    """

    path: Path
    steps: list[int]
    ws: np.ndarray
    noises: list[np.ndarray]
    frame: pd.DataFrame
    psnr: np.ndarray
    checkpoint: str
    space: str

    def at(self, step: int | None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``(ws [N, L, D], noises)`` at a saved step (None: the last)."""
        if step is None:
            i = len(self.steps) - 1
        elif step in self.steps:
            i = self.steps.index(step)
        else:
            raise DataError(
                f"{self.path} holds the steps {self.steps}, not {step}; choose one of them"
            )
        return torch.from_numpy(self.ws[i]), [torch.from_numpy(n[i]) for n in self.noises]

    def ensembles(self) -> list[tuple[pd.Timestamp, float, list[int]]]:
        """``(date, lead time, [rows])`` per inverted ensemble, rows sorted by member."""
        out = []
        for (date, lead), part in self.frame.groupby(["Date", "LeadTime"], sort=True):
            rows = part.sort_values("Member").index.tolist()
            out.append((pd.Timestamp(date), float(lead), [int(r) for r in rows]))
        return out


def inversion_dataset(
    result, samples: EnsembleSamples, model: LoadedModel, space: str
) -> xr.Dataset:
    """The inversion file's Dataset (latents, noise maps, PSNR, sample keys)."""
    steps = result.steps
    ws = np.stack([result.ws[s].numpy() for s in steps]).astype(np.float32)
    data: dict[str, Any] = {
        "w": (("step", "sample", "style", "latent"), ws),
        "psnr": (("step", "sample"), np.stack([result.psnr[s].numpy() for s in steps])),
        "loss": (("step", "sample"), np.stack([result.loss[s].numpy() for s in steps])),
    }
    for k in range(len(result.noises[steps[-1]])):
        arr = np.stack([result.noises[s][k].numpy()[:, 0] for s in steps]).astype(np.float32)
        data[f"noise_{k}"] = (("step", "sample", f"noise_{k}_y", f"noise_{k}_x"), arr)
    frame = samples.frame
    coords = {
        "step": np.asarray(steps, dtype=np.int64),
        "sample": np.arange(len(frame)),
        "date": ("sample", frame["Date"].to_numpy(dtype="datetime64[ns]")),
        "lead_time": ("sample", frame["LeadTime"].to_numpy(dtype=np.float64), {"units": "hours"}),
        "member": ("sample", frame["Member"].to_numpy(dtype=np.int64)),
    }
    attrs = {
        "format": INVERSION_FORMAT,
        "checkpoint": str(model.path),
        "space": space,
        "variables": json.dumps(model.variables),
        "geogan_config": json.dumps(model.cfg.model_dump(mode="json")),
        "title": "geogan stylegan inversion: latents of real members",
    }
    return xr.Dataset(data, coords=coords, attrs=attrs)


def load_inversion(path: str | Path) -> Inversion:
    path = Path(path)
    if not path.exists():
        raise DataError(f"inversion file {path} not found; run 'geogan invert' first")
    try:
        engine = "zarr" if path.is_dir() else None
        with xr.open_dataset(path, engine=engine) as ds:
            if ds.attrs.get("format") != INVERSION_FORMAT:
                raise DataError(
                    f"{path} is not an inversion file of 'geogan invert' (format "
                    f"{ds.attrs.get('format')!r})"
                )
            noises = []
            k = 0
            while f"noise_{k}" in ds:
                noises.append(ds[f"noise_{k}"].values[:, :, None].astype(np.float32))
                k += 1
            frame = pd.DataFrame(
                {
                    "Date": pd.to_datetime(ds["date"].values),
                    "LeadTime": ds["lead_time"].values.astype(np.float64),
                    "Member": ds["member"].values.astype(np.int64),
                }
            )
            return Inversion(
                path=path,
                steps=[int(s) for s in ds["step"].values],
                ws=ds["w"].values.astype(np.float32),
                noises=noises,
                frame=frame,
                psnr=ds["psnr"].values,
                checkpoint=str(ds.attrs.get("checkpoint", "")),
                space=str(ds.attrs.get("space", "w+")),
            )
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"cannot read inversion file {path} ({exc})") from None


def group_members(
    samples: EnsembleSamples, date: pd.Timestamp, lead: float
) -> tuple[list[int], list[int]]:
    """``(rows, members)`` of the samples of one ensemble, members ascending."""
    f = samples.frame
    hit = f[(f["Date"] == date) & np.isclose(f["LeadTime"].to_numpy(dtype=np.float64), lead)]
    hit = hit.sort_values("Member")
    return hit.index.tolist(), hit["Member"].astype(int).tolist()


def summary_path(out: Path) -> Path:
    """Where a command writes its JSON summary beside ``out`` (``x.nc`` -> ``x.json``)."""
    out = Path(out)
    return (
        out.with_name(out.stem + ".json")
        if out.suffix != ".json"
        else out.with_name(out.stem + ".summary.json")
    )
