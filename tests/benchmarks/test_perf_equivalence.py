"""The speed-ups of issue 5 change no value: each is checked against the plain computation.

- models: padding outside autocast and without keeping its input (``_PadInInputDtype``,
  ``_LeanPad``), activation + padding keeping only their output (``_LeanResidualBlock``)
  -> bitwise the same outputs and gradients, the gradient penalty's double backward included;
- CriticPhase: shared low-resolution stream, real and generated images in one batch ->
  the same loss and gradients as three separate critic calls (to float rounding);
- prepare's lazy field store -> the same statistics, candidates and items as in memory;
- the Trainer's malloc tuning is off unless asked for.
"""

from __future__ import annotations

import contextlib
import functools

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from geogan.losses.regularisers import gradient_penalty
from geogan.models.downscaling import (
    DownscalingCritic,
    DownscalingGenerator,
    _LeanResidualBlock,
    _PadInInputDtype,
)
from geogan.nn import ResidualBlock
from geogan.recipes.downscaling.config import DataConfig
from geogan.recipes.downscaling.data import DownscalingData
from geogan.recipes.downscaling.phases import CriticPhase
from geogan.training.phases import StepContext


def _plain(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of the model (same weights) with the library's plain blocks and pads."""
    import copy

    ref = copy.deepcopy(model)
    for m in ref.modules():
        if isinstance(m, _LeanResidualBlock):
            m.__class__ = ResidualBlock
        if isinstance(getattr(m, "pad", None), _PadInInputDtype):
            m.pad = m.pad.pad
    return ref


def _grads(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("padding_mode", ["reflect", "replicate", "zeros", "circular"])
def test_generator_and_critic_bitwise_in_fp32(padding_mode):
    torch.manual_seed(0)
    kw = dict(in_channels=2, constant_channels=1, padding_mode=padding_mode, arch="forceconv")
    g = DownscalingGenerator(**kw, filters=8, noise_channels=2, upsampling_factors=[2, 2])
    d = DownscalingCritic(**kw, filters=8, downsampling_factors=[2, 2])
    x, c = torch.randn(2, 2, 6, 6), torch.randn(2, 1, 24, 24)
    noise, y = torch.randn(2, 2, 6, 6), torch.randn(2, 1, 24, 24)
    results = []
    for gen, crit in ((g, d), (_plain(g), _plain(d))):
        gen.zero_grad(), crit.zero_grad()
        fake = gen(x, c, noise)
        critic_fn = functools.partial(crit, x, c)
        gp = gradient_penalty(critic_fn, y, fake, 10.0, torch.Generator().manual_seed(1))
        loss = crit(x, c, fake).mean() + crit(x, c, y).mean() + gp
        loss.backward()
        results.append((fake.detach(), loss.detach(), _grads(gen) + _grads(crit)))
    (f0, l0, g0), (f1, l1, g1) = results
    assert torch.equal(f0, f1) and torch.equal(l0, l1)
    assert all(torch.equal(a, b) for a, b in zip(g0, g1))


def test_generator_bf16_channels_last_matches_plain():
    torch.manual_seed(0)
    g = DownscalingGenerator(in_channels=1, filters=8, upsampling_factors=[2, 2, 2]).to(
        memory_format=torch.channels_last
    )
    ref = _plain(g)
    x = torch.randn(2, 1, 8, 8).contiguous(memory_format=torch.channels_last)
    noise = torch.randn(2, 4, 8, 8)
    outs = []
    for model in (g, ref):
        model.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x, None, noise)
        out.float().square().mean().backward()
        outs.append((out.float().detach(), _grads(model)))
    assert torch.allclose(outs[0][0], outs[1][0], rtol=1e-2, atol=1e-2)
    for a, b in zip(outs[0][1], outs[1][1]):
        assert torch.allclose(a, b, rtol=5e-2, atol=1e-3)


def _old_critic_loss(phase, batch, ctx, fake):
    """CriticPhase's loss before issue 5: three separate critic calls."""
    d = ctx.models["critic"]
    x, c, y = batch["input"], batch["constants"], batch["target"]
    real_s, fake_s = d(x, c, y), d(x, c, fake)
    loss = phase.adversarial.critic_loss(real_s, fake_s)
    gp = gradient_penalty(lambda im: d(x, c, im), y, fake, phase.gp_weight, generator=ctx.rng(1))
    return loss + gp


def test_critic_phase_equals_separate_calls():
    torch.manual_seed(0)
    kw = dict(in_channels=2, constant_channels=1, arch="forceconv")
    g = DownscalingGenerator(**kw, filters=8, noise_channels=2, upsampling_factors=[2])
    d = DownscalingCritic(**kw, filters=8, downsampling_factors=[2])
    batch = {
        "input": torch.randn(3, 2, 5, 5),
        "target": torch.rand(3, 1, 10, 10),
        "constants": torch.randn(3, 1, 10, 10),
        "mask": (torch.rand(3, 1, 10, 10) > 0.2).float(),
    }
    batch["target"] *= batch["mask"]
    ctx = StepContext(
        step=4,
        repeat=1,
        rank=0,
        seed=7,
        device=torch.device("cpu"),
        autocast=contextlib.nullcontext,
        models={"generator": g, "critic": d},
    )
    phase = CriticPhase(repeats=1, mode="gan", adversarial="wgan", gp_weight=10.0)
    d.zero_grad()
    loss, parts = phase.loss(batch, ctx)
    loss.backward()
    new = _grads(d)
    from geogan.recipes.downscaling.phases import sample_members

    with torch.no_grad():
        fake = sample_members(batch, ctx, "gan", 1)[0][0] * batch["mask"]
    d.zero_grad()
    old = _old_critic_loss(phase, batch, ctx, fake)
    old.backward()
    assert torch.allclose(loss, old, rtol=1e-5, atol=1e-6)
    assert set(parts) == {"wdist", "gp"}
    for a, b in zip(new, _grads(d)):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)


