"""Worker of the 2-process gloo test: one rank of recipe-5 training (spawned)."""

from __future__ import annotations

import os
import sys


def run(rank: int, world: int, store: str, config: str, run_dir: str, out: str) -> None:
    sys.path.insert(0, os.path.dirname(__file__))
    import torch
    import torch.distributed as dist

    from geogan.core.distributed import DistInfo
    from geogan.recipes.config import load_run_config
    from geogan.recipes.stylegan.build import build_training
    from geogan.training.trainer import Trainer

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    info = DistInfo(rank=rank, world_size=world)
    # each rank builds its own initial weights (other seeds): the Trainer broadcasts rank 0's
    cfg = load_run_config(config, [f"seed={rank}"])
    setup = build_training(cfg, device=torch.device("cpu"), run_dir=None, dist_info=info)
    trainer = Trainer(
        setup,
        run_dir=run_dir,
        device=torch.device("cpu"),
        train=cfg.train,
        seed=3,
        dist_info=info,
        progress=False,
        steps=4,
        tensorboard=False,
        checkpoint_every=100,
    )
    trainer.fit()
    flat = torch.cat(
        [p.detach().reshape(-1) for m in trainer.models.values() for p in m.parameters()]
    )
    ema = torch.cat([p.detach().reshape(-1) for p in trainer.ema.shadow.parameters()])
    pl = next(p for p in setup.phases if p.name == "path_length").mean_path_length
    torch.save({"flat": flat, "ema": ema, "pl": pl.reshape(1)}, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()
