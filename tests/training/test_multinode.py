"""Two torchrun "nodes" on this machine, started from the SLURM multinode template's own
torchrun line: the ranks end training with identical weights.

Each node is a ``python -m torch.distributed.run --nnodes 2 --node-rank r --rdzv-backend c10d
--rdzv-endpoint 127.0.0.1:<port> ...`` process (loopback only, gloo on CPU, one thread each,
bounded by a timeout; both are killed if either fails). The training module named in the
template (``geogan.cli.main``) is swapped for ``multinode_worker``, which runs the same CLI
and then writes every rank's weights.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import string
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml
from safetensors import safe_open
from tiny_data import base_config, make_constants, make_rain

from geogan.cli.sweep import sweep_command

HERE = Path(__file__).parent
TIMEOUT_S = 240


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _multinode_sweep(tmp_path: Path) -> tuple[Path, str]:
    """A one-run sweep for 2 nodes of the tiny recipe-1 config: (run dir, job script)."""
    truth = make_rain(tmp_path / "rain.nc", n_times=6, size=32)
    constants = make_constants(tmp_path / "constants.nc")
    cfg = base_config(truth, constants, tmp_path / "runs")
    cfg["device"] = "cpu"
    cfg["train"].update(steps=3, checkpoint_every=3, log_every=1)
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(cfg))
    exp = tmp_path / "exp.yaml"
    exp.write_text(
        textwrap.dedent(
            """
            defaults: base.yaml
            job: {nodes: 2, gpus_per_node: 0, nproc_per_node: 1, cpus_per_task: 2, port: 29400}
            """
        )
    )
    summary = sweep_command(exp, tmp_path / "sweep", quiet=True)
    run = summary["runs"][0]
    assert run["template"] == "slurm_multinode"  # chosen for nodes > 1
    return Path(run["run_dir"]), Path(run["job_script"]).read_text()


def _torchrun_line(script: str) -> list[str]:
    lines = [line for line in script.splitlines() if line.startswith("srun ")]
    assert len(lines) == 1, lines
    tokens = shlex.split(lines[0])
    assert tokens[:3] == ["srun", "--kill-on-bad-exit=1", "torchrun"] and tokens[-1] == "&"
    return tokens[3:-1]


def test_multinode_template_torchrun_line(tmp_path):
    run_dir, script = _multinode_sweep(tmp_path)
    args = _torchrun_line(script)
    assert args == [
        "--nnodes",
        "$SLURM_NNODES",
        "--nproc-per-node",
        "1",
        "--rdzv-backend",
        "c10d",
        "--rdzv-endpoint",
        "$MASTER_ADDR:$PORT",
        "--rdzv-id",
        "$SLURM_JOB_ID",
        "-m",
        "geogan.cli.main",
        "train",
        str(run_dir / "config.yaml"),
        "--run-dir",
        str(run_dir),
        "--resume",
        "auto",
    ]
    assert "#SBATCH --nodes=2" in script and "#SBATCH --ntasks-per-node=1" in script
    assert "PORT=29400" in script and "gpus-per-node" not in script
    assert 'MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)' in script
    if shutil.which("bash"):
        path = tmp_path / "job.sbatch"
        path.write_text(script)
        subprocess.run(["bash", "-n", str(path)], check=True, timeout=10)


def _kill(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


@pytest.mark.skipif(sys.platform == "win32", reason="process groups")
def test_two_torchrun_nodes_end_with_identical_weights(tmp_path):
    run_dir, script = _multinode_sweep(tmp_path)
    port = _free_port()
    shell_vars = {
        "SLURM_NNODES": "2",
        "MASTER_ADDR": "127.0.0.1",
        "PORT": str(port),
        "SLURM_JOB_ID": f"geogan-test-{os.getpid()}",
    }
    args = [string.Template(a).substitute(shell_vars) for a in _torchrun_line(script)]
    module = args.index("-m")
    assert args[module + 1] == "geogan.cli.main"
    weights = tmp_path / "weights"
    weights.mkdir()
    args[module + 1 : module + 2] = ["multinode_worker", str(weights), "--quiet"]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "GLOO_SOCKET_IFNAME": "lo",
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    logs = [tmp_path / f"node{r}.log" for r in range(2)]
    procs: list[subprocess.Popen] = []
    try:
        for node in range(2):
            cmd = [sys.executable, "-m", "torch.distributed.run", "--node-rank", str(node)]
            cmd += ["--local-addr", "127.0.0.1", *args]
            with open(logs[node], "wb") as log:
                procs.append(
                    subprocess.Popen(
                        cmd,
                        cwd=tmp_path,
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        start_new_session=True,
                    )
                )
        deadline = time.monotonic() + TIMEOUT_S
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            if any(p.poll() not in (None, 0) for p in procs):
                break  # one node failed: do not wait for the other's rendezvous timeout
            time.sleep(0.2)
    finally:
        _kill(procs)
    codes = [p.returncode for p in procs]
    if codes != [0, 0]:
        tails = "\n".join(f"--- node {r}:\n{logs[r].read_text()[-3000:]}" for r in range(2))
        pytest.fail(f"torchrun nodes exited with {codes}:\n{tails}")

    files = [weights / f"rank{r}.safetensors" for r in range(2)]
    assert all(f.is_file() for f in files), sorted(p.name for p in weights.iterdir())
    with safe_open(str(files[0]), "pt") as a, safe_open(str(files[1]), "pt") as b:
        assert a.metadata() == {"rank": "0", "world_size": "2", "step": "3"}
        assert b.metadata() == {"rank": "1", "world_size": "2", "step": "3"}
        keys = sorted(a.keys())
        assert keys == sorted(b.keys()) and any(k.startswith("ema.") for k in keys)
        different = [k for k in keys if not a.get_tensor(k).equal(b.get_tensor(k))]
    assert different == []

    # one run directory, written by rank 0, trained to the end
    summary = json.loads((run_dir / "train_summary.json").read_text())
    assert summary["steps"] == 3
    assert (run_dir / "model.safetensors").is_file()
    assert sorted(p.name for p in run_dir.parent.iterdir() if p.is_dir()) == [run_dir.name]
    command = (run_dir / "command.txt").read_text()
    assert "train" in command and str(run_dir) in command
