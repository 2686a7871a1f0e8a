"""``load_export``: every model of an export rebuilt from its spec, weights loaded once."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from geogan.core.checkpoint import module_tensors, read_metadata, save_checkpoint
from geogan.core.errors import CheckpointError
from geogan.core.modules import model_spec, register_model
from geogan.inference.export import format_matches, load_export


@register_model("test_export_tiny_net")
class TinyNet(nn.Module):
    """A throwaway registered model: conv ``[B, c, H, W] -> [B, c, H, W]``."""

    def __init__(self, *, channels: int = 2, bias: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, bias=bias)
        self.register_buffer("scale", torch.full((channels,), 2.0))


def _export(path, fmt="myrecipe/2", kind="export", names=("generator", "encoder")):
    torch.manual_seed(0)
    models = {n: TinyNet(channels=2 + i) for i, n in enumerate(names)}
    tensors = {}
    for name, m in models.items():
        tensors.update(module_tensors(name, m))
    meta = {
        "kind": kind,
        "format": fmt,
        "step": 5,
        "models": {n: model_spec(m) for n, m in models.items()},
    }
    return save_checkpoint(path, tensors, meta), models


def test_builds_every_model_with_its_weights_frozen_in_eval_mode(tmp_path):
    path, ref = _export(tmp_path / "model.safetensors")
    models, meta = load_export(path, format_prefix="myrecipe")
    assert set(models) == {"generator", "encoder"} and meta["step"] == 5
    assert meta == read_metadata(path)  # the header alone gives the same metadata
    for name, m in models.items():
        assert isinstance(m, TinyNet) and not m.training
        assert all(not p.requires_grad for p in m.parameters())
        got, want = m.state_dict(), ref[name].state_dict()
        assert got.keys() == want.keys()
        assert all(torch.equal(got[k], want[k]) for k in got), name
    assert models["encoder"].conv.in_channels == 3  # rebuilt from its own spec
    x = torch.randn(1, 2, 5, 5)
    with torch.no_grad():
        assert torch.equal(models["generator"].conv(x), ref["generator"].conv(x))


def test_format_prefix_matching():
    assert format_matches("myrecipe/2", "myrecipe")
    assert format_matches("myrecipe/2", "myrecipe/")
    assert format_matches("myrecipe/2", "myrecipe/2")
    assert not format_matches("myrecipe/2", "myrecipe/1")
    assert not format_matches("myrecipe/20", "myrecipe/2")
    assert not format_matches("myrecipeX/2", "myrecipe")
    assert not format_matches(None, "myrecipe")


def test_refuses_other_kinds_formats_and_unknown_models(tmp_path):
    resume, _ = _export(tmp_path / "resume_000000005.safetensors", kind="resume")
    other, _ = _export(tmp_path / "other.safetensors", fmt="otherrecipe/1")
    for path, reader, words in [
        (resume, lambda p: load_export(p), ("resume", "not an export")),
        (other, lambda p: load_export(p, format_prefix="myrecipe"), ("otherrecipe/1", "myrecipe")),
        (other, lambda p: load_export(p, format_prefix="otherrecipe/2"), ("otherrecipe/1",)),
    ]:
        with pytest.raises(CheckpointError) as info:
            reader(path)
        message = str(info.value)
        assert "\n" not in message and str(path) in message
        assert all(w in message for w in words), message
    models, _ = load_export(other)  # no prefix: any export format
    assert set(models) == {"generator", "encoder"}

    path = tmp_path / "unknown.safetensors"
    save_checkpoint(
        path,
        {},
        {
            "kind": "export",
            "format": "x/1",
            "models": {"g": {"name": "no_such_model", "kwargs": {}}},
        },
    )
    with pytest.raises(CheckpointError, match="no_such_model"):
        load_export(path)
    empty = save_checkpoint(tmp_path / "empty.safetensors", {}, {"kind": "export", "models": {}})
    with pytest.raises(CheckpointError, match="names no models"):
        load_export(empty)


def test_missing_or_extra_weights_are_refused(tmp_path):
    torch.manual_seed(0)
    m = TinyNet()
    tensors = module_tensors("generator", m)
    del tensors["generator/conv.bias"]
    path = save_checkpoint(
        tmp_path / "partial.safetensors",
        tensors,
        {"kind": "export", "format": "myrecipe/2", "models": {"generator": model_spec(m)}},
    )
    with pytest.raises(CheckpointError, match="generator"):
        load_export(path)


def test_device_argument(tmp_path):
    path, _ = _export(tmp_path / "model.safetensors")
    models, _ = load_export(path, device=torch.device("cpu"))
    assert all(p.device.type == "cpu" for m in models.values() for p in m.parameters())
