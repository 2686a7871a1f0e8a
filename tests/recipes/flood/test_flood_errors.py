"""The issue's user mistakes: one line, exit code 2, no run directory left behind."""

import json

import numpy as np
import pytest
import yaml
from flood_fixtures import tiny_config
from PIL import Image

from geogan.cli.main import main


def _run(tmp_path, train_list, test_list, capsys, **extra):
    cfg = tiny_config(train_list, test_list, tmp_path / "runs", **extra)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    rc = main(["--quiet", "train", str(path), "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    return rc, err


def _edit_list(path, fn):
    doc = json.loads(path.read_text())
    doc["entries"] = fn(doc["entries"])
    path.write_text(json.dumps(doc))


def _check(rc, err, tmp_path, *needles):
    assert rc == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("error: ")
    for n in needles:
        assert n in err, err
    assert not (tmp_path / "run").exists()  # nothing half-written


def test_entry_without_x(tiny_lists, tmp_path, capsys):
    train, test = tiny_lists

    def drop_x(entries):
        del entries[1]["x"]
        return entries

    _edit_list(train, drop_x)
    rc, err = _run(tmp_path, train, test, capsys)
    _check(rc, err, tmp_path, "entry 1 of", "has no 'x'")


def test_task_without_labels_anywhere(tiny_lists, tmp_path, capsys):
    rc, err = _run(tmp_path, *tiny_lists, capsys, **{"model.tasks": ["s", "w", "d"]})
    _check(rc, err, tmp_path, "model.tasks includes 'd'", "no sample")


def test_label_of_another_size_than_the_image(tiny_lists, tmp_path, capsys):
    train, test = tiny_lists
    entry = next(e for e in json.loads(train.read_text())["entries"] if e["split"] == "train")
    w_file = train.parent / entry["w"]
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(w_file)
    rc, err = _run(tmp_path, train, test, capsys)
    _check(rc, err, tmp_path, "'w'", "16x16 but its image x is 32x32")


def test_domain_without_samples(tiny_lists, tmp_path, capsys):
    train, test = tiny_lists
    _edit_list(train, lambda es: [e for e in es if e["domain"] != "sn"])
    rc, err = _run(tmp_path, train, test, capsys)
    _check(rc, err, tmp_path, "domain 'sn' is in data.domains", "no training sample")


@pytest.mark.parametrize(
    "override,needle",
    [
        ({"data.domains": ["rf", "rf"]}, "twice"),
        ({"train.losses.G.tasks.h.kind": "ce"}, "regression"),
        ({"data.tile_size": 18}, "multiple of"),
    ],
)
def test_config_mistakes(tiny_lists, tmp_path, capsys, override, needle):
    rc, err = _run(tmp_path, *tiny_lists, capsys, **override)
    _check(rc, err, tmp_path, needle)
