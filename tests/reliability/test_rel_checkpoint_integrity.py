"""Integrity: a checkpoint whose bytes were changed after writing is refused, by name.

safetensors has no checksum of its own; ``save_checkpoint`` writes one for the tensors
(names, dtypes, shapes, bytes) and one for the header metadata. Damage is made by
code: bytes flipped in the tensor data, in the header JSON's tensor index and in its
metadata (breaking the JSON, or keeping it valid with changed content), and every
single-bit flip of a small file in turn.
"""

from __future__ import annotations

import json
import struct

import pytest
import torch
from rel_helpers import assert_one_line_error, cli

import geogan
from geogan.core.checkpoint import load_checkpoint, read_metadata, save_checkpoint
from geogan.core.errors import CheckpointError
from geogan.training.trainer import latest_resume


def _good(path, kind="resume"):
    g = torch.Generator().manual_seed(0)
    tensors = {
        "model/generator/w": torch.randn(8, 8, generator=g),
        "model/generator/b": torch.randn(8, generator=g),
        "optim/generator/step": torch.tensor(3.0),
    }
    return save_checkpoint(path, tensors, {"kind": kind, "step": 7, "lr_scale": 0.5})


def _split(data: bytes) -> tuple[int, str]:
    (n,) = struct.unpack("<Q", data[:8])
    return n, data[8 : 8 + n].decode()


def _replace_in_header(data: bytes, old: str, new: str) -> bytes:
    """``data`` with the first ``old`` in the header JSON replaced by ``new`` (same length)."""
    assert len(old) == len(new)
    n, header = _split(data)
    assert old in header, old
    return data[:8] + header.replace(old, new, 1).encode() + data[8 + n :]


def _refused(path, *words):
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message, message
    for w in words:
        assert w in message, (w, message)
    return message


def test_flipped_bytes_are_refused_and_named(tmp_path):
    good = _good(tmp_path / "good.safetensors")
    data = good.read_bytes()
    n, header = _split(data)
    meta_start = 8 + header.index('"__metadata__"')
    cases = {}
    # tensor data: one byte in the middle of the data section, one bit of the last byte
    mid = bytearray(data)
    mid[8 + n + (len(data) - 8 - n) // 2] ^= 0x10
    cases["tensor data"] = (bytes(mid), ("damaged", "tensor data"))
    last = bytearray(data)
    last[-1] ^= 0x01
    cases["tensor data, last bit"] = (bytes(last), ("damaged", "tensor data"))
    # the header's tensor index: a shape digit (sizes no longer add up), a name
    # (valid JSON, right sizes), a dtype of the same width (F32 -> I32)
    cases["tensor shape"] = (
        _replace_in_header(data, '"shape":[8,8]', '"shape":[8,9]'),
        ("damaged",),
    )
    cases["tensor name"] = (
        _replace_in_header(data, "model/generator/w", "model/generator/v"),
        ("damaged", "tensor data"),
    )
    cases["tensor dtype"] = (
        _replace_in_header(data, '"dtype":"F32"', '"dtype":"I32"'),
        ("damaged", "tensor data"),
    )
    lo, hi = json.loads(header)["model/generator/b"]["data_offsets"]
    hi2 = hi + 1 if hi % 10 != 9 else hi - 1  # same number of digits
    cases["tensor offsets"] = (
        _replace_in_header(data, f'"data_offsets":[{lo},{hi}]', f'"data_offsets":[{lo},{hi2}]'),
        ("damaged",),
    )
    # the metadata: a byte that breaks the JSON, and valid JSON with changed content
    broken = bytearray(data)
    broken[meta_start] ^= 0x01  # the opening quote of "__metadata__" -> not JSON any more
    cases["header JSON"] = (bytes(broken), ("damaged",))
    cases["metadata value"] = (
        _replace_in_header(data, '\\"step\\": 7', '\\"step\\": 8'),
        ("damaged", "metadata"),
    )
    v = geogan.__version__
    cases["metadata version string"] = (
        _replace_in_header(
            data,
            f'"geogan_version":"{v}"',
            f'"geogan_version":"{v[:-1]}{"8" if v[-1] == "9" else "9"}"',
        ),
        ("damaged", "metadata"),
    )
    cases["checksum entry"] = (
        _replace_in_header(data, '\\"algorithm\\"', '\\"algorithx\\"'),
        ("damaged", "checksum"),
    )
    for i, (what, (blob, words)) in enumerate(cases.items()):
        assert blob != data and len(blob) == len(data), what
        path = tmp_path / f"case_{i:02d}.safetensors"
        path.write_bytes(blob)
        _refused(path, *words)
        if "metadata" in words or "checksum" in words:  # caught from the header alone
            with pytest.raises(CheckpointError, match="damaged"):
                read_metadata(path)


def test_every_single_bit_flip_is_refused_or_harmless(tmp_path):
    # Exhaustive over a small file: a flip either raises CheckpointError (one line, the
    # file named) or leaves exactly the same tensors and metadata, which can only happen
    # in the spaces that pad the header JSON (one whitespace turned into another).
    # Nothing loads changed, and a flip in the checksum's own key does not pass the
    # file off as one from before checksums.
    good = _good(tmp_path / "good.safetensors")
    data = good.read_bytes()
    n, header = _split(data)
    padding = 8 + len(header.rstrip())
    ref_tensors, ref_meta = load_checkpoint(good)
    path = tmp_path / "flipped.safetensors"
    harmless = 0
    for pos in range(len(data)):
        blob = bytearray(data)
        blob[pos] ^= 1 << (pos % 8)
        path.write_bytes(bytes(blob))
        try:
            tensors, meta = load_checkpoint(path)
        except CheckpointError as exc:
            assert "\n" not in str(exc) and str(path) in str(exc), (pos, str(exc))
            continue
        harmless += 1
        assert padding <= pos < 8 + n, pos
        assert meta == ref_meta, pos
        assert tensors.keys() == ref_tensors.keys(), pos
        assert all(torch.equal(tensors[k], ref_tensors[k]) for k in tensors), pos
    assert harmless <= 8 + n - padding


def test_latest_resume_skips_a_damaged_newer_checkpoint(tmp_path):
    ckpt = tmp_path / "checkpoints"
    _good(ckpt / "resume_000000004.safetensors")
    data = bytearray((ckpt / "resume_000000004.safetensors").read_bytes())
    data[-5] ^= 0x04  # complete, readable by safetensors, but not what was written
    (ckpt / "resume_000000008.safetensors").write_bytes(bytes(data))
    assert latest_resume(ckpt) == ckpt / "resume_000000004.safetensors"


def test_generate_on_a_damaged_export_exits_2_naming_the_file(trained, tmp_path, capsys):
    data = bytearray(trained["model"].read_bytes())
    data[len(data) - 100] ^= 0x40  # a weight of the exported generator
    bad = tmp_path / "model_damaged.safetensors"
    bad.write_bytes(bytes(data))
    out = tmp_path / "ens.nc"
    code, err = cli(["generate", str(bad), "--out", str(out)], capsys)
    assert_one_line_error(code, err, bad.name, "damaged")
    assert not out.exists()
    header = json.loads(_split(bytes(data))[1])
    assert "geogan_checksum" in header["__metadata__"]
