"""Folders of .npy samples indexed by a metadata CSV (geogan.data.npy_samples)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from geogan.config.loader import config_from_dict
from geogan.core.errors import ConfigError, DataError
from geogan.data.npy_samples import (
    EnsembleGroup,
    NpySampleDataset,
    NpySampleIndex,
    NpySamplesConfig,
    group_ensembles,
)

C, H, W = 3, 8, 10
DATES = ["2021-01-01T00:00", "2021-01-01T12:00", "2021-01-02T00:00", "2021-01-03T00:00"]
LEADS = [0.0, 3.0, 6.0, 7.5]
MEMBERS = [0, 1, 2]


def sample_values(i: int) -> np.ndarray:
    """Sample ``i`` as [C, H, W]: value = 1000 * i + 100 * c + 10 * y + x (exact in float32)."""
    c, y, x = np.meshgrid(np.arange(C), np.arange(H), np.arange(W), indexing="ij")
    return (1000.0 * i + 100.0 * c + 10.0 * y + x).astype(np.float32)


def write_samples(
    folder: Path,
    *,
    channels_last: bool = False,
    names_with_suffix: bool = False,
    csv_name: str = "labels.csv",
) -> pd.DataFrame:
    """One sample per (Date, LeadTime, Member): 4 x 4 x 3 = 48 rows, files ``_sample{i}.npy``."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    i = 0
    for date in DATES:
        for lead in LEADS:
            for member in MEMBERS:
                arr = sample_values(i)
                if channels_last:
                    arr = np.ascontiguousarray(np.moveaxis(arr, 0, -1))
                np.save(folder / f"_sample{i}.npy", arr)
                name = f"_sample{i}.npy" if names_with_suffix else f"_sample{i}"
                rows.append(
                    {
                        "Name": name,
                        "Importance": 0.5,
                        "PosX": 4 * i,
                        "PosY": 2 * i,
                        "Date": date,
                        "LeadTime": lead,
                        "Member": member,
                    }
                )
                i += 1
    frame = pd.DataFrame(rows)
    frame.to_csv(folder / csv_name, index=False)
    frame["i"] = np.arange(len(frame))
    return frame


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    write_samples(tmp_path / "samples")
    return tmp_path / "samples"


def sample_ids(index_or_ds) -> list[int]:
    frame = (
        index_or_ds.frame if isinstance(index_or_ds, NpySampleIndex) else index_or_ds.index.frame
    )
    return [int(n.removeprefix("_sample").removesuffix(".npy")) for n in frame["Name"]]


def expected_ids(dates=None, leads=None, members=None) -> list[int]:
    out, i = [], 0
    for d in DATES:
        for lt in LEADS:
            for m in MEMBERS:
                ok = (dates is None or d in dates) and (leads is None or lt in leads)
                if ok and (members is None or m in members):
                    out.append(i)
                i += 1
    return out


# ------------------------------------------------------------------ CSV validation


def test_reads_csv_and_types(folder):
    index = NpySampleIndex(folder)
    assert len(index) == 48
    assert index.frame["Date"].dtype.kind == "M"
    assert index.frame["Member"].dtype == np.int64
    assert index.frame["LeadTime"].tolist()[:4] == [0.0, 0.0, 0.0, 3.0]
    assert index.frame["path"].iloc[5] == folder / "_sample5.npy"


def test_names_with_npy_suffix_and_other_csv(tmp_path):
    write_samples(tmp_path / "s", names_with_suffix=True, csv_name="meta.csv")
    index = NpySampleIndex(tmp_path / "s", "meta.csv")
    assert index.frame["path"].iloc[2] == tmp_path / "s" / "_sample2.npy"
    ds = index.dataset()
    np.testing.assert_array_equal(ds[2]["fields"].numpy(), sample_values(2))


def test_missing_columns_named(tmp_path):
    write_samples(tmp_path / "s")
    csv = tmp_path / "s" / "labels.csv"
    pd.read_csv(csv).drop(columns=["LeadTime", "PosY"]).to_csv(csv, index=False)
    with pytest.raises(DataError) as info:
        NpySampleIndex(tmp_path / "s")
    msg = str(info.value)
    assert "PosY, LeadTime" in msg and str(csv) in msg
    assert "\n" not in msg


