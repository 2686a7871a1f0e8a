"""Atomic file and directory writes: write to a temporary name, then rename.

A crash (even SIGKILL) while writing never leaves a partial file under the
final name: readers see either the old complete file or the new one. A killed
write leaves its temporary folder (``.<name>.<random>.tmp``) beside the final
name; :func:`remove_stale_temporaries` clears them (the Trainer does so for its
run directory when it starts).

A write that the file system refuses (disk full, quota exceeded, file size
limit, no permission, read-only) becomes an :class:`OutputWriteError` naming the
final path, e.g. ``no space left on device while writing runs/x/model.safetensors``,
and nothing is left under the final name (see :func:`write_failure`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from geogan.core.errors import GeoganError, OutputExistsError, OutputWriteError

TMP_SUFFIX = ".tmp"

# errno -> (what happened, how to fix it)
_WRITE_ERRNOS = {
    errno.ENOSPC: ("no space left on device", "free some space or write elsewhere"),
    errno.EDQUOT: ("disk quota exceeded", "free some space or write elsewhere"),
    errno.EFBIG: (
        "file too large for the file system or the file size limit (ulimit -f)",
        "raise the limit or write elsewhere",
    ),
    errno.EACCES: ("permission denied", "choose a location you can write to"),
    errno.EPERM: ("operation not permitted", "choose a location you can write to"),
    errno.EROFS: ("read-only file system", "choose a location you can write to"),
}
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
# Native writers lose errno: Rust I/O errors (safetensors) say "(os error 28)", netCDF/HDF5
# only "HDF error". Below this much free space such a failure is taken to be a full disk.
_LOW_SPACE_BYTES = 1 << 20
_OS_ERROR_IN_TEXT = re.compile(r"os error (\d+)")


def _free_bytes(path: Path) -> int | None:
    for folder in (path.parent, *path.parent.parents):
        if folder.exists():
            try:
                return shutil.disk_usage(folder).free
            except OSError:
                return None
    return None


def write_failure(exc: BaseException, path: str | os.PathLike) -> OutputWriteError | None:
    """An :class:`OutputWriteError` if ``exc`` is the file system refusing to write ``path``, else None.

    Recognised: ``OSError`` with errno ENOSPC, EDQUOT, EFBIG, EACCES, EPERM or EROFS; native
    errors quoting one of these (``os error 28``); and ``OSError``/``RuntimeError``/safetensors
    errors raised while the disk holding ``path`` has less than 1 MiB free (disk full).
    """
    if isinstance(exc, OutputWriteError):
        return exc
    if isinstance(exc, GeoganError):
        return None
    code = exc.errno if isinstance(exc, OSError) and exc.errno in _WRITE_ERRNOS else None
    if code is None:
        found = _OS_ERROR_IN_TEXT.search(str(exc))
        if found and int(found.group(1)) in _WRITE_ERRNOS:
            code = int(found.group(1))
    path = Path(path)
    if code is None:
        native = isinstance(exc, (OSError, RuntimeError)) or type(exc).__module__.startswith(
            "safetensors"
        )
        free = _free_bytes(path) if native else None
        if free is None or free >= _LOW_SPACE_BYTES:
            return None
        code = errno.ENOSPC
    what, fix = _WRITE_ERRNOS[code]
    return OutputWriteError(f"{what} while writing {path}; {fix}")


def output_error(exc: BaseException, path: str | os.PathLike) -> BaseException:
    """What to raise when writing ``path`` failed with ``exc``: the :func:`write_failure` line
    for a refused write, else, for the I/O errors native writers raise (netCDF/HDF5's
    ``RuntimeError: NetCDF: HDF error``, an ``OSError`` of any errno, zarr/numcodecs errors),
    one :class:`OutputWriteError` line naming the file; anything else (a bug) unchanged."""
    failure = write_failure(exc, path)
    if failure is not None:
        return failure
    if isinstance(exc, GeoganError):
        return exc
    if isinstance(exc, (OSError, RuntimeError)) or type(exc).__module__.split(".")[0] in (
        "netCDF4",
        "h5py",
        "zarr",
        "numcodecs",
        "safetensors",
    ):
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        return OutputWriteError(
            f"could not write {path} ({reason}); nothing was written there and an older file of "
            "that name is untouched; check the disk, the file size limit (ulimit -f) and the path"
        )
    return exc


def check_writable(path: str | os.PathLike, overwrite: bool) -> Path:
    """Refuse an existing ``path`` unless ``overwrite``; create its parent folder."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"output {path} exists; pass --overwrite to replace it")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise (write_failure(exc, path) or exc) from None
    return path


def fresh_dir(path: str | os.PathLike, overwrite: bool, what: str = "output") -> Path:
    """An empty folder at ``path`` for a command that writes many files (a demo, a report):
    an existing one is refused unless ``overwrite`` (then it is emptied first)."""
    path = Path(path)
    if path.exists():
        if not overwrite:
            raise OutputExistsError(
                f"{what} {path} exists; pass --overwrite or choose another --out"
            )
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    try:
        path.mkdir(parents=True)
    except OSError as exc:
        raise (write_failure(exc, path) or exc) from None
    return path


def remove_stale_temporaries(directory: str | os.PathLike) -> list[Path]:
    """Delete temporary folders (``.<name>.*.tmp``) that killed writes left in ``directory``.

    Only call this where no other process is writing (a run directory at the start of a
    run, on the main rank). Returns the removed paths.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    for p in directory.glob(f".*{TMP_SUFFIX}"):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    On any exception the temporary file or folder is removed and ``path`` is
    left as it was; a write the file system refuses is raised as an
    :class:`OutputWriteError` (see :func:`write_failure`). Use ``is_dir=True``
    for outputs that are folders (Zarr).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent))
    except OSError as exc:
        raise (write_failure(exc, path) or exc) from None
    target = tmp / path.name if not is_dir else tmp / "data"
    try:
        yield target
        if not target.exists():
            raise RuntimeError(f"nothing was written to the temporary path for {path}")
        if not is_dir:
            with open(target, "rb") as fh:
                os.fsync(fh.fileno())
        if path.is_dir() and not path.is_symlink():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(target, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(target, path)
        _fsync_dir(path.parent)
    except Exception as exc:
        failure = write_failure(exc, path)  # checked before the temporary file is removed
        if failure is not None:
            raise failure from None
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
