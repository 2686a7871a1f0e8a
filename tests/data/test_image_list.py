"""Image lists (geogan.data.image_list) and `geogan index` (geogan.cli.index)."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import yaml
from PIL import Image

from geogan.cli.index import index_command
from geogan.core.errors import ConfigError, DataError, OutputExistsError
from geogan.data.image_list import (
    ImageList,
    ImageListDataset,
    build_index,
    read_image,
    split_entries,
)

H, W = 6, 8


def rgb8(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(H, W, 3), dtype=np.uint8)


def classes(seed: int = 0, n: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(H, W), dtype=np.uint8)


def write_png(path: Path, arr: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode=mode).save(path) if mode else Image.fromarray(arr).save(path)
    return path


def png_16bit_rgb(path: Path, arr: np.ndarray) -> Path:
    """A 16-bit RGB PNG written by hand (Pillow cannot write one)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    big = arr.astype(">u2")
    raw = b"".join(b"\x00" + big[i].tobytes() for i in range(arr.shape[0]))
    header = struct.pack(">IIBBBBB", arr.shape[1], arr.shape[0], 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
    return path


# ------------------------------------------------------------------ reading files


def test_png_8bit_scaled_to_unit_range(tmp_path):
    arr = rgb8()
    arr[0, 0] = (0, 128, 255)
    img = read_image(write_png(tmp_path / "a.png", arr))
    assert img.dtype == np.float32 and img.shape == (3, H, W)
    np.testing.assert_allclose(img, np.moveaxis(arr, -1, 0) / 255.0, rtol=1e-6)
    assert img[:, 0, 0].tolist() == pytest.approx([0.0, 128 / 255, 1.0])
    gray = read_image(write_png(tmp_path / "g.png", arr[..., 0]))
    assert gray.shape == (1, H, W)


def test_png_16bit_gray_scaled_and_raw(tmp_path):
    arr = (np.arange(H * W, dtype=np.uint16).reshape(H, W) * 1300).astype(np.uint16)
    arr[0, 0] = 65535
    path = write_png(tmp_path / "d.png", arr)
    img = read_image(path)
    assert img.shape == (1, H, W)
    np.testing.assert_allclose(img[0], arr / 65535.0, rtol=1e-6)
    assert img[0, 0, 0] == 1.0 and img[0, 0, 1] == pytest.approx(1300 / 65535)
    raw = read_image(path, scale=False)
    np.testing.assert_array_equal(raw[0], arr.astype(np.float32))


def test_16bit_colour_png_refused(tmp_path):
    arr = (np.arange(H * W * 3).reshape(H, W, 3) * 700).astype(np.uint16)
    with pytest.raises(DataError, match="16-bit colour PNG.*TIFF"):
        read_image(png_16bit_rgb(tmp_path / "c.png", arr))


def test_jpeg_read_close(tmp_path):
    arr = np.full((H, W, 3), 200, np.uint8)
    path = tmp_path / "a.jpg"
    Image.fromarray(arr).save(path, quality=95)
    img = read_image(path)
    assert img.shape == (3, H, W)
    assert np.abs(img - 200 / 255).max() < 0.02


def test_geotiff_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    geo = {  # GeoTIFF tags: pixel scale, tie point, a minimal geokey directory (WGS84)
        "extratags": [
            (33550, "d", 3, (0.01, 0.01, 0.0), False),
            (33922, "d", 6, (0.0, 0.0, 0.0, 5.0, 52.0, 0.0), False),
            (34735, "H", 8, (1, 1, 0, 1, 2048, 0, 1, 4326), False),
        ]
    }
    bands16 = rng.integers(0, 65536, size=(4, H, W), dtype=np.uint16)
    tifffile.imwrite(
        tmp_path / "sep.tif", bands16, photometric="minisblack", planarconfig="separate", **geo
    )
    np.testing.assert_allclose(read_image(tmp_path / "sep.tif"), bands16 / 65535.0, rtol=1e-6)
    contig = rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "rgb.tiff", contig, photometric="rgb", **geo)
    np.testing.assert_allclose(
        read_image(tmp_path / "rgb.tiff"), np.moveaxis(contig, -1, 0) / 255.0, rtol=1e-6
    )
    height = rng.normal(100.0, 30.0, size=(H, W)).astype(np.float32)  # metres: unscaled
    tifffile.imwrite(tmp_path / "h.tif", height, **geo)
    got = read_image(tmp_path / "h.tif")
    assert got.shape == (1, H, W)
    np.testing.assert_array_equal(got[0], height)


