"""Preemption at the CLI level (issue 4, items 3 and 4).

``geogan train`` runs in a subprocess on the tiny data set; after its first
checkpoint it gets SIGTERM, must write a resume checkpoint and exit with code 75;
``--resume auto`` (in this process, to save a start-up) is stopped the same way by
SIGUSR1; a third ``--resume auto`` finishes the run. Its final weights, EMA, optimizer states
and RNG states must equal a straight run's bit for bit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from rel_helpers import cli

from geogan.core.checkpoint import load_checkpoint
from geogan.training.trainer import PREEMPTED_EXIT_CODE, latest_resume

STEPS = 10

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def _resume_steps(run: Path) -> list[int]:
    return sorted(
        int(p.stem.split("_")[1]) for p in (run / "checkpoints").glob("resume_*.safetensors")
    )


def _train_until_signal(args: list[str], run: Path, sig: int, after_step: int) -> int:
    """Run ``geogan train`` in a subprocess; send ``sig`` once a checkpoint past ``after_step``
    exists. Returns the step of the resume checkpoint written on the way out."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "geogan.cli.main", "--quiet", *args, "--run-dir", str(run)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 180
        while not any(s > after_step for s in _resume_steps(run)):
            assert proc.poll() is None, (
                f"training ended early ({proc.returncode}): {proc.stderr.read()}"
            )
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.01)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == PREEMPTED_EXIT_CODE, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("stopped: ") and f"signal {int(sig)}" in last and "--resume auto" in last
    stopped = _resume_steps(run)[-1]
    assert latest_resume(run / "checkpoints").name == f"resume_{stopped:09d}.safetensors"
    assert after_step < stopped < STEPS, "the signal came too late to test preemption"
    return stopped


def _train_in_process_until_signal(args, run, sig, after_step, capsys) -> int:
    """Like :func:`_train_until_signal` but in this process (``main()``), the signal sent by a
    watcher thread; a harmless handler is installed in case it lands after training ended."""
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            if any(after_step < s < STEPS for s in _resume_steps(run)):
                os.kill(os.getpid(), sig)
                return
            time.sleep(0.005)

    previous = signal.signal(sig, lambda *_: None)
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        code, err = cli([*args, "--run-dir", str(run)], capsys)
    finally:
        stop.set()
        watcher.join()
        signal.signal(sig, previous)
    assert code == PREEMPTED_EXIT_CODE, err
    assert err.startswith("stopped: ") and f"signal {int(sig)}" in err, err
    stopped = _resume_steps(run)[-1]
    assert after_step < stopped < STEPS
    return stopped


def test_sigterm_sigusr1_then_resume_auto_equals_a_straight_run(tiny, tmp_path, capsys):
    args = ["train", str(tiny["config"]), f"train.steps={STEPS}", "train.checkpoint_every=2"]
    run = tmp_path / "preempted"
    first = _train_until_signal(args, run, signal.SIGTERM, after_step=0)  # a real process
    second = _train_in_process_until_signal(
        [*args, "--resume", "auto"], run, signal.SIGUSR1, first, capsys
    )
    code, err = cli([*args, "--run-dir", str(run), "--resume", "auto"], capsys)
    assert code == 0, err
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["steps"] == STEPS and summary["steps_this_run"] == STEPS - second

    straight = tmp_path / "straight"
    code, err = cli([*args, "--run-dir", str(straight)], capsys)
    assert code == 0, err
    for name in (f"checkpoints/resume_{STEPS:09d}.safetensors", "model.safetensors"):
        a, meta_a = load_checkpoint(straight / name)
        b, meta_b = load_checkpoint(run / name)
        assert a.keys() == b.keys() and any(k.startswith("optim/") for k in a) == ("resume" in name)
        different = [k for k in a if not torch.equal(a[k], b[k])]
        assert not different, f"{name}: {different[:5]} differ after preemption and resume"
        assert meta_a["step"] == meta_b["step"] == STEPS
    _, meta = load_checkpoint(run / f"checkpoints/resume_{STEPS:09d}.safetensors")
    _, meta_straight = load_checkpoint(straight / f"checkpoints/resume_{STEPS:09d}.safetensors")
    assert meta["batches_consumed"] == meta_straight["batches_consumed"]  # sampler position
    assert meta["rng"] == meta_straight["rng"]
