"""Data layer: sources (xarray), grids and regridding, transforms and normalisation,
class-balanced patch sampling, datasets, and the ``prepare`` step (recipe 1).

Imports only :mod:`geogan.core` and :mod:`geogan.config`.
"""

from geogan.data.datasets import ITEM_KEYS, PatchDataset, Variables
from geogan.data.downscaling import DownscalingData, split_times
from geogan.data.grids import check_nesting, coarsen, regrid_to
from geogan.data.normalisation import Normalisation, StatsAccumulator, VarStats
from geogan.data.patch_store import ZarrPatchDataset, write_patch_store
from geogan.data.prepare import prepare
from geogan.data.sources import open_source
from geogan.data.transforms import Transforms, VariableTransform

__all__ = [
    "ITEM_KEYS",
    "DownscalingData",
    "Normalisation",
    "PatchDataset",
    "StatsAccumulator",
    "Transforms",
    "VarStats",
    "VariableTransform",
    "Variables",
    "ZarrPatchDataset",
    "check_nesting",
    "coarsen",
    "open_source",
    "prepare",
    "regrid_to",
    "split_times",
    "write_patch_store",
]
