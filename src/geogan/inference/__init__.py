"""Ensemble generation over large domains (tiling with overlap blending) and output writers."""

from geogan.inference.ensemble import generate_ensemble, member_noise, member_seed
from geogan.inference.tiling import (
    TileSpec,
    blend_weights,
    generate_tiled,
    generate_tiled_many,
    tile_starts,
    tile_weights,
)
from geogan.inference.writers import (
    EnsembleWriter,
    ensemble_to_dataset,
    spatial_dims,
    write_dataset,
)

__all__ = [
    "EnsembleWriter",
    "TileSpec",
    "blend_weights",
    "ensemble_to_dataset",
    "generate_ensemble",
    "generate_tiled",
    "generate_tiled_many",
    "member_noise",
    "member_seed",
    "spatial_dims",
    "tile_starts",
    "tile_weights",
    "write_dataset",
]
