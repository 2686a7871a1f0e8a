"""Truth of the example recipe: power-law Gaussian random fields, and their dataset."""

from __future__ import annotations

import numpy as np
import torch

from geogan.core.seeding import derive_seed


def random_field(size: int, slope: float, seed: int) -> np.ndarray:
    """``[size, size]`` float32 Gaussian random field with power spectrum ``~ k**-slope``
    (periodic, zero mean, unit variance), from white noise filtered in Fourier space."""
    rng = np.random.default_rng(seed)
    white = np.fft.fft2(rng.standard_normal((size, size)))
    k = np.hypot(*np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size), indexing="ij"))
    k[0, 0] = np.inf  # no mean
    field = np.fft.ifft2(white * k ** (-slope / 2)).real
    return ((field - field.mean()) / field.std()).astype(np.float32)


class FieldDataset(torch.utils.data.Dataset):
    """Item ``i``: ``{"target": [1, size, size]}``, a pure function of ``(seed, i)``."""

    def __init__(self, size: int, slope: float, seed: int, offset: int = 0) -> None:
        self.size, self.slope, self.seed, self.offset = size, slope, seed, offset

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        field = random_field(self.size, self.slope, derive_seed(self.seed, self.offset + int(i)))
        return {"target": torch.from_numpy(field)[None]}
