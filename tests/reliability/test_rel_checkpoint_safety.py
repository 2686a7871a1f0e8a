"""Safe loading (issue 4, item 1): checkpoints never run code, damaged ones fail clearly.

Crafted files: pickles whose ``__reduce__`` calls ``os.system`` / ``exec`` to write a
marker file (as a torch zip file and as a raw pickle, with .pt/.pth/.ckpt and other
names), safetensors files with a bogus or oversized header, truncated at many points,
not written by geogan, with a corrupt geogan header. Loading must raise
:class:`CheckpointError`, never run the payload, and ``geogan generate`` on the file
must exit 2 with one line.
"""

from __future__ import annotations

import builtins
import json
import os
import pickle
import struct

import pytest
import torch
from rel_helpers import assert_one_line_error, cli
from safetensors.torch import save_file

from geogan.core.checkpoint import load_checkpoint, save_checkpoint
from geogan.core.errors import CheckpointError
from geogan.training.trainer import latest_resume


class SystemPayload:
    """Unpickling this runs a shell command that creates the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


class ExecPayload:
    """Unpickling this runs Python code that creates the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.exec, (f"open({self.marker!r}, 'w').write('pwned')",))


def _malicious_files(folder, marker):
    """(description, path) of files whose unpickling would create ``marker``."""
    files = []
    for cls in (SystemPayload, ExecPayload):
        payload = {"weight": torch.zeros(3), "evil": cls(marker)}
        for suffix in (".pt", ".pth", ".ckpt"):
            path = folder / f"zip_{cls.__name__}{suffix}"
            torch.save(payload, path)  # torch's zip format, pickle inside
            files.append((f"torch.save {cls.__name__} {suffix}", path))
        raw = folder / f"raw_{cls.__name__}.pt"
        raw.write_bytes(pickle.dumps(cls(marker), protocol=2))  # a bare legacy pickle
        files.append((f"raw pickle {cls.__name__}", raw))
        for name in (f"disguised_{cls.__name__}.safetensors", f"noext_{cls.__name__}"):
            path = folder / name
            torch.save(payload, path)
            files.append((f"torch.save {cls.__name__} as {name}", path))
    return files


def test_pickled_payloads_are_refused_and_never_run(tmp_path):
    marker = tmp_path / "PWNED"
    files = _malicious_files(tmp_path, marker)
    # the payloads are live: plain pickle.load would run them (the test can fail)
    pickle.loads(pickle.dumps(SystemPayload(marker)))
    assert marker.exists()
    marker.unlink()
    for what, path in files:
        with pytest.raises(CheckpointError) as info:
            load_checkpoint(path)
        message = str(info.value)
        assert "\n" not in message and str(path) in message, (what, message)
        assert not marker.exists(), f"{what}: the payload ran"
    legacy = [p for w, p in files if p.suffix in (".pt", ".pth", ".ckpt")]
    assert "may contain code" in str(
        pytest.raises(CheckpointError, load_checkpoint, legacy[0]).value
    )


def test_plain_legacy_tensor_file_still_loads(tmp_path):
    path = tmp_path / "old.pt"
    torch.save({"w": torch.arange(6.0)}, path)
    tensors, meta = load_checkpoint(path)
    assert torch.equal(tensors["w"], torch.arange(6.0)) and meta["kind"] == "legacy"
    torch.save({"w": torch.zeros(1), "n": 3}, tmp_path / "mixed.pt")  # not a flat tensor dict
    with pytest.raises(CheckpointError, match="flat dict of tensors"):
        load_checkpoint(tmp_path / "mixed.pt")


def _good(path):
    tensors = {"a": torch.arange(4096, dtype=torch.float32), "b": torch.ones(64, 64)}
    return save_checkpoint(path, tensors, {"kind": "resume", "step": 7})


def _header(meta: dict, tensors_json: dict | None = None) -> bytes:
    header = json.dumps({"__metadata__": meta, **(tensors_json or {})}).encode()
    return struct.pack("<Q", len(header)) + header