def test_missing_csv(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"metadata CSV .*labels\.csv not found"):
        NpySampleIndex(tmp_path / "empty")


def test_missing_npy_files_counted_and_named(folder):
    for i in (4, 9, 17, 30):
        (folder / f"_sample{i}.npy").unlink()
    with pytest.raises(DataError) as info:
        NpySampleIndex(folder)
    msg = str(info.value)
    assert msg.startswith("4 of 48 samples")
    assert "_sample4, _sample9, _sample17 and 1 more" in msg
    # without the check the index loads, and the missing file is named when read
    ds = NpySampleIndex(folder, check_files=False).dataset()
    with pytest.raises(DataError, match="_sample4.npy not found"):
        ds[4]


def test_bad_member_and_date_values(folder):
    csv = folder / "labels.csv"
    frame = pd.read_csv(csv)
    bad = frame.copy()
    bad["Member"] = bad["Member"].astype(float)
    bad.loc[3, "Member"] = 1.5
    bad.to_csv(csv, index=False)
    with pytest.raises(
        DataError, match=r"1 Member value\(s\) that are not an integer \(first: 1\.5\)"
    ):
        NpySampleIndex(folder)
    bad = frame.copy()
    bad["Date"] = bad["Date"].astype(object)
    bad.loc[7, "Date"] = "yesterday"
    bad.to_csv(csv, index=False)
    with pytest.raises(DataError, match="Date that is not a date: 'yesterday'"):
        NpySampleIndex(folder)
    bad = frame.copy()
    bad.loc[[1, 2], "LeadTime"] = np.nan
    bad.to_csv(csv, index=False)
    with pytest.raises(DataError, match=r"2 row\(s\) with an empty LeadTime"):
        NpySampleIndex(folder)


# ------------------------------------------------------------------ selection


def test_date_range_inclusive(folder):
    index = NpySampleIndex(folder)
    sel = index.select(start="2021-01-01T12:00", end="2021-01-02T00:00")
    assert sample_ids(sel) == expected_ids(dates=DATES[1:3])
    # a bare end date covers its whole day; datetimes work as bounds too
    sel = index.select(start=pd.Timestamp("2021-01-01T06:00").to_pydatetime(), end="2021-01-01")
    assert sample_ids(sel) == expected_ids(dates=DATES[1:2])
    sel = index.select(end="2021-01-02")
    assert sample_ids(sel) == expected_ids(dates=DATES[:3])


def test_lead_time_list_and_range(folder):
    index = NpySampleIndex(folder)
    assert sample_ids(index.select(lead_times=[3, 7.5])) == expected_ids(leads=[3.0, 7.5])
    # a range excludes its stop, like Python's range
    assert sample_ids(index.select(lead_times=range(0, 6, 3))) == expected_ids(leads=[0.0, 3.0])
    got = index.select(lead_times={"start": 0, "stop": 9, "step": 1.5})
    assert sample_ids(got) == expected_ids(leads=[0.0, 3.0, 6.0, 7.5])
    got = index.select(lead_times={"start": 3, "stop": 9, "step": 3})
    assert sample_ids(got) == expected_ids(leads=[3.0, 6.0])


def test_members_and_combined_selection(folder):
    index = NpySampleIndex(folder)
    sel = index.select(start="2021-01-02", lead_times=[6], members=[0, 2])
    assert sample_ids(sel) == expected_ids(dates=DATES[2:], leads=[6.0], members=[0, 2])
    assert len(sel) == 4


def test_empty_selection_is_an_error(folder):
    index = NpySampleIndex(folder)
    with pytest.raises(DataError, match="no sample of .* matches the selection") as info:
        index.select(members=[7])
    assert "members [0, 1, 2]" in str(info.value)
    assert len(index.select(members=[7], allow_empty=True)) == 0


