"""Worker for the 2-process gloo test (imported by torch.multiprocessing.spawn)."""

from __future__ import annotations

import os
import sys

import torch
import torch.distributed as dist


def run(rank: int, world: int, store: str, run_dir: str, out: str, timed: bool = False) -> None:
    """``timed``: a time-limited run with a learning rate that decays over time, where rank
    1's clock runs 3x fast (a slower rank): the ranks must still stop at the same step and
    use the same learning rates."""
    sys.path.insert(0, os.path.dirname(__file__))
    import datetime
    import time

    from toy import make_setup

    from geogan.core.distributed import DistInfo
    from geogan.training.trainer import Trainer

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"file://{store}",
        rank=rank,
        world_size=world,
        timeout=datetime.timedelta(seconds=60),
    )
    settings = {"steps": 4}
    if timed:
        from geogan.config.schema import TrainConfig

        settings = {
            "steps": 100000,
            "train": TrainConfig(
                lr_schedule={"kind": "linear", "over": "time"}, time_limit_minutes=1.5 / 60
            ),
        }
        if rank == 1:
            real = time.perf_counter
            start = real()
            time.perf_counter = lambda: start + 3.0 * (real() - start)
    # Different seeds per rank: the Trainer must broadcast rank 0's weights first.
    setup = make_setup(seed=rank)
    trainer = Trainer(
        setup,
        run_dir=run_dir,
        batch_size=2,
        device=torch.device("cpu"),
        seed=3,
        checkpoint_every=100,
        tensorboard=False,
        progress=False,
        dist_info=DistInfo(rank=rank, world_size=world),
        **settings,
    )
    trainer.fit()
    flat = torch.cat(
        [p.detach().reshape(-1) for m in trainer.models.values() for p in m.parameters()]
    )
    lr = trainer.optimizers["generator"].param_groups[0]["lr"]
    torch.save({"flat": flat, "step": trainer.step, "lr": lr}, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()