def _damaged_files(folder):
    good = _good(folder / "good.safetensors")
    data = good.read_bytes()
    (header_len,) = struct.unpack("<Q", data[:8])
    cases = {
        "empty": b"",
        "seven bytes": data[:7],
        "header length beyond the file": struct.pack("<Q", 10**12) + data[8:],
        "header not JSON": struct.pack("<Q", 20) + b"{not json at all!!!}" + data[28:],
        "header JSON list": _header_raw(b"[1, 2, 3]"),
        "tensor offsets beyond the file": _header(
            {"geogan_format": "1"},
            {"x": {"dtype": "F32", "shape": [1000], "data_offsets": [0, 4000]}},
        )
        + b"\0" * 16,
        "text file": b"this is not a checkpoint\n" * 10,
        "random bytes": bytes(range(256)) * 8,
    }
    # truncated at many points: inside the length, the header and the tensor data
    for cut in sorted(
        {
            1,
            8,
            9,
            8 + header_len // 2,
            8 + header_len,
            8 + header_len + 1,
            len(data) // 2,
            len(data) - 1,
        }
    ):
        cases[f"truncated at byte {cut} of {len(data)}"] = data[:cut]
    paths = []
    for i, (what, blob) in enumerate(cases.items()):
        path = folder / f"damaged_{i:02d}.safetensors"
        path.write_bytes(blob)
        paths.append((what, path))
    # valid safetensors, not geogan's
    foreign = folder / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign), metadata={"format": "pt"})
    paths.append(("written by another program", foreign))
    # valid safetensors, corrupt geogan header
    for what, meta in {
        "format not a number": {"geogan_format": "one", "meta": "{}"},
        "meta not JSON": {"geogan_format": "1", "meta": "{kind: resume"},
        "meta not an object": {"geogan_format": "1", "meta": "[1, 2]"},
        "format from the future": {"geogan_format": "99", "meta": "{}"},
    }.items():
        path = folder / f"header_{len(paths):02d}.safetensors"
        save_file({"w": torch.zeros(2)}, str(path), metadata=meta)
        paths.append((what, path))
    return good, paths


def _header_raw(blob: bytes) -> bytes:
    return struct.pack("<Q", len(blob)) + blob


def test_damaged_safetensors_give_checkpoint_error(tmp_path):
    good, damaged = _damaged_files(tmp_path)
    tensors, meta = load_checkpoint(good)
    assert meta["step"] == 7 and meta["format_version"] == 1 and tensors["b"].shape == (64, 64)
    assert len(damaged) >= 20
    for what, path in damaged:
        with pytest.raises(CheckpointError) as info:
            load_checkpoint(path)
        assert "\n" not in str(info.value) and str(path) in str(info.value), what


def test_latest_resume_skips_damaged_and_temporary_files(tmp_path):
    ckpt = tmp_path / "checkpoints"
    _good(ckpt / "resume_000000004.safetensors")
    data = (ckpt / "resume_000000004.safetensors").read_bytes()
    (ckpt / "resume_000000008.safetensors").write_bytes(data[: len(data) // 2])  # newer, truncated
    tmpdir = ckpt / ".resume_000000012.safetensors.abc123.tmp"  # a killed write's leftovers
    tmpdir.mkdir()
    (tmpdir / "resume_000000012.safetensors").write_bytes(data)
    assert latest_resume(ckpt) == ckpt / "resume_000000004.safetensors"
    assert latest_resume(tmp_path / "missing") is None


def test_generate_on_unsafe_or_damaged_checkpoints_exits_2(tmp_path, capsys):
    marker = tmp_path / "PWNED"
    _, damaged = _damaged_files(tmp_path)
    malicious = _malicious_files(tmp_path, marker)
    picked = (
        malicious[:1]
        + malicious[3:4]
        + [
            d
            for d in damaged
            if "truncated at byte 9 " in d[0]
            or d[0] in ("header not JSON", "written by another program", "meta not JSON")
        ]
    )
    # a readable checkpoint of the wrong kind
    resume = _good(tmp_path / "resume_000000007.safetensors")
    picked.append(("a resume checkpoint", resume))
    torch.save({"w": torch.zeros(2)}, tmp_path / "plain.pt")
    picked.append(("a plain legacy tensor file", tmp_path / "plain.pt"))
    for what, path in picked:
        out = tmp_path / f"out_{path.stem}.nc"
        code, err = cli(["generate", str(path), "--out", str(out)], capsys)
        assert_one_line_error(code, err, path.name)
        assert not out.exists() and not marker.exists(), what