def test_config_selection_and_yaml_dates(folder):
    cfg = config_from_dict(
        {
            "path": str(folder),
            "dates": {"start": pd.Timestamp("2021-01-01").date(), "end": "2021-01-01"},
            "lead_times": {"start": 3, "stop": 7, "step": 3},
            "members": [1],
            "variables": ["u", "v", "t"],
            "channels": ["t", 0],
            "crop": [1, 5, 2, 9],
        },
        NpySamplesConfig,
    )
    assert cfg.dates.start == "2021-01-01"  # a YAML date is kept as an ISO string
    ds = NpySampleDataset.from_config(cfg)
    assert sample_ids(ds) == expected_ids(dates=DATES[:2], leads=[3.0, 6.0], members=[1])
    item = ds[0]
    assert item["fields"].shape == (2, 4, 7) and ds.shape == (2, 4, 7)
    assert ds.variables == ["t", "u"]
    i = sample_ids(ds)[0]
    np.testing.assert_array_equal(item["fields"].numpy(), sample_values(i)[[2, 0], 1:5, 2:9])


def test_config_errors():
    with pytest.raises(ConfigError, match="crop"):
        config_from_dict({"path": "x", "crop": [4, 2, 0, 3]}, NpySamplesConfig)
    with pytest.raises(ConfigError, match="stop"):
        config_from_dict({"path": "x", "lead_times": {"start": 6, "stop": 6}}, NpySamplesConfig)
    with pytest.raises(ConfigError, match="after"):
        config_from_dict(
            {"path": "x", "dates": {"start": "2021-02-01", "end": "2021-01-01"}}, NpySamplesConfig
        )
    with pytest.raises(ConfigError, match="named twice"):
        config_from_dict({"path": "x", "variables": ["u", "u"]}, NpySamplesConfig)


# ------------------------------------------------------------------ dataset


def test_item_contents(folder):
    ds = NpySampleIndex(folder).dataset()
    item = ds[13]
    assert item["fields"].dtype == torch.float32 and item["fields"].shape == (C, H, W)
    np.testing.assert_array_equal(item["fields"].numpy(), sample_values(13))
    # sample 13 = date 13 // 12 = 1, lead (13 % 12) // 3 = 0, member 13 % 3 = 1
    assert item["date"] == "2021-01-01T12:00:00"
    assert float(item["lead_time"]) == 0.0
    assert int(item["member"]) == 1
    assert float(ds[17]["lead_time"]) == 3.0 and int(ds[17]["member"]) == 2
    assert item["name"] == "_sample13"
    batch = torch.utils.data.default_collate([ds[0], ds[1]])
    assert batch["fields"].shape == (2, C, H, W) and batch["member"].tolist() == [0, 1]


def test_channels_last_on_disk_flag_and_auto(tmp_path):
    write_samples(tmp_path / "hwc", channels_last=True)
    index = NpySampleIndex(tmp_path / "hwc")
    # auto from the number of variables: the last axis has 3 entries, the first 8
    auto = index.dataset(variables=["u", "v", "t"])
    assert auto.channels_last
    flag = index.dataset(channels_last_on_disk=True, channels=[1], crop=(2, 6, 0, 4))
    for ds in (auto, flag):
        assert ds[5]["fields"].shape[1:] == ds.shape[1:]
    np.testing.assert_array_equal(auto[5]["fields"].numpy(), sample_values(5))
    np.testing.assert_array_equal(flag[5]["fields"].numpy(), sample_values(5)[[1], 2:6, 0:4])
    # without the flag or variables, arrays are taken as [C, H, W]: here [8, 10, 3]
    assert index.dataset().shape == (H, W, C)
    # the same data stored [C, H, W] is read identically
    write_samples(tmp_path / "chw")
    chw = NpySampleIndex(tmp_path / "chw").dataset(variables=["u", "v", "t"])
    assert not chw.channels_last
    np.testing.assert_array_equal(chw[5]["fields"].numpy(), auto[5]["fields"].numpy())


