"""Image lists: samples made of several co-registered images (land cover, flood masks, ...).

A list is a JSON or YAML file holding either a list of entries or a mapping with an
``entries`` list (other top-level keys, e.g. ``keys`` or ``domains``, are ignored)::

    entries:
      - {name: tile_001, domain: rf, split: train, x: rf/x/tile_001.png, s: rf/s/tile_001.png}
      - {name: tile_002, x: /data/x/tile_002.tif, w: masks/tile_002.npy}

Each entry maps *keys* to files. Conventional keys: ``x`` image, ``s`` segmentation /
class map, ``d`` depth, ``h`` height, ``w`` water mask; any other key is allowed. Paths
are relative to the folder of the list file unless absolute. Keys that are not files:
``name``, ``id``, ``domain``, ``split`` and ``meta``, and any key whose value is not a string
(numbers, lists, mappings).

Files: PNG and JPEG (Pillow), TIFF/GeoTIFF (tifffile; the geo-referencing tags are not
read, only pixels) and ``.npy`` (``allow_pickle=False``, ``[C, H, W]`` or ``[H, W]``).

What :func:`read_image` returns:

- images: float32 ``[C, H, W]``; 8-bit data (uint8) divided by 255 and 16-bit data
  (uint16) by 65535, so they lie in [0, 1]; booleans become 0/1; other types (floats,
  signed or 32-bit integers) are cast to float32 unscaled (they carry physical units,
  e.g. heights in metres). ``scale=False`` (or a key in ``unscaled``) keeps raw values.
- class maps (keys in ``categorical``, default ``s`` and ``w``): int64 ``[H, W]``, never
  scaled; palette PNGs give their palette indices. A class map must have one channel.

Pillow reduces 16-bit colour PNGs to 8 bits: such files are a :class:`DataError`
(store 16-bit multi-band imagery as TIFF). 16-bit grayscale PNGs are read in full.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import yaml
from pydantic import Field
from torch.utils.data import Dataset

from geogan.config.schema import Section
from geogan.core.atomic import atomic_write_text, check_writable
from geogan.core.errors import ConfigError, DataError
from geogan.core.progress import track

__all__ = [
    "DEFAULT_CATEGORICAL",
    "IMAGE_SUFFIXES",
    "META_KEYS",
    "ImageList",
    "ImageListConfig",
    "ImageListDataset",
    "build_index",
    "read_image",
    "split_entries",
]

DEFAULT_CATEGORICAL = ("s", "w")
"""Keys read as integer class maps unless told otherwise."""

META_KEYS = frozenset({"name", "id", "domain", "split", "meta"})
"""Entry keys that never name files."""

SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".npy")
_LIST_SUFFIXES = {".json": "json", ".yaml": "yaml", ".yml": "yaml"}
_SHOW = 3


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


# --------------------------------------------------------------------------- reading files


def _png_is_16bit_colour(path: Path) -> bool:
    """True for a 16-bit RGB/RGBA/gray+alpha PNG (IHDR bit depth 16, colour type 2, 4 or 6)."""
    with open(path, "rb") as fh:
        head = fh.read(26)
    if len(head) < 26 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return False
    depth, colour = struct.unpack(">BB", head[24:26])
    return depth == 16 and colour in (2, 4, 6)


def _read_pillow(path: Path, categorical: bool) -> np.ndarray:
    from PIL import Image

    if path.suffix.lower() == ".png" and _png_is_16bit_colour(path):
        raise DataError(
            f"{path} is a 16-bit colour PNG, which Pillow would reduce to 8 bits; "
            "convert it to a 16-bit TIFF"
        )
    with Image.open(path) as img:
        mode = img.mode
        if mode == "P" and not categorical:
            img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
            img = img.convert("RGB")
        elif mode == "PA" and not categorical:
            img = img.convert("RGBA")
        arr = np.asarray(img)
    if arr.ndim == 3:
        arr = np.moveaxis(arr, -1, 0)  # Pillow is [H, W, C]
    return arr


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        arr = series.asarray()
        axes = series.axes
    if "Y" not in axes or "X" not in axes or len(axes) != arr.ndim:
        raise DataError(f"{path} has axes {axes!r}; expected an image with Y and X axes")
    # Every axis other than Y, X (samples S, channels C, pages I/Q, ...) becomes a channel.
    order = [i for i, a in enumerate(axes) if a not in "YX"] + [axes.index("Y"), axes.index("X")]
    arr = np.transpose(arr, order)
    return arr.reshape((-1, *arr.shape[-2:])) if arr.ndim != 2 else arr


def _read_npy(path: Path) -> np.ndarray:
    arr = np.load(path, allow_pickle=False)
    if arr.ndim not in (2, 3):
        raise DataError(f"{path} has shape {arr.shape}; an image array must be [C, H, W] or [H, W]")
    return arr


_READERS: dict[str, Callable[..., np.ndarray]] = {
    ".png": _read_pillow,
    ".jpg": _read_pillow,
    ".jpeg": _read_pillow,
    ".tif": lambda p, c: _read_tiff(p),
    ".tiff": lambda p, c: _read_tiff(p),
    ".npy": lambda p, c: _read_npy(p),
}


def _check_suffix(path: Path, where: str) -> None:
    if path.suffix.lower() not in _READERS:
        raise DataError(
            f"{where}: {path} has an unsupported type {path.suffix or '(no suffix)'!r}; "
            f"use {', '.join(IMAGE_SUFFIXES)}"
        )


def read_image(
    path: str | os.PathLike, *, categorical: bool = False, scale: bool = True
) -> np.ndarray:
    """One image file as a numpy array (scaling rules: module docstring).

    Returns:
        ``categorical=False``: float32 ``[C, H, W]`` (in [0, 1] for 8/16-bit data when
        ``scale``); ``categorical=True``: int64 ``[H, W]`` class indices.

    Raises:
        DataError: missing, unreadable or unsupported file; a class map with several
            channels or non-integer values.
    """
    path = Path(path)
    _check_suffix(path, "image")
    reader = _READERS[path.suffix.lower()]
    try:
        arr = reader(path, categorical)
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"image {path} not found; check the image list") from None
    except MemoryError:
        raise
    except Exception as exc:  # Pillow and tifffile raise many exception types for bad files
        raise DataError(
            f"{path} could not be read as an image ({_short(exc)}); the file may be corrupt"
        ) from None
    if arr.dtype.kind not in "biuf":
        raise DataError(f"{path} holds {arr.dtype} values; images must be numeric")
    if categorical:
        return _as_class_map(arr, path)
    if arr.ndim == 2:
        arr = arr[None]
    return _to_float(arr, scale)


def _to_float(arr: np.ndarray, scale: bool) -> np.ndarray:
    # By kind and size, not dtype equality: a big-endian uint16 (">u2") is 16-bit imagery too.
    if scale and arr.dtype.kind == "u" and arr.dtype.itemsize in (1, 2):
        full = np.float32(255 if arr.dtype.itemsize == 1 else 65535)
        return arr.astype(np.float32) / full
    return np.ascontiguousarray(arr, dtype=np.float32)


def _as_class_map(arr: np.ndarray, path: Path) -> np.ndarray:
    if arr.ndim == 3:
        if arr.shape[0] != 1:
            raise DataError(
                f"{path} has {arr.shape[0]} channels but is read as a class map; save class maps "
                "as single-channel (grayscale or palette) images, or list the key as an image"
            )
        arr = arr[0]
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise DataError(
                f"{path} holds non-integer values but is read as a class map; "
                "store class indices as integers"
            )
    return np.ascontiguousarray(arr, dtype=np.int64)


# --------------------------------------------------------------------------- lists


def _file_keys(entry: Mapping[str, Any]) -> list[str]:
    return [k for k, v in entry.items() if k not in META_KEYS and isinstance(v, str)]


def _load_document(path: Path) -> Any:
    kind = _LIST_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise DataError(f"image list {path} must be a .json, .yaml or .yml file")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"image list {path} not found; check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"image list {path} could not be read ({_short(exc)})") from None
    try:
        return json.loads(text) if kind == "json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise DataError(f"image list {path} is not valid {kind.upper()} ({_short(exc)})") from None


class ImageList:
    """The entries of an image list, validated: every entry is a mapping of keys to files.

    Build one with :meth:`load` (from a file) or directly from entries. Paths are resolved
    against ``root`` (the list file's folder) and stored absolute in :attr:`entries`.

    Args:
        entries: one mapping per sample (see the module docstring).
        root: folder that relative paths are relative to.
        keys: keys every entry must have (their files are the only ones checked).
        source: what the entries came from, for messages.
        check_files: check that every file exists (done here, not mid-training).

    Raises:
        DataError: an entry that is not a mapping, lacks a required key, has an unknown
            ``split``, or names a missing file or one of an unsupported type; the message
            names the entry index, the key and the path.
    """

    def __init__(
        self,
        entries: Sequence[Mapping[str, Any]],
        root: str | os.PathLike = ".",
        *,
        keys: Sequence[str] | None = None,
        source: str = "the image list",
        check_files: bool = True,
    ) -> None:
        self.root = Path(root).expanduser()
        self.source = source
        self.required = list(keys) if keys is not None else None
        for key in self.required or ():
            if key in META_KEYS:
                raise ConfigError(f"{key!r} cannot be an image key: it is reserved for metadata")
        self.entries: list[dict[str, Any]] = []
        for i, raw in enumerate(entries):
            self.entries.append(self._check_entry(i, raw, check_files))
        if not self.entries:
            raise DataError(f"{source} has no entries; add at least one sample")

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        *,
        keys: Sequence[str] | None = None,
        check_files: bool = True,
    ) -> ImageList:
        """Read a JSON/YAML list (``[...]`` or ``{entries: [...]}``) and validate it."""
        path = Path(path).expanduser()
        doc = _load_document(path)
        if isinstance(doc, Mapping):
            if "entries" not in doc:
                raise DataError(
                    f"image list {path} is a mapping without 'entries'; "
                    "write a list of entries or {entries: [...]}"
                )
            doc = doc["entries"]
        if not isinstance(doc, list):
            raise DataError(
                f"image list {path} must hold a list of entries, got {type(doc).__name__}"
            )
        return cls(doc, path.parent, keys=keys, source=str(path), check_files=check_files)

    def _check_entry(self, i: int, raw: Any, check_files: bool) -> dict[str, Any]:
        where = f"entry {i} of {self.source}"
        if not isinstance(raw, Mapping):
            raise DataError(f"{where} is a {type(raw).__name__}, not a mapping of keys to files")
        entry = {str(k): v for k, v in raw.items()}
        split = entry.get("split")
        if split is not None and split not in SPLITS:
            raise DataError(f"{where} has split {split!r}; use one of {', '.join(SPLITS)}")
        files = _file_keys(entry)
        if self.required is not None:
            missing = [k for k in self.required if k not in files]
            if missing:
                raise DataError(
                    f"{where} has no {', '.join(map(repr, missing))} "
                    f"(it has {', '.join(files) or 'no files'}); add the file(s) or remove the entry"
                )
            checked = self.required
        else:
            checked = files
        for key in files:
            value = entry[key]
            path = Path(value).expanduser()
            path = path if path.is_absolute() else self.root / path
            entry[key] = path
            if key in checked:
                _check_suffix(path, f"{where}, key {key!r}")
                if check_files and not path.is_file():
                    raise DataError(
                        f"{where}, key {key!r}: file {path} not found; "
                        "fix the path (relative paths are relative to the list file) or remove the entry"
                    )
        return entry

    def __len__(self) -> int:
        return len(self.entries)

    def __repr__(self) -> str:
        return f"ImageList({self.source}, {len(self)} entries, keys {self.keys()})"

    def keys(self) -> list[str]:
        """File keys found in any entry, sorted."""
        return sorted({k for e in self.entries for k in _file_keys_resolved(e)})

    def domains(self) -> list[str]:
        """Values of ``domain`` found in the entries, sorted."""
        return sorted({str(e["domain"]) for e in self.entries if e.get("domain") is not None})

    def subset(self, indices: Iterable[int]) -> ImageList:
        """The entries at ``indices`` (already validated: no file is checked again)."""
        out = ImageList.__new__(ImageList)
        out.root, out.source, out.required = self.root, self.source, self.required
        out.entries = [self.entries[i] for i in indices]
        return out

    def split(self, val_fraction: float = 0.1, seed: int = 0) -> tuple[ImageList, ImageList]:
        """``(train, val)`` lists; see :func:`split_entries` (entries with ``split: test``
        are in neither)."""
        train, val = split_entries(self.entries, val_fraction, seed, root=self.root)
        return self.subset(train), self.subset(val)

    def dataset(self, **kwargs: Any) -> ImageListDataset:
        """A torch Dataset over these entries (arguments: :class:`ImageListDataset`)."""
        return ImageListDataset(self, **kwargs)


def _file_keys_resolved(entry: Mapping[str, Any]) -> list[str]:
    return [k for k, v in entry.items() if k not in META_KEYS and isinstance(v, (str, Path))]


def _entry_hash(entry: Mapping[str, Any], seed: int, root: Path | None) -> int:
    """A stable 64-bit hash of an entry's files (as relative paths) and the seed."""
    files = {}
    for key in sorted(_file_keys_resolved(entry)):
        path = Path(entry[key])
        if root is not None:
            try:
                path = path.relative_to(root)
            except ValueError:
                pass
        files[key] = path.as_posix()
    # Paths relative to the list, not absolute ones: the split must not change when the
    # data folder moves. sha256, not hash(): Python salts str hashes per process.
    text = json.dumps(
        {"seed": int(seed), "files": files, "name": entry.get("name")}, sort_keys=True
    )
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def split_entries(
    entries: Sequence[Mapping[str, Any]],
    val_fraction: float = 0.1,
    seed: int = 0,
    *,
    root: Path | None = None,
) -> tuple[list[int], list[int]]:
    """Deterministic train/validation split: ``(train_indices, val_indices)``, each ascending.

    An entry with a ``split`` key keeps it (``test`` entries are in neither list). The
    others are ranked by a seeded hash of their files and name, and the
    ``round(val_fraction * n)`` lowest go to validation. The result depends only on the
    entries and the seed (not on their order or the machine).
    """
    if not 0.0 <= val_fraction <= 1.0:
        raise ConfigError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    train, val, free = [], [], []
    for i, entry in enumerate(entries):
        split = entry.get("split")
        if split == "train":
            train.append(i)
        elif split == "val":
            val.append(i)
        elif split is None:
            free.append(i)
    ranked = sorted(free, key=lambda i: (_entry_hash(entries[i], seed, root), i))
    n_val = int(round(val_fraction * len(free)))
    val += ranked[:n_val]
    train += ranked[n_val:]
    return sorted(train), sorted(val)


class ImageListConfig(Section):
    """An image list and how it is read (recipes embed this in their schema)."""

    path: str
    keys: list[str] | None = Field(default=None, min_length=1)
    categorical: list[str] = Field(default_factory=lambda: list(DEFAULT_CATEGORICAL))
    unscaled: list[str] = Field(default_factory=list)
    val_fraction: float = Field(default=0.1, ge=0.0, le=1.0)
    seed: int = 0


class ImageListDataset(Dataset):
    """The entries of an image list as tensors.

    Item ``i``: for every file key read (``keys``, or all the entry's keys when ``keys`` is
    None) a tensor: float32 ``[C, H, W]`` for images, int64 ``[H, W]`` for class maps
    (keys in ``categorical``); plus ``"name"`` and ``"domain"`` (str) when the entry has
    them. With ``keys=None`` entries with different keys make items that do not collate
    into one batch: pass ``keys`` for training.

    Args:
        images: an :class:`ImageList` or the path of a list file.
        keys: keys every entry must have; only these are read.
        categorical: keys read as class maps.
        unscaled: image keys cast to float32 without the 8/16-bit scaling.
        split: ``"train"`` or ``"val"`` keeps that part of :func:`split_entries`
            (``val_fraction``, ``seed``); ``None`` keeps every entry.
        same_size: check that all arrays of an item have the same ``H, W``.
    """

    def __init__(
        self,
        images: ImageList | str | os.PathLike,
        *,
        keys: Sequence[str] | None = None,
        categorical: Iterable[str] = DEFAULT_CATEGORICAL,
        unscaled: Iterable[str] = (),
        split: Literal["train", "val"] | None = None,
        val_fraction: float = 0.1,
        seed: int = 0,
        same_size: bool = True,
    ) -> None:
        if not isinstance(images, ImageList):
            images = ImageList.load(images, keys=keys)
        elif keys is not None and images.required != list(keys):
            # Re-validate against the requested keys (files were checked when loaded only
            # for the keys required then).
            images = ImageList(
                [_relative_entry(e) for e in images.entries],
                images.root,
                keys=keys,
                source=images.source,
            )
        if split is not None:
            if split not in ("train", "val"):
                raise ConfigError(f"split must be 'train', 'val' or None, got {split!r}")
            train, val = images.split(val_fraction, seed)
            images = train if split == "train" else val
            if len(images) == 0:
                raise DataError(
                    f"the {split} split of {images.source} is empty; change val_fraction "
                    f"({val_fraction}) or the entries' split keys"
                )
        self.images = images
        self.keys = list(keys) if keys is not None else None
        self.categorical = frozenset(categorical)
        self.unscaled = frozenset(unscaled)
        self.same_size = same_size

    @classmethod
    def from_config(
        cls, cfg: ImageListConfig, split: Literal["train", "val"] | None = None
    ) -> ImageListDataset:
        return cls(
            cfg.path,
            keys=cfg.keys,
            categorical=cfg.categorical,
            unscaled=cfg.unscaled,
            split=split,
            val_fraction=cfg.val_fraction,
            seed=cfg.seed,
        )

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"entry {i} out of range ({len(self)} entries)")
        entry = self.images.entries[i % len(self)]
        keys = self.keys if self.keys is not None else _file_keys_resolved(entry)
        item: dict[str, Any] = {}
        sizes = {}
        for key in keys:
            arr = read_image(
                entry[key], categorical=key in self.categorical, scale=key not in self.unscaled
            )
            sizes[key] = arr.shape[-2:]
            item[key] = torch.from_numpy(arr)
        if self.same_size and len(set(sizes.values())) > 1:
            shown = ", ".join(f"{k} {h}x{w}" for k, (h, w) in sizes.items())
            raise DataError(
                f"entry {i} of {self.images.source} has images of different sizes ({shown}); "
                "resample them to one grid"
            )
        for meta in ("name", "domain"):
            if entry.get(meta) is not None:
                item[meta] = str(entry[meta])
        return item


