"""Class-balanced patch sampling by wet fraction (augmentation: :mod:`geogan.data.augment`).

Candidates: for every training time and every top-left corner ``(row, col)`` on
a grid of step ``stride`` (high-res pixels), a ``P x P`` patch is a candidate
when its *valid fraction* (share of the ``P*P`` pixels where the truth and the
covering input pixel are valid) is at least ``min_valid_fraction``. The step is
``candidate_stride`` rounded up to a multiple of ``factor``, and ``P`` is a
multiple of ``factor``, so every high-res patch covers exactly a ``P/f x P/f``
block of input pixels.

Classes (see :class:`~geogan.recipes.downscaling.config.SamplingConfig`): the *wet fraction*
is the share of valid pixels where the wet variable exceeds ``wet_threshold``
(physical units, e.g. mm/h); class ``k`` is the index of the first threshold it
is strictly below (the last class: at or above the last threshold).

Sampling: a class with probability ``weights[k]`` renormalised over the
non-empty classes, then a candidate of that class uniformly. All randomness
comes from the generator the caller passes, so a draw is a pure function of
its seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geogan.core.errors import DataError
from geogan.recipes.downscaling.config import SamplingConfig
from geogan.recipes.downscaling.store import FieldStore


def effective_stride(stride: int, factor: int) -> int:
    """``stride`` rounded up to a multiple of ``factor`` (corners stay on input-pixel boundaries)."""
    return max(1, -(-int(stride) // int(factor))) * int(factor)


def candidate_corners(extent: int, patch: int, stride: int) -> np.ndarray:
    """Top-left offsets ``0, stride, 2*stride, ...`` of patches of size ``patch`` inside ``extent``."""
    if patch > extent:
        return np.zeros(0, dtype=np.int32)
    return np.arange(0, extent - patch + 1, stride, dtype=np.int32)


def assign_classes(wet_fraction: np.ndarray, thresholds: list[float]) -> np.ndarray:
    """Class per wet fraction: number of thresholds at or below it (``int8``, 0..len(thresholds))."""
    return np.searchsorted(
        np.asarray(thresholds, dtype=np.float64), wet_fraction, side="right"
    ).astype(np.int8)


def _box_sums(mask: np.ndarray, rows: np.ndarray, cols: np.ndarray, patch: int) -> np.ndarray:
    """Sums of ``mask [H, W]`` over ``patch x patch`` boxes at corners ``rows x cols`` -> ``[len(rows), len(cols)]``."""
    integral = np.zeros((mask.shape[0] + 1, mask.shape[1] + 1), dtype=np.int64)
    np.cumsum(np.cumsum(mask, axis=0, dtype=np.int64), axis=1, out=integral[1:, 1:])
    r0, c0 = np.ix_(rows, cols)
    r1, c1 = r0 + patch, c0 + patch
    return integral[r1, c1] - integral[r0, c1] - integral[r1, c0] + integral[r0, c0]


@dataclass
class Candidates:
    """Candidate patches, one entry each: ``[N]`` arrays.

    ``times`` index the store's time axis; ``rows``/``cols`` are high-res top-left
    corners; fractions are shares in [0, 1].
    """

    times: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    classes: np.ndarray
    wet_fraction: np.ndarray
    valid_fraction: np.ndarray
    n_classes: int
    patch_size: int

    def __len__(self) -> int:
        return int(self.times.size)

    def class_counts(self) -> list[int]:
        """Number of candidates per class (length ``n_classes``)."""
        return np.bincount(self.classes, minlength=self.n_classes).astype(int).tolist()

    def members(self) -> list[np.ndarray]:
        """Candidate indices of each class, in a fixed order."""
        order = np.argsort(self.classes, kind="stable")
        bounds = np.cumsum([0, *self.class_counts()])
        return [order[bounds[k] : bounds[k + 1]] for k in range(self.n_classes)]


def build_candidates(
    store: FieldStore,
    time_indices: np.ndarray,
    patch_size: int,
    sampling: SamplingConfig,
    wet_channel: int = 0,
) -> Candidates:
    """Candidate patches over ``time_indices`` of ``store`` (module docstring).

    Args:
        store: aligned fields; ``wet_channel`` selects the truth channel that defines wetness.
        time_indices: ``[T_train]`` indices into the store's time axis.
        patch_size: high-res patch side ``P`` (a multiple of ``store.factor``).
        sampling: thresholds, stride and minimum valid fraction.
    """
    big_h, big_w = store.truth_shape
    if patch_size > big_h or patch_size > big_w:
        raise DataError(
            f"data.patch_size {patch_size} is larger than the truth grid {big_h}x{big_w}; use a smaller patch_size"
        )
    stride = effective_stride(sampling.candidate_stride, store.factor)
    rows = candidate_corners(big_h, patch_size, stride)
    cols = candidate_corners(big_w, patch_size, stride)
    area = float(patch_size * patch_size)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("times", "rows", "cols", "wet", "valid")}
    for t in np.asarray(time_indices, dtype=np.int64):
        valid = store.valid_mask(int(t))
        # NaN compares False, so missing pixels are never wet.
        wet = valid & (store.truth(int(t))[wet_channel] > sampling.wet_threshold)
        n_valid = _box_sums(valid, rows, cols, patch_size)
        n_wet = _box_sums(wet, rows, cols, patch_size)
        valid_fraction = n_valid / area
        keep = valid_fraction >= sampling.min_valid_fraction
        if sampling.min_valid_fraction == 0:
            keep &= n_valid > 0  # a patch with no valid pixel teaches nothing
        ri, ci = np.nonzero(keep)
        parts["times"].append(np.full(ri.size, t, dtype=np.int32))
        parts["rows"].append(rows[ri])
        parts["cols"].append(cols[ci])
        parts["wet"].append((n_wet[ri, ci] / np.maximum(n_valid[ri, ci], 1)).astype(np.float32))
        parts["valid"].append(valid_fraction[ri, ci].astype(np.float32))
    cat = {k: (np.concatenate(v) if v else np.zeros(0)) for k, v in parts.items()}
    return Candidates(
        times=cat["times"].astype(np.int32),
        rows=cat["rows"].astype(np.int32),
        cols=cat["cols"].astype(np.int32),
        classes=assign_classes(cat["wet"], sampling.thresholds),
        wet_fraction=cat["wet"].astype(np.float32),
        valid_fraction=cat["valid"].astype(np.float32),
        n_classes=len(sampling.thresholds) + 1,
        patch_size=int(patch_size),
    )


class ClassSampler:
    """Draws a candidate: a class by weight (renormalised over non-empty classes), then uniformly within it."""

    def __init__(self, candidates: Candidates, weights: list[float]) -> None:
        if len(weights) != candidates.n_classes:
            raise ValueError(f"need {candidates.n_classes} class weights, got {len(weights)}")
        self.candidates = candidates
        self.members = candidates.members()
        counts = np.array([m.size for m in self.members])
        w = np.asarray(weights, dtype=np.float64) * (counts > 0)
        if len(candidates) == 0 or w.sum() <= 0:
            raise DataError(
                "no candidate patches to sample: every patch has too few valid pixels, or every non-empty class "
                f"has weight 0 (class counts {counts.tolist()}); lower data.sampling.min_valid_fraction or "
                "data.patch_size, or check data.sampling.weights"
            )
        self.probabilities = w / w.sum()

    def draw(self, rng: np.random.Generator) -> tuple[int, int]:
        """``(class, candidate index)`` using ``rng``."""
        k = int(rng.choice(self.probabilities.size, p=self.probabilities))
        members = self.members[k]
        return k, int(members[rng.integers(members.size)])
