"""Which autocast precision generation and training pick on each kind of CPU."""

from __future__ import annotations

import pytest
import torch

from geogan.recipes.downscaling import generate as gen_module
from geogan.training import trainer as trainer_module

CPU = torch.device("cpu")


@pytest.mark.parametrize(
    ("train", "native", "expected"),
    [
        ("bf16", True, "bf16"),
        ("auto", True, "bf16"),
        ("fp32", True, "fp32"),
        # emulated bf16 is several times slower than fp32: never chosen for generation
        ("bf16", False, "fp32"),
        ("auto", False, "fp32"),
        ("fp32", False, "fp32"),
    ],
)
def test_generation_uses_bf16_only_on_cpus_with_native_bf16(monkeypatch, train, native, expected):
    monkeypatch.setattr(gen_module, "bf16_supported_on_cpu", lambda: native)
    assert gen_module.generation_precision(CPU, train) == expected


@pytest.mark.parametrize(("native", "expected"), [(True, "bf16"), (False, "fp32")])
def test_auto_training_precision_follows_the_cpu(monkeypatch, native, expected):
    monkeypatch.setattr(trainer_module, "bf16_supported_on_cpu", lambda: native)
    assert trainer_module.resolve_precision(CPU, "auto") == expected
    for explicit in ("fp32", "bf16", "fp16"):
        assert trainer_module.resolve_precision(CPU, explicit) == explicit
    autocast, scaler = trainer_module.autocast_factory(CPU, "auto")
    assert scaler is None
    with autocast():
        y = torch.ones(2, 2) @ torch.ones(2, 2)
    assert y.dtype == (torch.bfloat16 if native else torch.float32)