def _relative_entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Path) else v for k, v in entry.items()}


# --------------------------------------------------------------------------- build_index


def _scan_key_folder(folder: Path) -> dict[str, Path]:
    """``stem -> file`` of the supported files in one key folder (hidden files skipped)."""
    found: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or not p.is_file() or p.suffix.lower() not in _READERS:
            continue
        if p.stem in found:
            raise DataError(
                f"{found[p.stem].name} and {p.name} in {folder} have the same stem; "
                "keep one file per sample and key"
            )
        found[p.stem] = p
    return found


def _has_images(folder: Path) -> bool:
    return any(
        p.is_file() and not p.name.startswith(".") and p.suffix.lower() in _READERS
        for p in folder.iterdir()
    )


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _layout(folder: Path) -> dict[str | None, dict[str, Path]]:
    """``{domain or None: {key: key folder}}`` for the flat or the domain layout."""
    subs = _subfolders(folder)
    if not subs:
        raise DataError(
            f"{folder} has no sub-folders; put one folder per key (x/, s/, ...), "
            "or one per domain holding one per key"
        )
    flat = [s for s in subs if _has_images(s)]
    nested = [s for s in subs if s not in flat and any(_has_images(k) for k in _subfolders(s))]
    if flat and nested:
        raise DataError(
            f"{folder} mixes key folders ({', '.join(s.name for s in flat)}) and domain folders "
            f"({', '.join(s.name for s in nested)}); use one layout"
        )
    if flat:
        return {None: {s.name: s for s in flat}}
    if nested:
        return {d.name: {k.name: k for k in _subfolders(d) if _has_images(k)} for d in nested}
    raise DataError(
        f"no {'/'.join(IMAGE_SUFFIXES)} files under {folder}/<key>/ or {folder}/<domain>/<key>/; "
        "check the folder"
    )


