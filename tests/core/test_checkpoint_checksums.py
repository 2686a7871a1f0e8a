"""Checkpoint checksums and header-only metadata reads (core/checkpoint.py)."""

from __future__ import annotations

import json
import logging
import struct

import pytest
import torch
from safetensors.torch import save_file

import geogan.core.checkpoint as ckpt
from geogan.core.checkpoint import (
    CHECKSUM_KEY,
    load_checkpoint,
    metadata_digest,
    read_metadata,
    save_checkpoint,
    tensor_digest,
)
from geogan.core.errors import CheckpointError


def _tensors():
    g = torch.Generator().manual_seed(0)
    return {
        "model/w": torch.randn(4, 3, generator=g),
        "model/b16": torch.randn(5, generator=g).to(torch.bfloat16),
        "optim/step": torch.tensor(7.0),  # 0-dim
        "rng/state": torch.randint(0, 255, (16,), dtype=torch.uint8, generator=g),
        "i64": torch.arange(6, dtype=torch.int64).reshape(2, 3),
        "mask": torch.tensor([True, False, True]),
        "empty": torch.zeros(0, 3),
        "strided": torch.randn(6, 4, generator=g).t(),  # not contiguous
    }


def _header(path):
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + n])


def test_round_trip_of_every_dtype_with_checksums(tmp_path):
    tensors = _tensors()
    meta = {"kind": "resume", "step": 3, "nested": {"a": [1, 2.5, None]}}
    path = save_checkpoint(tmp_path / "c.safetensors", tensors, meta)
    loaded, got = load_checkpoint(path)
    assert loaded.keys() == tensors.keys()
    for k, v in tensors.items():
        assert loaded[k].dtype == v.dtype and torch.equal(loaded[k], v), k
    assert got["step"] == 3 and got["nested"] == meta["nested"] and got["format_version"] == 1
    checksum = json.loads(_header(path)["__metadata__"][CHECKSUM_KEY])
    assert checksum["algorithm"] == "xxh3_128"
    assert checksum["tensors"] == tensor_digest(tensors)
    assert CHECKSUM_KEY not in got  # the checksum is not part of the caller's metadata


def test_tensor_digest_covers_names_dtypes_shapes_and_bytes():
    base = {"a": torch.arange(4, dtype=torch.int32), "b": torch.ones(2, 2)}
    ref = tensor_digest(base)
    assert tensor_digest(dict(reversed(list(base.items())))) == ref  # canonical (sorted) order
    assert tensor_digest({"a": base["a"].clone(), "b": base["b"].clone()}) == ref
    variants = {
        "renamed": {"c": base["a"], "b": base["b"]},
        "same bytes, other dtype": {"a": base["a"].view(torch.float32), "b": base["b"]},
        "same bytes, other shape": {"a": base["a"].reshape(2, 2), "b": base["b"]},
        "one value": {
            "a": base["a"] + torch.tensor([0, 0, 0, 1], dtype=torch.int32),
            "b": base["b"],
        },
        "bytes moved between tensors": {
            "a": base["a"][:3],
            "b": torch.cat([base["b"].flatten(), base["a"][3:].view(torch.float32)]),
        },
    }
    for what, tensors in variants.items():
        assert tensor_digest(tensors) != ref, what
    assert tensor_digest(base, "blake2b_128") != ref  # another algorithm, another digest
    with pytest.raises(CheckpointError, match="unknown checksum algorithm"):
        tensor_digest(base, "crc0")


def test_metadata_digest_ignores_the_checksum_entry_and_key_order():
    header = {"geogan_format": "1", "meta": '{"step": 1}', "geogan_version": "x"}
    ref = metadata_digest(header)
    assert metadata_digest({**header, CHECKSUM_KEY: "anything"}) == ref
    assert metadata_digest(dict(reversed(list(header.items())))) == ref
    assert metadata_digest({**header, "meta": '{"step": 2}'}) != ref


def test_read_metadata_reads_only_the_header(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "e.safetensors", _tensors(), {"kind": "export", "step": 9})
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # damage the tensor data: the header alone is still fine
    path.write_bytes(bytes(data))

    def no_tensor_reads(*args, **kwargs):
        raise AssertionError("read_metadata must not read tensors")

    monkeypatch.setattr(ckpt, "load_file", no_tensor_reads)
    meta = read_metadata(path)
    assert meta["kind"] == "export" and meta["step"] == 9 and meta["format_version"] == 1
    monkeypatch.undo()
    with pytest.raises(CheckpointError, match="tensor data"):
        load_checkpoint(path)


def test_read_metadata_checks_sizes_against_the_file(tmp_path):
    path = save_checkpoint(tmp_path / "s.safetensors", _tensors(), {"kind": "export"})
    data = path.read_bytes()
    cases = {
        "one byte appended": data + b"\0",
        "last byte cut": data[:-1],
        "header cut": data[:20],
        "length only": data[:8],
        "length beyond the file": struct.pack("<Q", len(data)) + data[8:],
    }
    for i, (what, blob) in enumerate(cases.items()):
        bad = tmp_path / f"bad_{i}.safetensors"
        bad.write_bytes(blob)
        for reader in (read_metadata, load_checkpoint):
            with pytest.raises(CheckpointError) as info:
                reader(bad)
            message = str(info.value)
            assert str(bad) in message and "\n" not in message and "damaged" in message, what
    with pytest.raises(CheckpointError, match="not found"):
        read_metadata(tmp_path / "missing.safetensors")


def _legacy(path, meta):
    """A file as geogan wrote it before checksums: the same header without the checksum."""
    header = {"geogan_format": "1", "geogan_version": "0.1.0", "meta": json.dumps(meta)}
    save_file({"w": torch.arange(3.0)}, str(path), metadata=header)
    return path


def test_checkpoints_without_checksum_load_with_one_warning(tmp_path, caplog):
    path = _legacy(tmp_path / "old.safetensors", {"kind": "export", "step": 2})
    with caplog.at_level(logging.WARNING, logger="geogan.core.checkpoint"):
        tensors, meta = load_checkpoint(path)
        assert torch.equal(tensors["w"], torch.arange(3.0)) and meta["step"] == 2
        assert read_metadata(path)["step"] == 2
        load_checkpoint(path)
    warnings = [r for r in caplog.records if "no checksum" in r.getMessage()]
    assert len(warnings) == 1 and str(path) in warnings[0].getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="geogan.core.checkpoint"):
        load_checkpoint(save_checkpoint(tmp_path / "new.safetensors", tensors, meta))
    assert not caplog.records  # checksummed files load silently