def test_categorical_maps_stay_integers(tmp_path):
    cls = classes(n=7)
    got = read_image(write_png(tmp_path / "s.png", cls), categorical=True)
    assert got.dtype == np.int64 and got.shape == (H, W)
    np.testing.assert_array_equal(got, cls)
    # palette PNG: the indices, not the colours
    pal = Image.fromarray(cls, mode="P")
    pal.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] * 3)
    pal.save(tmp_path / "p.png")
    np.testing.assert_array_equal(read_image(tmp_path / "p.png", categorical=True), cls)
    tifffile.imwrite(tmp_path / "w.tif", cls.astype(np.int16) * 100)
    np.testing.assert_array_equal(
        read_image(tmp_path / "w.tif", categorical=True), cls.astype(np.int64) * 100
    )
    np.save(tmp_path / "w.npy", cls[None].astype(np.float32))
    np.testing.assert_array_equal(read_image(tmp_path / "w.npy", categorical=True), cls)
    with pytest.raises(DataError, match="3 channels but is read as a class map"):
        read_image(write_png(tmp_path / "rgb.png", rgb8()), categorical=True)
    np.save(tmp_path / "f.npy", np.full((H, W), 0.5, np.float32))
    with pytest.raises(DataError, match="non-integer values"):
        read_image(tmp_path / "f.npy", categorical=True)


def test_npy_images_and_bad_files(tmp_path):
    arr = np.random.default_rng(0).random((2, H, W)).astype(np.float32)
    np.save(tmp_path / "x.npy", arr)
    np.testing.assert_array_equal(read_image(tmp_path / "x.npy"), arr)
    big_endian = np.array([[0, 65535], [13107, 0]], dtype=">u2")
    np.save(tmp_path / "be.npy", big_endian)
    np.testing.assert_allclose(read_image(tmp_path / "be.npy")[0], [[0, 1], [0.2, 0]], rtol=1e-6)
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="could not be read as an image"):
        read_image(tmp_path / "o.npy")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(DataError, match=r"broken\.png could not be read"):
        read_image(tmp_path / "broken.png")
    with pytest.raises(DataError, match="unsupported type '.bmp'"):
        read_image(tmp_path / "a.bmp")


# ------------------------------------------------------------------ lists


def write_list(path: Path, entries, wrap: bool = True) -> Path:
    doc = {"entries": entries} if wrap else entries
    path.write_text(json.dumps(doc) if path.suffix == ".json" else yaml.safe_dump(doc))
    return path


@pytest.fixture
def pairs(tmp_path: Path) -> Path:
    """Five x/s pairs under tmp_path/img and a YAML list in tmp_path/lists/ (relative paths)."""
    for i in range(5):
        write_png(tmp_path / "img" / f"x{i}.png", rgb8(i))
        write_png(tmp_path / "img" / f"s{i}.png", classes(i))
    (tmp_path / "lists").mkdir()
    entries = [
        {"name": f"t{i}", "x": f"../img/x{i}.png", "s": f"../img/s{i}.png"} for i in range(5)
    ]
    return write_list(tmp_path / "lists" / "pairs.yaml", entries)


def test_list_dataset_items(pairs, tmp_path):
    ds = ImageListDataset(pairs, keys=["x", "s"])
    assert len(ds) == 5
    item = ds[3]
    assert set(item) == {"x", "s", "name"} and item["name"] == "t3"
    assert item["x"].dtype == torch.float32 and item["x"].shape == (3, H, W)
    assert item["s"].dtype == torch.int64 and item["s"].shape == (H, W)
    np.testing.assert_array_equal(item["s"].numpy(), classes(3))
    np.testing.assert_allclose(item["x"].numpy(), np.moveaxis(rgb8(3), -1, 0) / 255.0, rtol=1e-6)
    batch = torch.utils.data.default_collate([ds[0], ds[1]])
    assert batch["x"].shape == (2, 3, H, W) and batch["s"].dtype == torch.int64
    # a key not declared categorical is read as an image, even a class map
    as_image = ImageListDataset(pairs, keys=["s"], categorical=())
    assert as_image[0]["s"].dtype == torch.float32 and as_image[0]["s"].shape == (1, H, W)


