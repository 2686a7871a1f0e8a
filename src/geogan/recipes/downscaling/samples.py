"""Dataset items of recipe 1 and the class-balanced patch dataset.

An item is ``{"input": [C_in, h, w], "target": [C_out, H, W], "constants": [K, H, W],
"mask": [1, H, W]}`` of float32 torch tensors with ``H = factor * h``:
fields normalised (transformed space), non-finite values replaced by 0, and
``mask`` 1 where the truth is valid and the input pixel covering it is valid
(every channel finite), 0 elsewhere. The target is 0 wherever the mask is 0
(``target * mask == target``). ``K`` may be 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from geogan.config.schema import AugmentConfig
from geogan.data.augment import Augmentation, draw_augmentation
from geogan.data.transforms import Transforms
from geogan.recipes.downscaling.sampling import Candidates, ClassSampler
from geogan.recipes.downscaling.store import FieldStore, valid_mask

ITEM_KEYS = ("input", "target", "constants", "mask")


@dataclass(frozen=True)
class Variables:
    """Variable names in channel order."""

    input: list[str]
    target: list[str]
    constants: list[str]


def assemble(
    store: FieldStore,
    variables: Variables,
    t: int,
    row: int,
    col: int,
    height: int,
    width: int,
    normalisation: Transforms | None,
    augmentation: Augmentation | None = None,
    augment: AugmentConfig | None = None,
) -> dict[str, np.ndarray]:
    """Cut one aligned sample from ``store`` as float32 NumPy arrays.

    Args:
        t: time index in the store; ``row``/``col``: high-res top-left corner, multiples of
            ``store.factor``; ``height``/``width``: high-res size, multiples of ``store.factor``.
        normalisation: when given, fields are normalised and non-finite values set to 0;
            when None, fields stay in physical units with NaN where missing.
        augmentation: flips/rotation/rolls applied identically to every array; channels
            named as vector components in ``augment.vectors`` (e.g. u/v wind) transform as
            vectors (a flip negates the component along the flipped axis).

    Returns:
        The item dict (module docstring) as NumPy arrays.
    """
    f = store.factor
    rows, cols = slice(row, row + height), slice(col, col + width)
    target = store.truth(t, rows, cols)
    inputs = store.input(
        t, slice(row // f, (row + height) // f), slice(col // f, (col + width) // f)
    )
    constants = store.constants(rows, cols)
    mask = valid_mask(target, inputs, f)[None].astype(np.float32)
    if normalisation is not None:
        # target * mask == target: no value leaks where the loss and critic must not look
        target = _finite_or_zero(normalisation.forward_stack(target, variables.target, 0)) * mask
        inputs = _finite_or_zero(normalisation.forward_stack(inputs, variables.input, 0))
        constants = _finite_or_zero(normalisation.forward_stack(constants, variables.constants, 0))
    item = {"input": inputs, "target": target, "constants": constants, "mask": mask}
    if augmentation is not None:
        vectors = augment.vectors if augment is not None else ()
        names = {
            "input": variables.input,
            "target": variables.target,
            "constants": variables.constants,
            "mask": ["mask"],
        }
        item = {
            k: augmentation.apply(v, names[k], _present(vectors, names[k])) for k, v in item.items()
        }
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in item.items()}


def _present(vectors, channels: list[str]) -> list:
    """The vectors whose components are all among ``channels`` (an input may hold u and v
    while the truth holds only rain); a vector split across arrays is a config mistake."""
    out = []
    for v in vectors:
        have = [c in channels for c in v.components]
        if all(have):
            out.append(v)
        elif any(have):
            from geogan.core.errors import ConfigError

            raise ConfigError(
                f"data.augment.vectors: components {v.components} must all be in one of the "
                f"input, target or constant variables; {channels} holds only some of them"
            )
    return out


def _finite_or_zero(x: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(x), x, np.float32(0)).astype(np.float32, copy=False)


def to_tensors(item: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """NumPy item -> float32 torch tensors (no copy for contiguous float32 arrays)."""
    return {k: torch.from_numpy(np.ascontiguousarray(item[k], dtype=np.float32)) for k in ITEM_KEYS}


@dataclass(frozen=True)
class PatchLocation:
    """Where item ``i`` comes from: store time index, high-res corner, class and augmentation."""

    time_index: int
    row: int
    col: int
    cls: int
    augmentation: Augmentation


class PatchDataset(Dataset):
    """Class-balanced random training patches; item ``i`` is a pure function of ``(seed, i)``.

    There is no hidden RNG state: ``np.random.default_rng([seed, i])`` draws the class,
    the candidate and the augmentation, so a trainer that indexes by its global sample
    counter resumes exactly, with any number of workers.

    Args:
        store: aligned fields.
        variables: channel names (input, target, constants).
        candidates: candidate patches (training times only).
        normalisation: statistics covering every variable.
        weights: sampling weight per class.
        augment: flip/rot90 switches.
        seed: base seed (any integer).
        length: ``len(dataset)``; indices beyond it are valid too.
    """

    def __init__(
        self,
        store: FieldStore,
        variables: Variables,
        candidates: Candidates,
        normalisation: Transforms,
        weights: list[float],
        augment: AugmentConfig,
        seed: int,
        length: int,
    ) -> None:
        self.store = store
        self.variables = variables
        self.candidates = candidates
        self.sampler = ClassSampler(candidates, weights)
        self.normalisation = normalisation
        self.augment = augment
        self.seed = int(seed)
        self.length = int(length)
        self.patch_size = candidates.patch_size
        self.factor = store.factor

    def __len__(self) -> int:
        return self.length

    def locate(self, i: int) -> PatchLocation:
        """The draw behind item ``i`` (class, candidate, augmentation)."""
        rng = np.random.default_rng([self.seed % 2**64, int(i) % 2**64])
        cls, j = self.sampler.draw(rng)
        p = self.patch_size  # patches are P x P; rolls stay on coarse-pixel boundaries
        aug = draw_augmentation(rng, self.augment, (p, p), roll_multiple=self.factor)
        c = self.candidates
        return PatchLocation(int(c.times[j]), int(c.rows[j]), int(c.cols[j]), cls, aug)

    def sample(self, i: int, normalise: bool = True) -> dict[str, np.ndarray]:
        """Item ``i`` as NumPy arrays; ``normalise=False`` keeps physical units and NaN."""
        loc = self.locate(i)
        p = self.patch_size
        return assemble(
            self.store,
            self.variables,
            loc.time_index,
            loc.row,
            loc.col,
            p,
            p,
            self.normalisation if normalise else None,
            loc.augmentation,
            self.augment,
        )

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        """``{"input": [C_in, P/f, P/f], "target": [C_out, P, P], "constants": [K, P, P], "mask": [1, P, P]}``."""
        return to_tensors(self.sample(i))
