"""The Tracker's MLflow output, read back through the MLflow client from a local file store."""

from __future__ import annotations

import json

import pytest

from geogan.core.tracking import MLFLOW_RUN_FILE, Tracker, flatten_params

mlflow = pytest.importorskip("mlflow")
from mlflow.tracking import MlflowClient  # noqa: E402


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    # the Tracker reads these; monkeypatch restores whatever it sets
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_ALLOW_FILE_STORE"):
        monkeypatch.delenv(name, raising=False)


def _only_run(uri: str):
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("geogan")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    return client, runs[0]


def test_params_metrics_and_config_artifact_in_run_dir_store(tmp_path):
    run_dir = tmp_path / "00003-tiny"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("train:\n  steps: 3\n")
    params = {
        "name": "tiny",
        "train": {"steps": 3, "gen_optim": {"lr": 1e-4, "betas": [0.5, 0.9]}},
        "data": {"path": "x" * 1000, "bad key!": 1, "empty": {}},
        "wide": {f"p{i:03d}": i for i in range(150)},  # more than one batch of params
    }
    tracker = Tracker(run_dir, tensorboard=False, mlflow=True, params=params)
    tracker.log_scalars(1, {"gen/loss": 0.5, "disc/loss": -1.0})
    tracker.log_scalars(2, {"gen/loss": 0.25, "disc/loss": -2.0})
    tracker.close()

    uri = (run_dir / "mlruns").resolve().as_uri()
    client, run = _only_run(uri)
    assert run.info.run_name == "00003-tiny"
    assert run.info.status == "FINISHED"
    history = client.get_metric_history(run.info.run_id, "gen/loss")
    assert [(m.step, m.value) for m in history] == [(1, 0.5), (2, 0.25)]
    history = client.get_metric_history(run.info.run_id, "disc/loss")
    assert [(m.step, m.value) for m in history] == [(1, -1.0), (2, -2.0)]
    logged = run.data.params
    assert logged["train.steps"] == "3"
    assert logged["train.gen_optim.lr"] == "0.0001"
    assert logged["train.gen_optim.betas"] == "[0.5, 0.9]"
    assert logged["data.bad key_"] == "1"
    assert logged["data.empty"] == "{}"
    assert len(logged["data.path"]) == 500 and logged["data.path"].endswith("...")
    assert logged["wide.p149"] == "149"
    assert len(logged) == len(flatten_params(params)) == 157
    artifacts = [a.path for a in client.list_artifacts(run.info.run_id, "run")]
    assert artifacts == ["run/config.yaml"]
    saved = json.loads((run_dir / MLFLOW_RUN_FILE).read_text())
    assert saved == {"tracking_uri": uri, "run_id": run.info.run_id}
    # stats.jsonl is still written beside MLflow
    lines = (run_dir / "stats.jsonl").read_text().splitlines()
    assert [json.loads(line)["gen/loss"] for line in lines] == [0.5, 0.25]


def test_tracking_uri_from_environment_and_resume_continues_the_run(tmp_path, monkeypatch):
    store = tmp_path / "shared_store"
    uri = store.as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    run_dir = tmp_path / "00000-a"
    first = Tracker(run_dir, tensorboard=False, mlflow=True, params={"seed": 1})
    first.log_scalars(10, {"loss": 1.0})
    first.close()
    assert not (run_dir / "mlruns").exists()

    # a resumed process (--resume auto) logs into the same MLflow run
    second = Tracker(run_dir, tensorboard=False, mlflow=True, params={"seed": 1})
    second.log_scalars(20, {"loss": 3.0})
    second.close("KILLED")

    client, run = _only_run(uri)
    assert run.info.status == "KILLED"
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(10, 1.0), (20, 3.0)]
    assert run.data.params == {"seed": "1"}


def test_disabled_tracker_creates_no_mlflow_run(tmp_path):
    tracker = Tracker(tmp_path / "r", enabled=False, mlflow=True, params={"a": 1})
    tracker.log_scalars(1, {"loss": 1.0})
    tracker.close()
    assert not (tmp_path / "r").exists()


def test_training_with_train_mlflow_true_logs_the_run(tmp_path, monkeypatch):
    from tiny_data import base_config, make_rain

    from geogan.recipes.config import run_config_from_dict
    from geogan.recipes.run import train_from_config

    monkeypatch.chdir(tmp_path)
    cfg = base_config(make_rain(tmp_path / "rain.nc", n_times=6, size=32), None, tmp_path)
    cfg["train"].update(steps=2, checkpoint_every=2, log_every=1, mlflow=True)
    run_dir = tmp_path / "00000-tiny"
    train_from_config(run_config_from_dict(cfg), run_dir=run_dir, progress=False)

    client, run = _only_run((run_dir / "mlruns").resolve().as_uri())
    assert run.info.run_name == "00000-tiny" and run.info.status == "FINISHED"
    assert run.data.params["train.steps"] == "2" and run.data.params["train.mlflow"] == "true"
    stats = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    key = next(k for k in stats[-1] if k not in ("step", "time"))
    history = client.get_metric_history(run.info.run_id, key)
    assert [(m.step, m.value) for m in history] == [(s["step"], s[key]) for s in stats if key in s]
    assert [m.step for m in history] == [1, 2]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "run")}
    assert {"run/config.yaml", "run/reproduce.json", "run/git.txt"} <= artifacts
