"""Checkpoints in a safe format: safetensors weights plus JSON metadata, checksummed.

One file per checkpoint. Tensors are stored by safetensors (no pickle, no
code); everything else (config, step, model specs, normalisation, the
non-tensor parts of optimizer and RNG states) is JSON in the safetensors
header metadata. Loading never unpickles. Legacy ``.pt`` files are read only
with ``torch.load(weights_only=True)``, which refuses pickled code.

Two kinds (``meta["kind"]``):
- ``export``: EMA generator weights, model spec, config, normalisation: enough to generate.
- ``resume``: all models, optimizers, scaler, step, RNG states, sampler position.

Integrity: safetensors has no checksum, so flipped bytes would load silently.
:func:`save_checkpoint` writes ``geogan_checksum`` into the header metadata:
JSON ``{"algorithm": "xxh3_128", "tensors": <hex>, "metadata": <hex>}``, where
``tensors`` hashes every tensor in name order (name, dtype, shape, then its
bytes, each length-prefixed) and ``metadata`` hashes the other header metadata
entries (canonical JSON, sorted keys). :func:`load_checkpoint` verifies both;
:func:`read_metadata` reads only the header and verifies the metadata digest.
Files written before checksums existed load with one logged warning.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import pickle
import struct
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import xxhash
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

import geogan
from geogan.core.atomic import atomic_path
from geogan.core.errors import CheckpointError
from geogan.core.modules import unwrap

FORMAT_VERSION = 1
SUFFIX = ".safetensors"
CHECKSUM_KEY = "geogan_checksum"
#: Hash used for new checkpoints: xxh3-128 (~10 GB/s on one core) guards against
#: accidental damage (bit rot, partial overwrites), not against deliberate tampering:
#: whoever can edit the file can rewrite the checksum beside it.
CHECKSUM_ALGORITHM = "xxh3_128"
CHECKSUM_ALGORITHMS: dict[str, Callable[[], Any]] = {
    "xxh3_128": xxhash.xxh3_128,
    "blake2b_128": lambda: hashlib.blake2b(digest_size=16),
}
# safetensors refuses headers above 100 MB; a larger length is damage, not a header.
_MAX_HEADER_BYTES = 100 * 1024 * 1024
_DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip
# The header entries of files written before checksums existed.
_PRE_CHECKSUM_KEYS = {"geogan_format", "geogan_version", "meta"}
_log = logging.getLogger(__name__)
_warned_unverified: set[str] = set()


def _hasher(algorithm: str) -> Any:
    try:
        return CHECKSUM_ALGORITHMS[algorithm]()
    except KeyError:
        raise CheckpointError(
            f"unknown checksum algorithm {algorithm!r}; choose one of {sorted(CHECKSUM_ALGORITHMS)}"
        ) from None


def _update_framed(h: Any, data: Any) -> None:
    """Feed ``data`` (bytes-like) preceded by its length, so that fields cannot run together."""
    view = memoryview(data)
    h.update(struct.pack("<Q", view.nbytes))
    h.update(view)


def tensor_digest(tensors: Mapping[str, torch.Tensor], algorithm: str = CHECKSUM_ALGORITHM) -> str:
    """Hex digest of tensors (CPU) in sorted-name order: name, dtype, shape, then raw bytes.

    Hashes each tensor's memory in place (a ``uint8`` view of a contiguous tensor,
    no copy); a non-contiguous tensor is made contiguous first.
    """
    h = _hasher(algorithm)
    for name in sorted(tensors):
        t = tensors[name].detach()
        if t.device.type != "cpu":
            t = t.cpu()
        t = t.contiguous()
        spec = json.dumps([name, str(t.dtype).removeprefix("torch."), list(t.shape)])
        _update_framed(h, spec.encode())
        _update_framed(h, t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def metadata_digest(header: Mapping[str, str], algorithm: str = CHECKSUM_ALGORITHM) -> str:
    """Hex digest of the header metadata entries other than the checksum (canonical JSON)."""
    h = _hasher(algorithm)
    body = {k: v for k, v in header.items() if k != CHECKSUM_KEY}
    h.update(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())
    return h.hexdigest()


def save_checkpoint(
    path: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
) -> Path:
    """Write ``tensors`` and JSON ``meta`` atomically to ``path``, with checksums.

    Tensors are made contiguous CPU copies; shared storage is split (safetensors
    refuses aliasing), so tied weights are stored twice. The checksums are
    computed from those copies (see the module docs).
    """
    path = Path(path)
    clean = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    header = {
        "geogan_format": str(FORMAT_VERSION),
        "geogan_version": geogan.__version__,
        "meta": json.dumps(meta, default=_json_default),
    }
    header[CHECKSUM_KEY] = json.dumps(
        {
            "algorithm": CHECKSUM_ALGORITHM,
            "tensors": tensor_digest(clean, CHECKSUM_ALGORITHM),
            "metadata": metadata_digest(header, CHECKSUM_ALGORITHM),
        }
    )
    with atomic_path(path) as tmp:
        save_file(clean, str(tmp), metadata=header)
    return path


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _damaged(path: Path, what: str) -> CheckpointError:
    return CheckpointError(
        f"checkpoint {path} is damaged or truncated ({what}); use another checkpoint"
    )


def _read_header(path: Path) -> dict[str, str]:
    """The safetensors header metadata of ``path``, reading the header only.

    Checks the 8-byte little-endian header length and every tensor's byte range
    against the file size, so a truncated or padded file is refused here.
    """
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            prefix = fh.read(8)
            if len(prefix) < 8:
                raise _damaged(path, f"{size} bytes, shorter than the 8-byte header length")
            (n,) = struct.unpack("<Q", prefix)
            if n > size - 8 or n > _MAX_HEADER_BYTES:
                raise _damaged(path, f"header length {n} but the file has {size} bytes")
            raw = fh.read(n)
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from None
    try:
        index = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise _damaged(path, f"header is not JSON: {str(exc)[:80]}") from None
    if not isinstance(index, dict):
        raise _damaged(path, "header is not a JSON object")
    meta = index.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise _damaged(path, "header metadata is not a map of strings")
    end = 0
    for name, entry in index.items():
        try:
            lo, hi = (int(v) for v in entry["data_offsets"])
            shape = [int(d) for d in entry["shape"]]
            dtype = str(entry["dtype"])
        except (TypeError, KeyError, ValueError):
            raise _damaged(path, f"tensor {name!r} has a malformed header entry") from None
        if not 0 <= lo <= hi or min(shape, default=0) < 0:
            raise _damaged(path, f"tensor {name!r} has offsets {lo}..{hi} and shape {shape}")
        if dtype in _DTYPE_BYTES and hi - lo != math.prod(shape) * _DTYPE_BYTES[dtype]:
            raise _damaged(path, f"tensor {name!r} is {hi - lo} bytes, not {dtype} {shape}")
        end = max(end, hi)
    if 8 + n + end != size:
        raise _damaged(path, f"header describes {8 + n + end} bytes but the file has {size}")
    return meta


def _geogan_meta(path: Path, header: dict[str, str]) -> dict[str, Any]:
    """Parse geogan's header entries (format, metadata) and verify the metadata digest."""
    if "geogan_format" not in header:
        raise CheckpointError(
            f"checkpoint {path} was not written by geogan (no geogan_format header)"
        )
    try:
        version = int(header["geogan_format"])
        meta = json.loads(header.get("meta", "{}"))
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        raise CheckpointError(
            f"checkpoint {path} has a corrupt geogan header ({str(exc)[:120]}); use another checkpoint"
        ) from None
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format {version}, newer than this geogan reads ({FORMAT_VERSION}); upgrade geogan"
        )
    checksum = _checksum_field(path, header)
    if (
        checksum is not None
        and metadata_digest(header, checksum["algorithm"]) != checksum["metadata"]
    ):
        raise CheckpointError(
            f"checkpoint {path} is damaged: its metadata do not match the checksum written "
            "with it; use another checkpoint"
        )
    if not isinstance(meta, dict):
        raise CheckpointError(
            f"checkpoint {path} has a corrupt geogan header (metadata is not a JSON object)"
        )
    meta["geogan_version"] = header.get("geogan_version")
    meta["format_version"] = version
    return meta