def test_ambiguous_layout_and_wrong_channel_count(tmp_path):
    folder = tmp_path / "s"
    write_samples(folder)
    with pytest.raises(DataError, match="holds 3 channel.*2 variables are declared"):
        NpySampleIndex(folder).dataset(variables=["u", "v"], channels_last_on_disk=False)
    with pytest.raises(DataError, match="cannot tell whether"):
        NpySampleIndex(folder).dataset(variables=["a"] * 4 + ["b"] * 4)  # 8: neither axis matches
    square = tmp_path / "square"
    square.mkdir()
    np.save(square / "a.npy", np.zeros((3, 5, 3), np.float32))
    pd.DataFrame(
        [
            {
                "Name": "a",
                "Importance": 1,
                "PosX": 0,
                "PosY": 0,
                "Date": "2021-01-01",
                "LeadTime": 0,
                "Member": 0,
            }
        ]
    ).to_csv(square / "labels.csv", index=False)
    with pytest.raises(DataError, match="set channels_last_on_disk"):
        NpySampleIndex(square).dataset(variables=["u", "v", "t"])


def test_crop_validated_against_field(folder):
    index = NpySampleIndex(folder)
    with pytest.raises(DataError) as info:
        index.dataset(crop=(0, H + 1, 0, 4))
    msg = str(info.value)
    assert f"outside the {H} x {W} field" in msg and "_sample0.npy" in msg and "\n" not in msg
    with pytest.raises(DataError, match=f"x1 <= {W}"):
        index.dataset(crop=(0, 2, 5, W + 3))
    with pytest.raises(ConfigError, match="empty or negative"):
        index.dataset(crop=(3, 3, 0, 4))
    ds = index.dataset(crop=(0, H, 0, W))  # the whole field is a valid crop
    assert ds.shape == (C, H, W)


def test_channel_selection_errors(folder):
    index = NpySampleIndex(folder)
    with pytest.raises(ConfigError, match="did you mean 't2m'"):
        index.dataset(variables=["u", "v", "t2m"], channels=["t2n"])
    with pytest.raises(ConfigError, match="no variables are declared"):
        index.dataset(channels=["u"])
    with pytest.raises(ConfigError, match=r"channel 3 is out of range.*3 channel"):
        index.dataset(channels=[3])
    ds = index.dataset(channels=[-1])
    np.testing.assert_array_equal(ds[0]["fields"].numpy(), sample_values(0)[[2]])


def test_shape_mismatch_and_pickled_arrays(folder):
    ds = NpySampleIndex(folder).dataset()
    np.save(folder / "_sample7.npy", np.zeros((C, H, W + 1), np.float32))
    with pytest.raises(DataError, match=r"_sample7\.npy has shape \(3, 8, 11\)"):
        ds[7]
    np.save(folder / "_sample8.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match=r"_sample8\.npy could not be read as a \.npy array"):
        ds[8]


# ------------------------------------------------------------------ ensembles


def test_ensemble_groups(folder):
    ds = NpySampleIndex(folder).select(lead_times=[6], members=[2, 0]).dataset()
    groups = ds.ensembles()
    assert [(g.date.isoformat(), g.lead_time) for g in groups] == [(d + ":00", 6.0) for d in DATES]
    assert all(g.members == (0, 2) for g in groups)
    first = groups[0]
    assert isinstance(first, EnsembleGroup) and len(first) == 2
    stacked = ds.stack(first)
    assert stacked.shape == (2, C, H, W)
    # rows are item indices of the dataset: sample 6 (member 0) and sample 8 (member 2)
    assert [ds[r]["name"] for r in first.rows] == ["_sample6", "_sample8"]
    np.testing.assert_array_equal(stacked[1].numpy(), sample_values(8))


def test_ensemble_groups_sort_members_and_reject_duplicates(folder):
    frame = NpySampleIndex(folder).frame
    shuffled = frame.iloc[[2, 0, 1]].reset_index(drop=True)
    (group,) = group_ensembles(shuffled)
    assert group.members == (0, 1, 2) and group.rows == (1, 2, 0)
    dup = frame.iloc[[0, 1, 1]].reset_index(drop=True)
    with pytest.raises(DataError, match="member 1 appears twice .*PosX"):
        group_ensembles(dup)
    # grouping by position too separates crops of the same date
    dup.loc[2, "PosX"] = 999
    assert len(group_ensembles(dup, by=["Date", "LeadTime", "PosX"])) == 3
    with pytest.raises(ConfigError, match="add 'LeadTime'"):
        group_ensembles(frame, by=["Date"])
