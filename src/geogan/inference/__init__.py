"""Ensemble generation over large domains (tiling with overlap blending), export loading, writers."""

from geogan.inference.ensemble import gaussian_noise, generate_ensemble, member_noise, member_seed
from geogan.inference.export import load_export
from geogan.inference.tiling import (
    Sink,
    TileSpec,
    blend_weights,
    generate_tiled,
    generate_tiled_many,
    generate_tiled_streaming,
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
    "Sink",
    "TileSpec",
    "blend_weights",
    "ensemble_to_dataset",
    "gaussian_noise",
    "generate_ensemble",
    "generate_tiled",
    "generate_tiled_many",
    "generate_tiled_streaming",
    "load_export",
    "member_noise",
    "member_seed",
    "spatial_dims",
    "tile_starts",
    "tile_weights",
    "write_dataset",
]
