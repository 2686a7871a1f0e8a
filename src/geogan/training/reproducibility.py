"""Reproducibility files written into every run directory by the main rank.

:func:`write_reproducibility` writes, each atomically:

``git.txt``
    ``commit: <hash>``, ``dirty: true|false`` (``git status --porcelain`` lists
    anything, untracked files included) and the porcelain lines, for the
    checkout geogan is imported from; or ``not a git checkout`` when geogan is
    installed from a wheel.
``command.txt``
    The command line, shell-quoted, so that pasting it into a shell runs it again.
``config.yaml``
    The resolved config (:func:`geogan.config.save_resolved_config`).
``pip_freeze.txt``
    ``python -m pip freeze`` of the running interpreter (bounded by a timeout);
    when pip cannot run, the reason and the installed distributions as
    ``importlib.metadata`` lists them.
``reproduce.json``
    All of it in machine-readable form: command, git, Python, torch, CUDA,
    platform, host name and time (UTC).

Nothing here fails a run: a git or pip problem is written into the file instead.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import socket
import subprocess
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import BaseModel

import geogan
from geogan.config import save_resolved_config
from geogan.core.atomic import atomic_write_text

__all__ = [
    "GIT_LOOKUP_DIR",
    "NOT_A_CHECKOUT",
    "git_info",
    "pip_freeze",
    "write_reproducibility",
]

GIT_LOOKUP_DIR: Path = Path(geogan.__file__).resolve().parent
"""Where git looks for the checkout (the folder geogan is imported from)."""

NOT_A_CHECKOUT = "not a git checkout"
GIT_TIMEOUT_S = 10.0
PIP_TIMEOUT_S = 60.0
_MAX_STATUS_LINES = 200


def _run(args: list[str], cwd: Path | None, timeout: float) -> tuple[int | None, str, str]:
    """``(returncode, stdout, stderr)``; returncode None when the program could not run."""
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    env.pop("GIT_DIR", None)  # look for the checkout of GIT_LOOKUP_DIR, not an inherited one
    env.pop("GIT_WORK_TREE", None)
    try:
        out = subprocess.run(
            args,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return None, "", f"{args[0]} did not finish within {timeout:g} s"
    except OSError as exc:
        return None, "", f"cannot run {args[0]}: {exc.strerror or exc}"
    return out.returncode, out.stdout, out.stderr


def git_info(directory: str | os.PathLike | None = None) -> dict[str, Any] | None:
    """The commit, dirty flag and status of the git checkout holding ``directory``.

    ``directory`` defaults to :data:`GIT_LOOKUP_DIR`. Returns None when it is not
    inside a git checkout; ``{"error": ...}`` when git itself cannot run.
    """
    folder = Path(directory if directory is not None else GIT_LOOKUP_DIR)
    if not folder.is_dir():
        return None
    code, out, err = _run(["git", "rev-parse", "HEAD"], folder, GIT_TIMEOUT_S)
    if code is None:
        return {"error": err}
    if code != 0:
        return None
    commit = out.strip()
    code, status, err = _run(["git", "status", "--porcelain"], folder, GIT_TIMEOUT_S)
    _, top, _ = _run(["git", "rev-parse", "--show-toplevel"], folder, GIT_TIMEOUT_S)
    info: dict[str, Any] = {"commit": commit, "checkout": top.strip() or str(folder)}
    if code == 0:
        lines = status.splitlines()
        info["dirty"] = bool(lines)
        info["status"] = lines[:_MAX_STATUS_LINES]
        if len(lines) > _MAX_STATUS_LINES:
            info["status"].append(f"... and {len(lines) - _MAX_STATUS_LINES} more")
    else:
        info["dirty"] = None
        info["error"] = " ".join((err or "git status failed").split())
    return info


def _git_text(info: dict[str, Any] | None) -> str:
    if info is None:
        return NOT_A_CHECKOUT + "\n"
    if "commit" not in info:
        return f"unknown: {info.get('error', 'git failed')}\n"
    dirty = {True: "true", False: "false", None: "unknown"}[info["dirty"]]
    lines = [f"commit: {info['commit']}", f"dirty: {dirty}", f"checkout: {info['checkout']}"]
    if info.get("error"):
        lines.append(f"error: {info['error']}")
    if info.get("status"):
        lines += ["status (git status --porcelain):", *info["status"]]
    return "\n".join(lines) + "\n"


_FREEZE_CACHE: dict[tuple[str, float], str] = {}


def pip_freeze(timeout: float = PIP_TIMEOUT_S) -> tuple[bool, str]:
    """``(ok, text)``: ``python -m pip freeze`` of this interpreter, or why it failed
    followed by the distributions ``importlib.metadata`` finds.

    A successful result is reused for later runs in the same process (a ``--local``
    sweep, a test session): pip takes about a second.
    """
    key = (sys.executable, timeout)
    if key in _FREEZE_CACHE:
        return True, _FREEZE_CACHE[key]
    code, out, err = _run([sys.executable, "-m", "pip", "freeze"], None, timeout)
    if code == 0:
        _FREEZE_CACHE[key] = out
        return True, out
    reason = err.strip().splitlines()[-1] if err.strip() else f"exit code {code}"
    dists = sorted(
        {
            f"{d.metadata['Name']}=={d.version}"
            for d in metadata.distributions()
            if d.metadata["Name"]
        },
        key=str.lower,
    )
    text = (
        f"# pip freeze failed: {reason}\n"
        "# installed distributions according to importlib.metadata:\n" + "\n".join(dists) + "\n"
    )
    return False, text


def _versions() -> dict[str, Any]:
    try:
        import torch

        torch_version, cuda = torch.__version__, torch.version.cuda
    except ImportError:  # pragma: no cover - torch is a dependency
        torch_version, cuda = None, None
    return {
        "geogan": geogan.__version__,
        "python": sys.version,
        "python_executable": sys.executable,
        "torch": torch_version,
        "cuda": cuda,
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
    }


def write_reproducibility(
    run_dir: str | os.PathLike, cfg: BaseModel, command: Sequence[str] | None = None
) -> dict[str, Any]:
    """Write ``git.txt``, ``command.txt``, ``config.yaml``, ``pip_freeze.txt`` and
    ``reproduce.json`` into ``run_dir``; return what ``reproduce.json`` holds.

    ``command`` is the command line as a list (default ``sys.argv``). Call it on the
    main rank only.
    """
    run_dir = Path(run_dir)
    argv = [str(a) for a in (command if command is not None else sys.argv)]
    command_line = shlex.join(argv)
    git = git_info()
    freeze_ok, freeze_text = pip_freeze(PIP_TIMEOUT_S)

    save_resolved_config(cfg, run_dir)
    atomic_write_text(run_dir / "command.txt", command_line + "\n")
    atomic_write_text(run_dir / "git.txt", _git_text(git))
    atomic_write_text(run_dir / "pip_freeze.txt", freeze_text)
    record = {
        "command": argv,
        "command_line": command_line,
        "cwd": os.getcwd(),
        "git": git,
        **_versions(),
        "pip_freeze": "pip_freeze.txt" if freeze_ok else "failed (see pip_freeze.txt)",
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    atomic_write_text(run_dir / "reproduce.json", json.dumps(record, indent=2) + "\n")
    return record
