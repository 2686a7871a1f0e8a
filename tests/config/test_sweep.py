"""Experiment files (geogan.config.sweep) and `geogan sweep` (geogan.cli.sweep)."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest
import yaml
from tiny_data import base_config, make_constants, make_rain

from geogan.cli import sweep as sweep_cli
from geogan.cli.sweep import RunsFailedError, sweep_command
from geogan.config.sweep import read_experiment, to_dotted
from geogan.core.errors import ConfigError, OutputExistsError
from geogan.recipes.config import expand_sweep as expand_experiment
from geogan.recipes.config import load_run_config


@pytest.fixture()
def base(tmp_path) -> Path:
    """A tiny recipe-1 base config (data files made only where a test trains)."""
    cfg = base_config(tmp_path / "rain.nc", None, tmp_path / "runs")
    path = tmp_path / "base.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def experiment(folder: Path, text: str, name: str = "exp.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def error_of(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        expand_experiment(path)
    message = str(info.value)
    assert "\n" not in message
    return message


def dump(run) -> dict:
    return run.config.model_dump(mode="json")


# --------------------------------------------------------------------------- samplers


def test_each_sampler_gives_exactly_its_values(tmp_path, base):
    path = experiment(
        tmp_path,
        """
        seed: 7
        defaults: base.yaml
        config:
          model:
            filters_gen: {sample: list, from: [8, 16]}
        runs:
          - name: ints
            train.steps: {sample: range, from: [2, 9, 3]}
          - name: down
            train.steps: {sample: range, from: [10, 0, -4]}
          - name: floats
            train.ema.decay: {sample: range, from: [0.9, 0.99, 0.03]}
          - name: uni
            train.ema.decay: {sample: uniform, from: [0.9, 0.99], n: 3}
          - name: log
            train.ema.decay: {sample: loguniform, from: [0.001, 0.1], n: 2}
        """,
    )
    runs = expand_experiment(path)
    by_entry: dict[str, list] = {}
    for run in runs:
        by_entry.setdefault(run.name.split("-")[0], []).append(run)

    def values(entry, key):
        return [run.sampled[key] for run in by_entry[entry]]

    # product: filters_gen (config, first) varies slowest
    assert values("ints", "model.filters_gen") == [8, 8, 8, 16, 16, 16]
    assert values("ints", "train.steps") == [2, 5, 8, 2, 5, 8]
    assert [dump(r)["train"]["steps"] for r in by_entry["ints"]] == [2, 5, 8, 2, 5, 8]
    assert [dump(r)["model"]["filters_gen"] for r in by_entry["ints"]] == [8, 8, 8, 16, 16, 16]
    assert values("down", "train.steps")[:3] == [10, 6, 2]
    assert all(isinstance(v, int) for v in values("ints", "train.steps"))
    assert values("floats", "train.ema.decay")[:3] == [0.9, 0.93, 0.96]  # stop excluded

    rng = np.random.default_rng([7, 4, zlib.crc32(b"train.ema.decay")])  # runs[3] -> k = 4
    expected = [float(v) for v in rng.uniform(0.9, 0.99, 3)]
    assert values("uni", "train.ema.decay")[:3] == expected
    assert all(0.9 <= v < 0.99 for v in expected)
    rng = np.random.default_rng([7, 5, zlib.crc32(b"train.ema.decay")])
    expected = [float(v) for v in np.exp(rng.uniform(math.log(0.001), math.log(0.1), 2))]
    assert values("log", "train.ema.decay")[:2] == expected
    assert all(0.001 <= v < 0.1 for v in expected)
    assert [dump(r)["train"]["ema"]["decay"] for r in by_entry["log"][:2]] == expected

    assert by_entry["ints"][0].name == "ints-filters_gen=8-steps=2"
    assert by_entry["floats"][1].name == "floats-filters_gen=8-decay=0.93"
    assert [r.index for r in runs] == list(range(len(runs)))
    assert len({r.name for r in runs}) == len(runs) == 6 + 6 + 6 + 6 + 4
    # each run's name becomes its config's name
    assert all(dump(r)["name"] == r.name for r in runs)


def test_the_documented_example_gives_the_documented_runs(tmp_path, base):
    import geogan.config.sweep as sweep_module

    doc = sweep_module.__doc__
    example = doc.split("(all optional)::\n", 1)[1].split("\nThis gives six runs:", 1)[0]
    (tmp_path / "sub").mkdir()
    shutil.copy(base, tmp_path / "knmi.yaml")
    path = experiment(tmp_path / "sub", textwrap.dedent(example))
    runs = expand_experiment(path)
    listed = doc.split("This gives six runs:", 1)[1].split("\n\n", 1)[0]
    assert [r.name for r in runs] == [n.strip("`") for n in re.findall(r"``[^`]+``", listed)]
    assert [r.job.time for r in runs] == ["04:00:00"] * 2 + ["08:00:00"] * 4
    assert dump(runs[5])["model"]["filters_gen"] == 128 and dump(runs[0])["train"]["steps"] == 2000


def test_sampling_is_seeded(tmp_path, base):
    text = """
        seed: {seed}
        defaults: base.yaml
        config:
          train.ema.decay: {{sample: uniform, from: [0.5, 0.9], n: 2}}
        runs:
          - name: a
          - name: b
            train.gp_weight: {{sample: uniform, from: [1, 5], n: 1}}
          - name: c
            train.gp_weight: {{sample: uniform, from: [1, 5], n: 1}}
        """
    first = expand_experiment(experiment(tmp_path, text.format(seed=1)))
    again = expand_experiment(experiment(tmp_path, text.format(seed=1)))
    other = expand_experiment(experiment(tmp_path, text.format(seed=2)))
    assert [r.sampled for r in first] == [r.sampled for r in again]
    assert [r.name for r in first] == [r.name for r in again]
    decay = [r.sampled["train.ema.decay"] for r in first]
    assert decay[:2] != [r.sampled["train.ema.decay"] for r in other][:2]
    # a sampler in config gives every run the same values ...
    assert decay[0:2] == decay[2:4] == decay[4:6]
    # ... one in a run entry draws its own (same path, different entries)
    assert first[2].sampled["train.gp_weight"] != first[4].sampled["train.gp_weight"]


def test_zip_pairs_values_and_needs_equal_lengths(tmp_path, base):
    path = experiment(
        tmp_path,
        """
        combine: zip
        defaults: base.yaml
        config:
          train.steps: {sample: list, from: [3, 4, 5]}
          model.filters_gen: {sample: range, from: [8, 32, 8]}
        """,
    )
    runs = expand_experiment(path)
    assert [(r.sampled["train.steps"], r.sampled["model.filters_gen"]) for r in runs] == [
        (3, 8),
        (4, 16),
        (5, 24),
    ]
    assert [r.name for r in runs] == [
        "exp-steps=3-filters_gen=8",
        "exp-steps=4-filters_gen=16",
        "exp-steps=5-filters_gen=24",
    ]
    path.write_text(path.read_text().replace("[8, 32, 8]", "[8, 40, 8]"))
    message = error_of(path)
    assert "zip" in message and "train.steps: 3" in message and "model.filters_gen: 4" in message

    path.write_text(path.read_text().replace("combine: zip", "combine: product"))
    assert len(expand_experiment(path)) == 12


# --------------------------------------------------------------------------- layers


def test_defaults_config_run_precedence(tmp_path, base):
    path = experiment(
        tmp_path,
        """
        name: prec
        defaults: base          # .yaml may be left out, relative to this file
        config:
          train: {steps: 5, batch_size: 3}
          model:
            filters_gen: {sample: list, from: [16, 24]}
        runs:
          - name: a
            train.steps: 7          # dotted key over a config mapping
            model: {noise_channels: 3}
          - name: b
            model: {filters_gen: 12}  # replaces the config sampler
          - {}
        """,
    )
    runs = expand_experiment(path)
    assert [r.name for r in runs] == [
        "a-filters_gen=16",
        "a-filters_gen=24",
        "b",
        "prec-2-filters_gen=16",
        "prec-2-filters_gen=24",
    ]
    a, _, b, c, _ = (dump(r) for r in runs)
    assert a["train"]["steps"] == 7 and a["train"]["batch_size"] == 3  # run > config
    assert a["model"]["noise_channels"] == 3 and a["model"]["filters_gen"] == 16
    assert a["model"]["filters_disc"] == 8  # from defaults, untouched by the mappings above
    assert b["model"]["filters_gen"] == 12 and b["train"]["steps"] == 5
    assert c["train"]["steps"] == 5 and c["model"]["noise_channels"] == 2  # defaults
    assert runs[2].sampled == {}
    # the dotted overrides reproduce the run: geogan train base.yaml <dotted...>
    for run in runs:
        assert load_run_config(tmp_path / "base.yaml", run.dotted) == run.config
    assert "train.steps=7" in runs[0].dotted and 'name="b"' in runs[2].dotted


def test_to_dotted_round_trips_awkward_values():
    tree = {
        "a": {"s": "1e5", "t": "yes", "q": 'x "y" \\ z', "n": None, "f": 1e-5, "l": [1, "b"]},
        "m": {},
        "d": [{"k": 1}],
    }
    assert to_dotted(tree) == [
        'a.s="1e5"',
        'a.t="yes"',
        'a.q="x \\"y\\" \\\\ z"',
        "a.n=null",
        "a.f=1e-05",
        'a.l=[1, "b"]',
        'd=[{"k": 1}]',
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rnus: []", "unknown key 'rnus'; did you mean 'runs'?"),
        ("config: {train.steps: {sample: unifrom, from: [1, 2]}}", "did you mean 'uniform'?"),
        ("config: {train.steps: {sample: uniform, from: [1, 2]}}", "needs n:"),
        ("config: {train.steps: {sample: range, from: [5, 1, 1]}}", "gives no values"),
        ("config: {train.steps: {sample: list, from: []}}", "at least one value"),
        ("config: {train.steps: {sample: list, from: [1], step: 2}}", "unknown key 'step'"),
        ("runs: [{name: x}, {name: x}]", "two runs are named 'x'"),
        ("runs: [{name: a/b}]", "cannot be a folder name"),
        ("combine: cross", "combine must be 'product'"),
        ("config: {train: 3, train.steps: 2}", "train is set twice"),
        ("defaults: [a.yaml, b.yaml]", "give one"),
    ],
)
def test_format_errors_are_one_line(tmp_path, text, expected):
    message = error_of(experiment(tmp_path, text))
    assert expected in message, message
    assert message.startswith("experiment ") or "exp.yaml" in message


def test_bad_value_names_the_run(tmp_path, base):
    path = experiment(
        tmp_path,
        """
        defaults: base.yaml
        runs:
          - name: fine
          - name: broken
            train: {steps: -1}
        """,
    )
    message = error_of(path)
    assert "run 'broken'" in message and "train.steps" in message and "exp.yaml" in message
    out = tmp_path / "out"
    with pytest.raises(ConfigError):
        sweep_command(path, out)
    assert not out.exists()

    path.write_text(path.read_text().replace("train: {steps: -1}", "job: {tme: '1:00:00'}"))
    message = error_of(path)
    assert "run 'broken'" in message and "did you mean 'time'" in message


# --------------------------------------------------------------------------- geogan sweep


SLURM_EXP = """
    defaults: base.yaml
    config:
      train.steps: {sample: list, from: [2, 3]}
    runs:
      - name: small
      - name: big
        model.filters_gen: 16
        job: {time: "08:00:00", extra: ["--qos=long"]}
    job:
      time: "04:00:00"
      partition: gpu
      cpus_per_task: 4
      setup: ["source venv/bin/activate"]
    """


def test_sweep_writes_run_dirs_and_job_scripts(tmp_path, base, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = experiment(tmp_path, SLURM_EXP)
    out = tmp_path / "sweep"
    summary = sweep_command(path, out, quiet=True)

    names = ["00000-small-steps=2", "00001-small-steps=3", "00002-big-steps=2", "00003-big-steps=3"]
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == names
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == [
        "experiment.yaml",
        "submit.sh",
        "sweep.json",
    ]
    assert not list(tmp_path.glob(".*.tmp"))
    saved = json.loads((out / "sweep.json").read_text())
    assert saved == json.loads(json.dumps(summary, default=str))
    assert [r["status"] for r in saved["runs"]] == ["written"] * 4
    assert saved["runs"][3]["overrides"][-1] == 'name="big-steps=3"'
    assert saved["runs"][3]["sampled"] == {"train.steps": 3}

    runs = expand_experiment(path)
    for run, name in zip(runs, names):
        run_dir = out / name
        assert load_run_config(run_dir / "config.yaml") == run.config
        script = (run_dir / "job.sbatch").read_text()
        assert (run_dir / "job.sbatch").stat().st_mode & 0o111
        assert f"#SBATCH --output={run_dir}/slurm-%j.out" in script
        assert "#SBATCH --partition=gpu" in script and "#SBATCH --cpus-per-task=4" in script
        assert "#SBATCH --gpus-per-node=1" in script and "#SBATCH --requeue" in script
        assert f"#SBATCH --job-name={name[6:]}" in script
        assert f"geogan train {run_dir}/config.yaml --run-dir {run_dir} --resume auto &" in script
        assert '"$rc" -eq 75' in script and 'scontrol requeue "$SLURM_JOB_ID"' in script
        assert f"cd {tmp_path}\nsource venv/bin/activate\n" in script
        assert "$$" not in script
        if shutil.which("bash"):
            subprocess.run(["bash", "-n", str(run_dir / "job.sbatch")], check=True, timeout=10)
    small = (out / names[0] / "job.sbatch").read_text()
    big = (out / names[2] / "job.sbatch").read_text()
    assert "#SBATCH --time=04:00:00" in small and "--qos" not in small
    assert "#SBATCH --time=08:00:00" in big and "#SBATCH --qos=long" in big
    submit = (out / "submit.sh").read_text().splitlines()
    assert submit[2:] == [f"sbatch {out / n / 'job.sbatch'}" for n in names]
    assert (out / "experiment.yaml").read_text() == path.read_text()


def test_dry_run_writes_nothing_and_existing_out_needs_overwrite(tmp_path, base):
    path = experiment(tmp_path, SLURM_EXP)
    out = tmp_path / "sweep"
    before = sorted(p.name for p in tmp_path.iterdir())
    summary = sweep_command(path, out, dry_run=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert [r["status"] for r in summary["runs"]] == ["dry_run"] * 4
    assert summary["runs"][0]["run_dir"] == str(out / "00000-small-steps=2")

    out.mkdir()
    (out / "old.txt").write_text("x")
    with pytest.raises(OutputExistsError):
        sweep_command(path, out)
    with pytest.raises(OutputExistsError):
        sweep_command(path, out, dry_run=True)
    assert (out / "old.txt").exists()
    sweep_command(path, out, overwrite=True)
    assert not (out / "old.txt").exists() and (out / "sweep.json").exists()


def test_failure_while_writing_leaves_nothing(tmp_path, base, monkeypatch):
    path = experiment(tmp_path, SLURM_EXP)
    out = tmp_path / "sweep"
    calls = []

    def flaky(cfg, folder):
        calls.append(folder)
        if len(calls) == 3:
            raise OSError("disk trouble")
        return sweep_cli.save_resolved_config.__wrapped__(cfg, folder)

    real = sweep_cli.save_resolved_config
    flaky.__wrapped__ = real
    monkeypatch.setattr(sweep_cli, "save_resolved_config", flaky)
    with pytest.raises(OSError, match="disk trouble"):
        sweep_command(path, out)
    assert len(calls) == 3
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base.yaml", "exp.yaml"]


def test_user_template_and_unknown_placeholder(tmp_path, base):
    path = experiment(tmp_path, SLURM_EXP)
    template = tmp_path / "mine.sh"
    template.write_text("#!/bin/sh\n# $job_name on $$HOSTNAME\nrun $config --dir $run_dir\n")
    out = tmp_path / "sweep"
    sweep_command(path, out, template=str(template))
    script = (out / "00000-small-steps=2" / "job.sh").read_text()
    run_dir = out / "00000-small-steps=2"
    assert script == (
        f"#!/bin/sh\n# small-steps=2 on $HOSTNAME\nrun {run_dir}/config.yaml --dir {run_dir}\n"
    )
    template.write_text("#SBATCH --time=$walltime\n")
    with pytest.raises(ConfigError, match=r"uses \$walltime, which is not a placeholder"):
        sweep_command(path, tmp_path / "other", template=str(template))
    assert not (tmp_path / "other").exists()
    with pytest.raises(ConfigError, match="neither a file nor a shipped template"):
        sweep_command(path, tmp_path / "other", template="pbs")


def test_local_sweep_trains_runs_and_records_status(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    truth = make_rain(tmp_path / "rain.nc", n_times=6, size=32)
    constants = make_constants(tmp_path / "constants.nc")
    cfg = base_config(truth, constants, tmp_path / "runs")
    cfg["train"].update(steps=2, checkpoint_every=2, log_every=1)
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(cfg))
    path = experiment(
        tmp_path,
        """
        defaults: base.yaml
        runs:
          - name: a
          - name: b
            train.steps: 3
          - name: missing-data
            data.truth.path: no_such_file.nc
        """,
    )
    out = tmp_path / "sweep"
    with pytest.raises(RunsFailedError) as info:
        sweep_command(path, out, local=True, quiet=True)
    assert info.value.exit_code == 1
    assert "1 of 3 runs failed" in str(info.value) and "missing-data" in str(info.value)

    saved = json.loads((out / "sweep.json").read_text())
    assert [r["status"] for r in saved["runs"]] == ["completed", "completed", "failed"]
    assert saved["failed"] == 1
    assert "no_such_file.nc" in saved["runs"][2]["error"]
    for record, steps in zip(saved["runs"][:2], (2, 3)):
        run_dir = Path(record["run_dir"])
        summary = json.loads((run_dir / "train_summary.json").read_text())
        assert summary["steps"] == steps and record["train_summary"]["steps"] == steps
        assert (run_dir / "model.safetensors").is_file()
        for name in ("git.txt", "pip_freeze.txt", "reproduce.json", "job.sbatch"):
            assert (run_dir / name).is_file(), name
        command = (run_dir / "command.txt").read_text().strip()
        assert command == f"geogan train {run_dir}/config.yaml --run-dir {run_dir}"
        stats = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]
        assert [s["step"] for s in stats] == list(range(1, steps + 1))
    assert read_experiment(path).name == "exp"