def _checksum_field(path: Path, header: dict[str, str]) -> dict[str, str] | None:
    """The parsed checksum entry, or None (after one warning per file) when there is none."""
    raw = header.get(CHECKSUM_KEY)
    if raw is None:
        if set(header) - _PRE_CHECKSUM_KEYS:
            # Only files from before checksums lack one, and they hold just these keys:
            # anything else means the checksum's own key was damaged (or renamed).
            raise CheckpointError(
                f"checkpoint {path} is damaged: its checksum entry is missing from a header "
                "that should have one; use another checkpoint"
            )
        key = str(path.resolve())
        if key not in _warned_unverified:
            _warned_unverified.add(key)
            _log.warning(
                "checkpoint %s has no checksum (written before geogan checksummed checkpoints); "
                "its contents cannot be verified",
                path,
            )
        return None
    try:
        checksum = json.loads(raw)
        fields = {k: str(checksum[k]) for k in ("algorithm", "tensors", "metadata")}
    except (ValueError, TypeError, KeyError):
        raise CheckpointError(
            f"checkpoint {path} is damaged: its checksum entry is corrupt; use another checkpoint"
        ) from None
    if fields["algorithm"] not in CHECKSUM_ALGORITHMS:
        raise CheckpointError(
            f"checkpoint {path} uses checksum {fields['algorithm']!r}, unknown to this geogan; "
            "upgrade geogan"
        )
    return fields


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata of a checkpoint without reading its tensor data.

    Reads the safetensors header (8-byte little-endian length + JSON), checks its
    sizes against the file size and verifies the metadata checksum; returns the
    same ``meta`` as :func:`load_checkpoint` (``kind``, ``models``, ``config``, ...
    plus ``geogan_version`` and ``format_version``). A legacy ``.pt`` file is read
    whole (it has no separate header). One-line ``CheckpointError`` on damage.
    """
    path = _existing(path)
    if path.suffix in {".pt", ".pth", ".ckpt"}:
        return _load_legacy(path)[1]
    return _geogan_meta(path, _read_header(path))


def _existing(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found; check the path or the run directory")
    return path


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint: ``(tensors, meta)``. Never unpickles anything but plain tensors.

    Verifies the checksums written by :func:`save_checkpoint` (metadata before the
    tensors are read, tensors after): a mismatch is a one-line ``CheckpointError``
    saying which part is damaged. Files without checksums load with a warning.
    """
    path = _existing(path)
    if path.suffix in {".pt", ".pth", ".ckpt"}:
        return _load_legacy(path)
    header = _read_header(path)
    meta = _geogan_meta(path, header)
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise _damaged(path, f"not a readable safetensors file: {str(exc)[:120]}") from None
    checksum = _checksum_field(path, header)
    if (
        checksum is not None
        and tensor_digest(tensors, checksum["algorithm"]) != checksum["tensors"]
    ):
        raise CheckpointError(
            f"checkpoint {path} is damaged: its tensor data (or their names, dtypes, shapes) "
            "do not match the checksum written with it; use another checkpoint"
        )
    return tensors, meta


