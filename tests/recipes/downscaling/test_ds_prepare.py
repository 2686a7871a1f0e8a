"""The prepare step: statistics file, Zarr patch store, atomic writes, reading patches back."""

from __future__ import annotations

import pytest
import torch

from geogan.core.errors import ConfigError, DataError, OutputExistsError
from geogan.data.normalisation import Normalisation
from geogan.data.patch_store import ZarrPatchDataset
from geogan.recipes.downscaling import samples as patch_store_module
from geogan.recipes.downscaling.config import DataConfig
from geogan.recipes.downscaling.data import DownscalingData
from geogan.recipes.downscaling.prepare import prepare


def _cfg(radar_nc, constants_nc, synth) -> DataConfig:
    return synth.autocoarsen_config(
        radar_nc, constants={"path": str(constants_nc), "variables": ["orography", "lsm"]}
    )


def test_prepare_writes_stats_and_patches(tmp_path, radar_nc, constants_nc, synth):
    cfg = _cfg(radar_nc, constants_nc, synth)
    stats, store = tmp_path / "out" / "stats.json", tmp_path / "out" / "patches.zarr"
    calls = []
    summary = prepare(
        cfg, None, stats, store, n_patches=40, seed=5, progress=lambda d, t: calls.append((d, t))
    )
    assert summary["n_patches"] == 40 and summary["train_times"] == 6 and summary["test_times"] == 2
    assert sum(summary["class_counts"]) == summary["candidates"] > 0
    assert calls[-1] == (40, 40)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["patches.zarr", "stats.json"]

    norm = Normalisation.load(stats)
    data = DownscalingData.from_config(cfg, stats=norm)
    assert norm == data.compute_normalisation()
    live = data.patch_dataset(norm, seed=5, length=40)
    stored = ZarrPatchDataset(store)
    assert len(stored) == 40
    attrs = stored.attrs
    assert attrs["input_vars"] == ["precip"] and attrs["constant_vars"] == ["orography", "lsm"]
    assert Normalisation.from_dict(attrs["normalisation"]) == norm
    assert attrs["factor"] == 4 and attrs["patch_size"] == 16
    for i in (0, 1, 17, 39):
        a, b = live[i], stored[i]
        assert set(b) == {"input", "target", "constants", "mask"}
        for key in a:
            assert b[key].dtype == torch.float32
            assert torch.equal(a[key], b[key]), key
    assert torch.equal(stored[40]["target"], stored[0]["target"])  # wraps around


def test_prepare_refuses_existing_outputs(tmp_path, radar_nc, constants_nc, synth):
    cfg = _cfg(radar_nc, constants_nc, synth)
    stats, store = tmp_path / "stats.json", tmp_path / "patches.zarr"
    stats.write_text("keep me")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        prepare(cfg, None, stats, store, n_patches=4, seed=0)
    assert stats.read_text() == "keep me" and not store.exists()
    prepare(cfg, None, stats, store, n_patches=4, seed=0, overwrite=True)
    assert Normalisation.load(stats).stats["precip"].count > 0
    with pytest.raises(OutputExistsError):
        prepare(cfg, None, tmp_path / "new.json", store, n_patches=4, seed=0)
    assert not (tmp_path / "new.json").exists()
    prepare(cfg, None, stats, store, n_patches=8, seed=1, overwrite=True)
    assert len(ZarrPatchDataset(store)) == 8


def test_failed_patch_write_leaves_nothing(tmp_path, radar_nc, constants_nc, synth, monkeypatch):
    cfg = _cfg(radar_nc, constants_nc, synth)
    store = tmp_path / "patches.zarr"
    real = patch_store_module.PatchDataset.sample

    def failing(self, i, normalise=True):
        if i == 37:
            raise RuntimeError("simulated crash")
        return real(self, i, normalise)

    monkeypatch.setattr(patch_store_module.PatchDataset, "sample", failing)
    with pytest.raises(RuntimeError, match="simulated crash"):
        prepare(cfg, None, tmp_path / "stats.json", store, n_patches=64, seed=0)
    assert not store.exists()
    assert [p.name for p in tmp_path.iterdir() if "patches" in p.name] == []


def test_stats_only_and_paths_from_config(tmp_path, radar_nc, synth):
    cfg = synth.autocoarsen_config(radar_nc, stats_path="derived/stats.json")
    summary = prepare(cfg, tmp_path, None, None, n_patches=0, seed=0)
    assert summary["patch_store"] is None and summary["n_patches"] == 0
    assert (tmp_path / "derived" / "stats.json").is_file()
    with pytest.raises(ConfigError, match="data.stats_path"):
        prepare(synth.autocoarsen_config(radar_nc), tmp_path, None, None, n_patches=0, seed=0)


def test_zarr_patch_dataset_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        ZarrPatchDataset(tmp_path / "missing.zarr")
    import zarr

    zarr.open_group(str(tmp_path / "other.zarr"), mode="w")
    with pytest.raises(DataError, match="not a geogan patch store"):
        ZarrPatchDataset(tmp_path / "other.zarr")
