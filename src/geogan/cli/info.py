"""``geogan info``: what this installation can do."""

from __future__ import annotations

import importlib.metadata
import platform
from typing import Any

import torch

import geogan
from geogan.training.trainer import bf16_supported_on_cpu

_PACKAGES = [
    "torch",
    "numpy",
    "xarray",
    "netCDF4",
    "h5netcdf",
    "zarr",
    "dask",
    "scores",
    "pydantic",
    "safetensors",
]


def collect_info() -> dict[str, Any]:
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    cuda = torch.cuda.is_available()
    return {
        "geogan": geogan.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
        "device": "cuda" if cuda else "cpu",
        "cuda_devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        if cuda
        else [],
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "bf16_cpu_native": bf16_supported_on_cpu(),
        "bf16_cuda": bool(cuda and torch.cuda.is_bf16_supported()),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "distributed": {
            "gloo": torch.distributed.is_gloo_available(),
            "nccl": torch.distributed.is_nccl_available(),
        },
    }