def _radar(path, times=12, size=48, flip_input=False):
    rng = np.random.default_rng(0)
    p = rng.gamma(0.5, 2.0, size=(times, size, size)).astype(np.float32)
    p[:, :4, :] = np.nan
    ds = xr.Dataset(
        {"precip": (("time", "y", "x"), p, {"units": "mm/h"})},
        coords={
            "time": pd.date_range("2021-01-01", periods=times, freq="1h").values,
            "y": np.arange(size, dtype=np.float64)[::-1] * 1000.0,
            "x": np.arange(size, dtype=np.float64) * 1000.0,
        },
    )
    ds.to_netcdf(path / "truth.nc")
    coarse = ds.coarsen(y=4, x=4).mean()
    coarse = coarse.rename({"precip": "tp"}).isel(time=slice(1, None))  # one time less
    if flip_input:
        coarse = coarse.isel(y=slice(None, None, -1))
    coarse["tp"].attrs["units"] = "mm/h"
    coarse.to_netcdf(path / "input.nc")
    const = xr.Dataset(
        {"orog": (("y", "x"), rng.random((size, size)).astype(np.float32))},
        coords={"y": ds.y, "x": ds.x},
    )
    const.to_netcdf(path / "const.nc")


@pytest.mark.parametrize("autocoarsen", [True, False])
def test_lazy_store_matches_memory_store(tmp_path, autocoarsen):
    _radar(tmp_path, flip_input=not autocoarsen)
    cfg = DataConfig(
        truth={"path": str(tmp_path / "truth.nc"), "variables": ["precip"]},
        input={"path": str(tmp_path / "input.nc"), "variables": ["tp"]},
        constants={"path": str(tmp_path / "const.nc"), "variables": ["orog"]},
        autocoarsen=autocoarsen,
        factor=4,
        patch_size=16,
        split={"holdout_fraction": 0.25, "group_by": "all"},
        sampling={"candidate_stride": 8, "min_valid_fraction": 0.3},
    )
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        eager = DownscalingData.from_config(cfg)
        lazy = DownscalingData.from_config(cfg, lazy=True)
    try:
        ne, nl = eager.compute_normalisation(chunk_size=5), lazy.compute_normalisation(chunk_size=5)
        assert ne == nl
        ce, cl = eager.candidates(), lazy.candidates()
        for key in ("times", "rows", "cols", "classes", "wet_fraction"):
            assert np.array_equal(getattr(ce, key), getattr(cl, key))
        de, dl = eager.patch_dataset(ne, seed=1), lazy.patch_dataset(nl, seed=1)
        for i in range(10):
            a, b = de.sample(i), dl.sample(i)
            assert all(np.array_equal(a[k], b[k]) for k in a)
        a, b = eager.raw_field(3), lazy.raw_field(3)
        assert all(np.array_equal(a[k], b[k], equal_nan=True) for k in a)
    finally:
        lazy.close()


def test_malloc_tuning_is_opt_in(monkeypatch):
    from geogan.training.trainer import MALLOC_TUNING_ENV, keep_freed_memory

    monkeypatch.delenv(MALLOC_TUNING_ENV, raising=False)
    assert keep_freed_memory() is False
    monkeypatch.setenv(MALLOC_TUNING_ENV, "0")
    assert keep_freed_memory() is False


def test_generator_with_batch_norm_bitwise_in_fp32():
    torch.manual_seed(0)
    g = DownscalingGenerator(in_channels=1, filters=8, upsampling_factors=[2], batch_norm=True)
    ref = _plain(g)
    x, noise = torch.randn(3, 1, 6, 6), torch.randn(3, 4, 6, 6)
    outs = []
    for model in (g, ref):
        model.zero_grad()
        out = model(x, None, noise)
        out.square().mean().backward()
        outs.append((out.detach(), _grads(model)))
    assert torch.equal(outs[0][0], outs[1][0])
    assert all(torch.equal(a, b) for a, b in zip(outs[0][1], outs[1][1]))


def test_zarr_patch_store_shard_reads_match_items_in_any_order(tmp_path):
    from geogan.data.patch_store import ZarrPatchDataset, write_patch_store

    _radar(tmp_path)
    cfg = DataConfig(
        truth={"path": str(tmp_path / "truth.nc"), "variables": ["precip"]},
        autocoarsen=True,
        factor=4,
        patch_size=16,
        split={"holdout_fraction": 0.25, "group_by": "all"},
        sampling={"candidate_stride": 8, "min_valid_fraction": 0.3},
    )
    data = DownscalingData.from_config(cfg)
    norm = data.compute_normalisation()
    ds = data.patch_dataset(norm, seed=2, length=70)
    write_patch_store(tmp_path / "p.zarr", ds.sample, 70, binary_keys=["mask"])
    store = ZarrPatchDataset(tmp_path / "p.zarr")
    for i in [5, 69, 0, 33, 34, 140, 31, 32]:  # across shards, backwards, wrapped
        a, b = store[i], ds[i % 70]
        assert all(torch.equal(a[k], b[k]) for k in a)
