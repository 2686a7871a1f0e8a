"""Data layer shared by every recipe: sources (xarray, metadata CSV, image lists), grids and
regridding, units, transforms and normalisation, time splits, augmentation, patch stores.

Imports only :mod:`geogan.core` and :mod:`geogan.config`. A recipe's own pipeline (how it
aligns, samples and assembles items) lives in ``geogan/recipes/<name>/``.
"""

from geogan.data.grids import check_nesting, coarsen, regrid_to
from geogan.data.normalisation import Normalisation, StatsAccumulator, VarStats
from geogan.data.sources import open_source
from geogan.data.splits import split_times
from geogan.data.transforms import Transforms, VariableTransform

__all__ = [
    "Normalisation",
    "StatsAccumulator",
    "Transforms",
    "VarStats",
    "VariableTransform",
    "check_nesting",
    "coarsen",
    "open_source",
    "regrid_to",
    "split_times",
]
