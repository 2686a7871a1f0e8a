"""The victim of the SIGKILL test: a process that writes checkpoints in a loop (not a test module).

Runs in processes forked from a ``multiprocessing`` forkserver that has torch and
geogan preloaded, so that each of the many killed processes starts in milliseconds.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from geogan.core.checkpoint import save_checkpoint

N_WEIGHTS = 1 << 20  # 4 MiB of float32 per checkpoint, plus 1 MiB of "optimizer state"


def expected_tensors(step: int) -> dict[str, torch.Tensor]:
    """What the checkpoint of ``step`` holds: every value depends on the step."""
    return {
        "model/w": torch.arange(N_WEIGHTS, dtype=torch.float32) + step,
        "optim/m": torch.full((256, 1024), float(step)),
        "rng/state": torch.tensor([step, -step], dtype=torch.int64),
    }


def write_forever(run_dir: str, start_step: int, ready_file: str, keep: int = 3) -> None:
    """Write ``resume_<step>`` and ``model.safetensors`` for step = start_step + 1, ... until killed.

    Like the Trainer: the resume checkpoint, then the export under a fixed name, then
    pruning of old resume checkpoints.
    """
    torch.set_num_threads(1)
    run = Path(run_dir)
    ckpt = run / "checkpoints"
    ckpt.mkdir(parents=True, exist_ok=True)
    Path(ready_file).write_text(str(os.getpid()))
    step = start_step
    while True:
        step += 1
        tensors = expected_tensors(step)
        meta = {"kind": "resume", "step": step, "note": "kill test"}
        save_checkpoint(ckpt / f"resume_{step:09d}.safetensors", tensors, meta)
        save_checkpoint(run / "model.safetensors", tensors, {**meta, "kind": "export"})
        for old in sorted(ckpt.glob("resume_*.safetensors"))[:-keep]:
            old.unlink(missing_ok=True)