def test_plain_list_json_and_absolute_paths(tmp_path):
    x = write_png(tmp_path / "a" / "x.png", rgb8())
    path = write_list(tmp_path / "l.json", [{"x": str(x.resolve()), "label": 3}], wrap=False)
    images = ImageList.load(path)
    assert images.keys() == ["x"]  # a non-string value is metadata, not a file
    assert ImageListDataset(images)[0]["x"].shape == (3, H, W)


def test_missing_file_names_entry_key_and_path(pairs, tmp_path):
    (tmp_path / "img" / "s2.png").unlink()
    with pytest.raises(DataError) as info:
        ImageList.load(pairs)
    msg = str(info.value)
    assert msg.startswith("entry 2 of ") and "key 's'" in msg and "s2.png not found" in msg
    assert "\n" not in msg
    # a list that does not use 's' loads: only the required keys' files are checked
    assert len(ImageList.load(pairs, keys=["x"])) == 5


def test_missing_required_key(tmp_path):
    write_png(tmp_path / "x.png", rgb8())
    path = write_list(tmp_path / "l.yaml", [{"x": "x.png", "s": "x.png"}, {"x": "x.png"}])
    with pytest.raises(DataError, match=r"entry 1 of .* has no 's' \(it has x\)"):
        ImageListDataset(path, keys=["x", "s"])
    with pytest.raises(DataError, match="split 'dev'"):
        ImageList([{"x": "x.png", "split": "dev"}], tmp_path)
    with pytest.raises(DataError, match="not valid JSON"):
        (tmp_path / "bad.json").write_text("{entries: [")
        ImageList.load(tmp_path / "bad.json")
    with pytest.raises(DataError, match="has no entries"):
        ImageList.load(write_list(tmp_path / "e.json", []))


def test_item_size_mismatch(tmp_path):
    write_png(tmp_path / "x.png", rgb8())
    write_png(tmp_path / "s.png", np.zeros((H + 1, W), np.uint8))
    ds = ImageListDataset(write_list(tmp_path / "l.json", [{"x": "x.png", "s": "s.png"}]))
    with pytest.raises(DataError, match=r"different sizes \(x 6x8, s 7x8\)"):
        ds[0]


def test_split_deterministic_and_fraction():
    entries = [{"name": f"n{i}", "x": f"x/{i}.png"} for i in range(200)]
    train, val = split_entries(entries, 0.25, seed=3)
    assert len(val) == 50 and len(train) == 150 and not set(train) & set(val)
    assert split_entries(entries, 0.25, seed=3) == (train, val)
    # independent of the order of the entries
    reordered = entries[::-1]
    _, val_rev = split_entries(reordered, 0.25, seed=3)
    assert sorted(reordered[i]["name"] for i in val_rev) == sorted(entries[i]["name"] for i in val)
    # another seed, another split
    assert split_entries(entries, 0.25, seed=4)[1] != val
    assert split_entries(entries, 0.0)[1] == [] and split_entries(entries, 1.0)[0] == []
    with pytest.raises(ConfigError, match="val_fraction"):
        split_entries(entries, 1.5)


def test_split_key_wins(tmp_path):
    entries = [{"x": f"{i}.png", "split": s} for i, s in enumerate(["val", "train", "test", "val"])]
    entries += [{"x": f"{i}.png"} for i in range(4, 8)]
    train, val = split_entries(entries, 0.5, seed=0)
    assert {0, 3} <= set(val) and 1 in train and 2 not in train + val
    assert len(val) == 4 and len(train) == 3  # 2 fixed + half of the 4 free ones


def test_dataset_split_parts(pairs):
    train = ImageListDataset(pairs, keys=["x"], split="train", val_fraction=0.4, seed=1)
    val = ImageListDataset(pairs, keys=["x"], split="val", val_fraction=0.4, seed=1)
    assert len(train) == 3 and len(val) == 2
    names = {train[i]["name"] for i in range(3)} | {val[i]["name"] for i in range(2)}
    assert names == {f"t{i}" for i in range(5)}


# ------------------------------------------------------------------ build_index


def make_flat(folder: Path) -> None:
    for stem in ("a", "b", "c"):
        write_png(folder / "x" / f"{stem}.png", rgb8())
    for stem in ("a", "c"):
        write_png(folder / "s" / f"{stem}.png", classes())
    (folder / "w").mkdir(parents=True)
    tifffile.imwrite(folder / "w" / "a.tif", classes())
    (folder / "x" / "notes.txt").write_text("ignored")
    (folder / "x" / ".hidden.png").write_bytes(b"ignored")


