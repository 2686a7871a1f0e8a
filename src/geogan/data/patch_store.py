"""Training patches written once to a Zarr store, and read back as a Dataset.

Layout (Zarr v3 group), ``N`` samples:

- ``input``  float32 ``[N, C_in, h, w]``
- ``target`` float32 ``[N, C_out, H, W]``
- ``constants`` float32 ``[N, K, H, W]`` (``K`` may be 0)
- ``mask``   uint8 ``[N, 1, H, W]`` (0/1; read back as float32)

Each sample is one chunk (random access reads one sample), grouped into shards
of ``SHARD`` samples so a store of many patches stays a few files per array.
Group attributes: ``format``/``version``, variable names, ``factor``,
``patch_size``, ``seed``, ``n_samples`` and the normalisation (JSON dict) the
values were normalised with. Item ``i`` of the store equals item ``i`` of the
:class:`~geogan.data.datasets.PatchDataset` it was written from.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import zarr
from torch.utils.data import Dataset

from geogan.core.atomic import atomic_path
from geogan.core.errors import DataError
from geogan.data.datasets import ITEM_KEYS, PatchDataset, to_tensors
from geogan.data.normalisation import Normalisation

FORMAT = "geogan-patches"
VERSION = 1
SHARD = 32


def write_patch_store(
    path: str | os.PathLike,
    dataset: PatchDataset,
    n_samples: int,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write items ``0 .. n_samples - 1`` of ``dataset`` to a Zarr store at ``path``, atomically.

    The store is built in a temporary folder beside ``path`` and renamed onto it only
    when complete. Refusing an existing ``path`` is the caller's job
    (:func:`geogan.core.atomic.check_writable`). ``progress(done, total)`` is called
    after each shard.
    """
    if n_samples <= 0:
        raise DataError(f"number of patches must be positive, got {n_samples}")
    path = Path(path)
    first = dataset.sample(0)
    shard = min(SHARD, n_samples)
    with atomic_path(path, is_dir=True) as tmp:
        root = zarr.open_group(str(tmp), mode="w", zarr_format=3)
        arrays = {}
        for key in ITEM_KEYS:
            shape = first[key].shape
            chunk = (1, max(shape[0], 1), *shape[1:])  # Zarr chunks need sides >= 1 (K may be 0)
            arrays[key] = root.create_array(
                key,
                shape=(n_samples, *shape),
                chunks=chunk,
                shards=(shard, *chunk[1:]),
                dtype="uint8" if key == "mask" else "float32",
                fill_value=0,
            )
        v = dataset.variables
        root.attrs.update(
            {
                "format": FORMAT,
                "version": VERSION,
                "n_samples": int(n_samples),
                "input_vars": list(v.input),
                "target_vars": list(v.target),
                "constant_vars": list(v.constants),
                "factor": int(dataset.factor),
                "patch_size": int(dataset.patch_size),
                "seed": int(dataset.seed),
                "normalisation": _norm_dict(dataset.normalisation),
            }
        )
        for start in range(0, n_samples, shard):
            stop = min(start + shard, n_samples)
            items = [first if i == 0 else dataset.sample(i) for i in range(start, stop)]
            for key in ITEM_KEYS:
                block = np.stack([it[key] for it in items])
                arrays[key][start:stop] = block.astype(np.uint8) if key == "mask" else block
            if progress is not None:
                progress(stop, n_samples)
    return path


def _norm_dict(norm: Any) -> dict | None:
    return norm.to_dict() if isinstance(norm, Normalisation) else None


class ZarrPatchDataset(Dataset):
    """Patches from a store written by :func:`write_patch_store`; items as in :class:`PatchDataset`.

    ``len`` is the number of stored samples; larger indices wrap around (``i % N``),
    so a trainer indexing by its global sample counter can run past one epoch.
    The store is opened lazily in each process (safe with DataLoader workers).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise DataError(
                f"patch store {self.path} not found; run `geogan prepare` with a patch store first"
            )
        attrs = dict(self._group().attrs)
        if attrs.get("format") != FORMAT:
            raise DataError(
                f"{self.path} is not a geogan patch store (no format attribute {FORMAT!r})"
            )
        if int(attrs.get("version", 0)) > VERSION:
            raise DataError(
                f"patch store {self.path} has a newer format ({attrs['version']}); upgrade geogan"
            )
        self.attrs = attrs
        self.n_samples = int(attrs["n_samples"])
        self.input_vars = list(attrs["input_vars"])
        self.target_vars = list(attrs["target_vars"])
        self.constant_vars = list(attrs["constant_vars"])
        self.factor = int(attrs["factor"])
        self.patch_size = int(attrs["patch_size"])
        norm = attrs.get("normalisation")
        self.normalisation = Normalisation.from_dict(norm) if norm else None
        self._root: zarr.Group | None = None
        self._arrays: dict[str, zarr.Array] = {}  # opened once per process (metadata reads)
        self._block: dict[str, np.ndarray] | None = None  # the shard read last
        self._block_start = -1

    def _group(self) -> zarr.Group:
        try:
            return zarr.open_group(str(self.path), mode="r")
        except (OSError, ValueError, KeyError) as exc:
            raise DataError(
                f"patch store {self.path} could not be opened ({exc}); it may be incomplete"
            ) from None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_root"] = None  # reopen in the worker process
        state["_arrays"], state["_block"], state["_block_start"] = {}, None, -1
        return state

    def __len__(self) -> int:
        return self.n_samples

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        """``{"input": [C_in, h, w], "target": [C_out, H, W], "constants": [K, H, W], "mask": [1, H, W]}``."""
        if self._root is None:
            self._root = self._group()
            self._arrays = {key: self._root[key] for key in ITEM_KEYS}
        j = int(i) % self.n_samples
        # Samples are read a shard at a time (one read per array instead of one per sample
        # and array, where zarr's per-call overhead dominated), and the shard kept: the
        # Trainer asks for consecutive indices, so the next items come from it.
        size = self._shard_size()
        start = (j // size) * size
        if self._block is None or self._block_start != start:
            stop = min(start + size, self.n_samples)
            self._block = {key: np.asarray(self._arrays[key][start:stop]) for key in ITEM_KEYS}
            self._block_start = start
        item = {key: np.array(self._block[key][j - start]) for key in ITEM_KEYS}
        item["mask"] = item["mask"].astype(np.float32)
        return to_tensors(item)

    def _shard_size(self) -> int:
        shards = getattr(self._arrays["input"], "shards", None)
        return int(shards[0]) if shards else SHARD
