"""Atomic writes (issue 4, item 2): SIGKILL at random points while checkpoints are written.

A process writes 5 MiB checkpoints in a loop, like the Trainer (``resume_<step>``
under step-numbered names, then ``model.safetensors`` under one fixed name, then
pruning); the test kills it with SIGKILL after a random delay, many times, each new
process continuing from the newest valid checkpoint. After every kill, every file
under a final name must load completely with consistent contents, the newest valid
resume checkpoint must be found (``latest_resume``), and leftovers of killed writes
(``.<name>.*.tmp`` folders) must never be taken for checkpoints.

``GEOGAN_KILL_POINTS=500`` runs a longer search locally (default 40, ~10 s).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import signal
import sys
import time
from pathlib import Path

import pytest
import rel_kill_writer
import torch

from geogan.core.checkpoint import load_checkpoint
from geogan.training.trainer import latest_resume

KILL_POINTS = int(os.environ.get("GEOGAN_KILL_POINTS", 40))
MAX_DELAY_S = 0.25  # one loop step (two 5 MiB checkpoints) takes ~0.06 s on the 2-core machine

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL and fork are POSIX")


def _assert_complete(tensors: dict, step: int, where: Path) -> None:
    want = rel_kill_writer.expected_tensors(step)
    assert tensors.keys() == want.keys(), where
    for k, v in want.items():
        assert torch.equal(tensors[k], v), (where, k)


def _check_run_dir(run: Path) -> tuple[int, int]:
    """Everything under a final name is complete; returns the newest resume and model steps."""
    ckpt = run / "checkpoints"
    finals = sorted(ckpt.glob("resume_*.safetensors"))
    steps = []
    for path in finals:
        tensors, meta = load_checkpoint(path)  # raises if truncated or corrupt
        assert path.name == f"resume_{meta['step']:09d}.safetensors"
        _assert_complete(tensors, meta["step"], path)
        steps.append(meta["step"])
    assert latest_resume(ckpt) == (finals[-1] if finals else None)
    model = run / "model.safetensors"
    model_step = 0
    if model.exists():
        tensors, meta = load_checkpoint(model)
        model_step = meta["step"]
        _assert_complete(tensors, model_step, model)
        assert steps and model_step <= steps[-1], (model_step, steps)  # written after resume_<step>
    return (steps[-1] if steps else 0), model_step


def _temporaries(run: Path) -> set[Path]:
    return set(run.glob(".*.tmp")) | set((run / "checkpoints").glob(".*.tmp"))


def test_sigkill_at_random_points_never_corrupts_a_checkpoint(tmp_path):
    ctx = mp.get_context("forkserver")
    # forked from a server with torch and geogan imported: each victim starts in milliseconds
    ctx.set_forkserver_preload(["torch", "geogan.core.checkpoint", "rel_kill_writer"])
    rng = random.Random(20261123)
    run = tmp_path / "run"
    step, model_step, mid_write, started = 0, 0, 0, time.perf_counter()
    for kill in range(KILL_POINTS):
        ready = tmp_path / f"ready_{kill}"
        proc = ctx.Process(
            target=rel_kill_writer.write_forever, args=(str(run), step, str(ready)), daemon=True
        )
        proc.start()
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert proc.is_alive() or proc.exitcode is None, f"writer died: {proc.exitcode}"
            assert time.monotonic() < deadline, "writer did not start"
            time.sleep(0.002)
        before = _temporaries(run)
        time.sleep(rng.uniform(0.0, MAX_DELAY_S))
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(10)
        assert proc.exitcode == -signal.SIGKILL
        mid_write += bool(_temporaries(run) - before)  # it died inside a write
        newest, newest_model = _check_run_dir(run)
        assert newest >= step and newest_model >= model_step, "a completed checkpoint was lost"
        step, model_step = newest, newest_model
    elapsed = time.perf_counter() - started
    print(
        f"\nkill points: {KILL_POINTS}, killed inside a write: {mid_write}, "
        f"checkpoints completed: {step}, temporary leftovers: {len(_temporaries(run))}, {elapsed:.1f} s"
    )
    assert step > 0, "no checkpoint was ever completed: the delays are too short"
    assert mid_write >= KILL_POINTS // 4, f"only {mid_write} kills landed inside a write"
    assert _temporaries(run), "killed writes leave temporary folders (removed by the Trainer)"


def test_trainer_removes_leftovers_of_killed_writes(tmp_path):
    sys.path.insert(0, str(Path(__file__).parent.parent / "training"))
    from toy import make_setup  # noqa: PLC0415

    from geogan.training.trainer import Trainer  # noqa: PLC0415

    run = tmp_path / "run"
    stale = [
        run / ".model.safetensors.k3j2h1.tmp",
        run / "checkpoints" / ".resume_000000009.safetensors.a1b2c3.tmp",
        run / "checkpoints" / ".export_000000009.safetensors.d4e5f6.tmp",
    ]
    for folder in stale:
        folder.mkdir(parents=True)
        (folder / folder.name.split(".")[1]).write_bytes(b"\0" * 100)  # a partial file inside
    keep = [run / "notes.tmp", run / ".hidden"]  # not leftovers of atomic writes
    keep[0].write_text("a file, not a temporary folder")
    keep[1].mkdir()
    trainer = Trainer(
        make_setup(),
        run_dir=run,
        steps=1,
        batch_size=2,
        device=torch.device("cpu"),
        tensorboard=False,
        progress=False,
    )
    assert all(p.exists() for p in stale)  # building a Trainer touches nothing
    trainer.fit(resume="auto")
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in keep)
    assert latest_resume(run / "checkpoints").name == "resume_000000001.safetensors"