@pytest.fixture
def flat(tmp_path: Path) -> Path:
    folder = tmp_path / "flat"
    make_flat(folder)
    return folder


def test_build_index_flat_json(flat):
    doc = build_index(flat, val_fraction=0.0)
    out = flat / "index.json"
    written = json.loads(out.read_text())
    assert written == doc
    assert doc["keys"] == ["s", "w", "x"] and doc["domains"] == []
    assert doc["counts"] == {"s": 2, "w": 1, "x": 3}
    assert doc["entries"][0] == {
        "name": "a",
        "s": "s/a.png",
        "w": "w/a.tif",
        "x": "x/a.png",
        "split": "train",
    }
    assert doc["entries"][1] == {"name": "b", "x": "x/b.png", "split": "train"}
    images = ImageList.load(out)
    with pytest.raises(DataError, match="entry 1 of .* has no 's'"):
        ImageListDataset(out, keys=["x", "s"])
    item = ImageListDataset(images)[0]
    assert item["w"].dtype == torch.int64 and item["x"].shape == (3, H, W)


def test_build_index_domains_yaml_elsewhere(tmp_path):
    root = tmp_path / "floods"
    for domain, stems in {"rf": ["p1", "p2"], "sn": ["p1"]}.items():
        for stem in stems:
            write_png(root / domain / "x" / f"{stem}.png", rgb8())
            write_png(root / domain / "w" / f"{stem}.png", classes(n=2))
    out = tmp_path / "lists" / "floods.yaml"
    doc = build_index(root, out, val_fraction=0.34, seed=0)
    assert doc["domains"] == ["rf", "sn"]
    assert [(e["domain"], e["name"]) for e in doc["entries"]] == [
        ("rf", "p1"),
        ("rf", "p2"),
        ("sn", "p1"),
    ]
    assert doc["entries"][2]["x"] == "../floods/sn/x/p1.png"  # relative to the list's folder
    assert [e["split"] for e in doc["entries"]].count("val") == 1
    assert yaml.safe_load(out.read_text()) == doc
    ds = ImageListDataset(out, keys=["x", "w"])
    assert ds[2]["domain"] == "sn" and ds[2]["w"].dtype == torch.int64


def test_build_index_refuses_overwrite_and_bad_layouts(flat, tmp_path):
    build_index(flat)
    before = (flat / "index.json").read_text()
    with pytest.raises(OutputExistsError, match="exists; pass --overwrite"):
        build_index(flat, val_fraction=0.5)
    assert (flat / "index.json").read_text() == before
    build_index(flat, val_fraction=0.5, seed=2, overwrite=True)
    assert (flat / "index.json").read_text() != before
    with pytest.raises(ConfigError, match=r"\.json, \.yaml or \.yml"):
        build_index(flat, tmp_path / "index.txt")
    mixed = tmp_path / "mixed"
    write_png(mixed / "x" / "a.png", rgb8())
    write_png(mixed / "rf" / "x" / "a.png", rgb8())
    with pytest.raises(DataError, match="mixes key folders"):
        build_index(mixed)
    dup = tmp_path / "dup"
    write_png(dup / "x" / "a.png", rgb8())
    tifffile.imwrite(dup / "x" / "a.tif", rgb8())
    with pytest.raises(DataError, match="same stem"):
        build_index(dup)
    with pytest.raises(DataError, match="no sub-folders"):
        (tmp_path / "bare").mkdir()
        build_index(tmp_path / "bare")


def test_index_command_summary(flat):
    out = flat / "lists" / "all.yaml"
    summary = index_command(flat, out, val_fraction=1 / 3, seed=0, overwrite=False, quiet=True)
    assert summary["entries"] == 3 and summary["train"] == 2 and summary["val"] == 1
    assert summary["keys"] == {"s": 2, "w": 1, "x": 3} and summary["domains"] == []
    assert summary["output"] == str(out)
    assert json.loads(Path(f"{out}.summary.json").read_text()) == summary
    with pytest.raises(OutputExistsError):
        index_command(flat, out, val_fraction=0.1, seed=0, overwrite=False, quiet=True)
    again = index_command(flat, out, val_fraction=0.0, seed=0, overwrite=True, quiet=True)
    assert again["val"] == 0