def list_format(path: Path) -> str:
    """``json`` or ``yaml`` from the suffix of a list file; a ConfigError otherwise."""
    kind = _LIST_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise ConfigError(f"image list {path} must end in .json, .yaml or .yml")
    return kind


def build_index(
    folder: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    val_fraction: float = 0.1,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Write an image list for a folder of images, one sub-folder per key.

    Layouts accepted (files of one sample share their stem; any supported suffix)::

        folder/x/0001.png  folder/s/0001.png  folder/w/0001.tif     # flat
        folder/rf/x/0001.png  folder/rf/s/0001.png  folder/sn/x/...  # domains

    In the domain layout each entry gets ``domain`` (the folder name), and stems are
    matched within a domain only. An entry holds the keys it has files for (an image
    without a mask is kept, with only ``x``). Files and folders starting with ``.`` and
    files of other types are ignored. Entries are sorted by domain and stem, each with
    ``name`` (the stem) and ``split`` (``train``/``val`` by :func:`split_entries`).

    Args:
        folder: the images.
        out: the list to write, ``.json`` or ``.yaml``/``.yml`` (default
            ``folder/index.json``). Paths in it are relative to its folder.
        val_fraction, seed: the validation split.
        overwrite: replace an existing list (otherwise an :class:`OutputExistsError`).
        progress: show a progress bar over the key folders.

    Returns:
        The document written: ``{"version", "keys", "domains", "counts", "entries"}``
        where ``counts`` is ``{key: number of files}``.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DataError(f"image folder {folder} not found; check the path")
    out = Path(out).expanduser() if out is not None else folder / "index.json"
    kind = list_format(out)
    check_writable(out, overwrite)

    layout = _layout(folder)
    for domain, key_dirs in layout.items():
        clash = sorted(set(key_dirs) & META_KEYS)
        if clash:
            where = f"{folder}/{domain}" if domain else str(folder)
            raise DataError(
                f"key folder(s) {', '.join(clash)} in {where} use reserved names; rename them"
            )
    jobs = [(d, k, p) for d, key_dirs in layout.items() for k, p in key_dirs.items()]
    scanned: dict[str | None, dict[str, dict[str, Path]]] = {d: {} for d in layout}
    for domain, key, path in track(jobs, "index", enabled=progress, unit="folders"):
        scanned[domain][key] = _scan_key_folder(path)

    base = out.parent.resolve()
    entries: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    for domain in sorted(scanned, key=lambda d: d or ""):
        files = scanned[domain]
        for stem in sorted({s for found in files.values() for s in found}):
            entry: dict[str, Any] = {"name": stem}
            if domain is not None:
                entry["domain"] = domain
            for key in sorted(files):
                if stem in files[key]:
                    entry[key] = Path(os.path.relpath(files[key][stem].resolve(), base)).as_posix()
                    counts[key] = counts.get(key, 0) + 1
            entries.append(entry)
    train, val = split_entries(entries, val_fraction, seed, root=base)
    for i in val:
        entries[i]["split"] = "val"
    for i in train:
        entries[i]["split"] = "train"

    doc = {
        "version": 1,
        "keys": sorted(counts),
        "domains": sorted(d for d in scanned if d is not None),
        "counts": dict(sorted(counts.items())),
        "entries": entries,
    }
    if kind == "json":
        text = json.dumps(doc, indent=1) + "\n"
    else:
        text = yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=120)
    atomic_write_text(out, text)
    return doc
