"""Training samples written once to a Zarr store, and read back as a Dataset.

Any recipe's items can be stored: an item is a flat mapping of array name to a NumPy
array (or tensor) of fixed shape, e.g. ``{"input": [C, h, w], "target": [C, H, W]}``.
Layout (Zarr v3 group), ``N`` samples: one array ``[N, *shape]`` per item key, float32,
except keys listed in ``binary_keys`` (0/1 masks), stored as uint8 and read back as
float32. Each sample is one chunk (random access reads one sample), grouped into
shards of ``SHARD`` samples so a store of many patches stays a few files per array.

Group attributes: ``format``/``version``, ``keys``, ``binary_keys``, ``n_samples`` and
whatever the writer passes in ``attrs`` (variable names, factor, seed, normalisation:
JSON values). Item ``i`` of the store equals item ``i`` of the dataset it was written from.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import zarr
from torch.utils.data import Dataset

from geogan.core.atomic import atomic_path
from geogan.core.errors import DataError

FORMAT = "geogan-patches"
VERSION = 2
SHARD = 32


def _numpy_item(item: Mapping[str, Any]) -> dict[str, np.ndarray]:
    out = {}
    for key, value in item.items():
        if isinstance(value, Mapping):
            raise DataError(
                f"patch stores hold flat items; item key {key!r} holds a nested mapping"
            )
        out[key] = value.numpy() if torch.is_tensor(value) else np.asarray(value)
    return out


def write_patch_store(
    path: str | os.PathLike,
    sample: Callable[[int], Mapping[str, Any]],
    n_samples: int,
    *,
    attrs: Mapping[str, Any] | None = None,
    binary_keys: Sequence[str] = (),
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write items ``sample(0) .. sample(n_samples - 1)`` to a Zarr store at ``path``, atomically.

    ``sample(i)`` returns one item (name -> array of a fixed shape per name). The store is
    built in a temporary folder beside ``path`` and renamed onto it only when complete.
    Refusing an existing ``path`` is the caller's job
    (:func:`geogan.core.atomic.check_writable`). ``progress(done, total)`` is called
    after each shard.
    """
    if n_samples <= 0:
        raise DataError(f"number of patches must be positive, got {n_samples}")
    path = Path(path)
    first = _numpy_item(sample(0))
    binary = [k for k in binary_keys if k in first]
    shard = min(SHARD, n_samples)
    with atomic_path(path, is_dir=True) as tmp:
        root = zarr.open_group(str(tmp), mode="w", zarr_format=3)
        arrays = {}
        for key, value in first.items():
            shape = value.shape
            # Zarr chunks need sides >= 1 (a channel axis may be empty)
            chunk = (1, *(max(s, 1) for s in shape[:1]), *shape[1:])
            arrays[key] = root.create_array(
                key,
                shape=(n_samples, *shape),
                chunks=chunk,
                shards=(shard, *chunk[1:]),
                dtype="uint8" if key in binary else "float32",
                fill_value=0,
            )
        root.attrs.update(
            {
                **dict(attrs or {}),
                "format": FORMAT,
                "version": VERSION,
                "n_samples": int(n_samples),
                "keys": list(first),
                "binary_keys": binary,
            }
        )
        for start in range(0, n_samples, shard):
            stop = min(start + shard, n_samples)
            items = [first if i == 0 else _numpy_item(sample(i)) for i in range(start, stop)]
            for key in first:
                block = np.stack([it[key] for it in items])
                arrays[key][start:stop] = block.astype(np.uint8) if key in binary else block
            if progress is not None:
                progress(stop, n_samples)
    return path


class ZarrPatchDataset(Dataset):
    """Samples from a store written by :func:`write_patch_store`: dicts of float32 tensors.

    ``len`` is the number of stored samples; larger indices wrap around (``i % N``),
    so a trainer indexing by its global sample counter can run past one epoch.
    The store is opened lazily in each process (safe with DataLoader workers).
    ``attrs`` holds the writer's attributes (e.g. variable names and normalisation).
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
        version = int(attrs.get("version", 0))
        if version > VERSION:
            raise DataError(
                f"patch store {self.path} has a newer format ({attrs['version']}); upgrade geogan"
            )
        if version < 2:  # version 1 stored recipe 1's four arrays without a key list
            attrs.setdefault("keys", ["input", "target", "constants", "mask"])
            attrs.setdefault("binary_keys", ["mask"])
        self.attrs = attrs
        self.n_samples = int(attrs["n_samples"])
        self.keys = list(attrs["keys"])
        self.binary_keys = set(attrs.get("binary_keys", []))
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
        """Item ``i mod N``: ``{key: float32 tensor [*shape]}`` for every stored key."""
        if self._root is None:
            self._root = self._group()
            self._arrays = {key: self._root[key] for key in self.keys}
        j = int(i) % self.n_samples
        # Samples are read a shard at a time (one read per array instead of one per sample
        # and array, where zarr's per-call overhead dominated), and the shard kept: the
        # Trainer asks for consecutive indices, so the next items come from it.
        size = self._shard_size()
        start = (j // size) * size
        if self._block is None or self._block_start != start:
            stop = min(start + size, self.n_samples)
            self._block = {key: np.asarray(self._arrays[key][start:stop]) for key in self.keys}
            self._block_start = start
        return {
            key: torch.from_numpy(np.array(self._block[key][j - start], dtype=np.float32))
            for key in self.keys
        }

    def _shard_size(self) -> int:
        shards = getattr(self._arrays[self.keys[0]], "shards", None)
        return int(shards[0]) if shards else SHARD