def _load_legacy(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """A legacy torch file: a flat dict of tensors, loaded with ``weights_only=True``."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, AttributeError, EOFError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"refused to load {path}: it is not a plain tensor file and may contain code ({first[:160]})"
        ) from None
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"legacy checkpoint {path} must be a flat dict of tensors")
    return dict(obj), {"kind": "legacy", "format_version": 0}


def module_tensors(prefix: str, module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``{prefix/param: tensor}`` for a module's state dict (DDP / compile unwrapped)."""
    inner = unwrap(module)
    return {f"{prefix}/{k}": v for k, v in inner.state_dict().items()}


def load_module_tensors(
    prefix: str, module: torch.nn.Module, tensors: dict[str, torch.Tensor]
) -> None:
    inner = unwrap(module)
    sd = {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + "/")}
    try:
        inner.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        msg = str(exc).splitlines()[0]
        raise CheckpointError(f"weights for {prefix!r} do not match the model: {msg}") from None


def flatten_state(prefix: str, state: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Move every tensor of a nested state (optimizer, scaler) into ``tensors``.

    Returns a JSON-able copy where each tensor is replaced by ``{"__tensor__": key}``.
    """
    if isinstance(state, torch.Tensor):
        key = f"{prefix}"
        tensors[key] = state
        return {"__tensor__": key}
    if isinstance(state, dict):
        return {
            "__dict__": [[k, flatten_state(f"{prefix}/{k}", v, tensors)] for k, v in state.items()]
        }
    if isinstance(state, (list, tuple)):
        return [flatten_state(f"{prefix}/{i}", v, tensors) for i, v in enumerate(state)]
    return state


def unflatten_state(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`flatten_state` (dict keys keep their types, int or str)."""
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__dict__" in obj:
            return {k: unflatten_state(v, tensors) for k, v in obj["__dict__"]}
        return {k: unflatten_state(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [unflatten_state(v, tensors) for v in obj]
    return obj
