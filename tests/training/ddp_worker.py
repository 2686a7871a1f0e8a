"""Worker for the 2-process gloo test (imported by torch.multiprocessing.spawn)."""

from __future__ import annotations

import os
import sys

import torch
import torch.distributed as dist


def run(rank: int, world: int, store: str, run_dir: str, out: str) -> None:
    sys.path.insert(0, os.path.dirname(__file__))
    from toy import make_setup

    from geogan.core.distributed import DistInfo
    from geogan.training.trainer import Trainer

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    # Different seeds per rank: the Trainer must broadcast rank 0's weights first.
    setup = make_setup(seed=rank)
    trainer = Trainer(
        setup,
        run_dir=run_dir,
        steps=4,
        batch_size=2,
        device=torch.device("cpu"),
        seed=3,
        checkpoint_every=100,
        tensorboard=False,
        progress=False,
        dist_info=DistInfo(rank=rank, world_size=world),
    )
    trainer.fit()
    flat = torch.cat(
        [p.detach().reshape(-1) for m in trainer.models.values() for p in m.parameters()]
    )
    torch.save({"flat": flat}, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()
