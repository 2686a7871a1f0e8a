"""Recipe-independent training entry: run directory, reproducibility files, Trainer."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import torch

from geogan.config.schema import RunConfig
from geogan.core.atomic import atomic_write_text
from geogan.core.distributed import init_distributed, select_device
from geogan.core.seeding import derive_seed, seed_everything
from geogan.recipes import get_recipe
from geogan.training.reproducibility import write_reproducibility
from geogan.training.rundir import next_run_dir
from geogan.training.trainer import Trainer


def _shared_run_dir(
    cfg: RunConfig, run_dir: Path | None, is_main: bool, distributed: bool
) -> tuple[Path, bool]:
    """Rank 0 picks the numbered run directory; the others receive it. Returns (path, created)."""
    chosen = [
        str(run_dir) if run_dir is not None else None,
        run_dir is None or not Path(run_dir).exists(),
    ]
    if is_main and run_dir is None:
        chosen[0] = str(next_run_dir(cfg.run_root, cfg.name))
    if distributed:
        torch.distributed.broadcast_object_list(chosen, src=0)
    path = Path(chosen[0])
    path.mkdir(parents=True, exist_ok=True)
    return path, bool(chosen[1])


def train_from_config(
    cfg: RunConfig,
    *,
    run_dir: Path | None = None,
    resume: str | None = None,
    restart: bool = False,
    progress: bool = True,
    command: list[str] | None = None,
) -> dict[str, Any]:
    """Build the recipe's training setup and run the Trainer; returns the summary (also saved as JSON).

    Relative data paths are made absolute first: the saved config and every export then
    work from any folder.
    """
    from geogan.recipes.config import absolute_paths

    cfg = absolute_paths(cfg)
    device = select_device(cfg.device)
    dist_info = init_distributed(device)
    seed_everything(derive_seed(cfg.seed, dist_info.rank))
    run_dir, created = _shared_run_dir(cfg, run_dir, dist_info.is_main, dist_info.enabled)
    try:
        return _train(cfg, run_dir, resume, restart, progress, command, device, dist_info)
    except BaseException:
        # nothing half-written: a run that failed before its first checkpoint leaves no directory
        checkpoints = run_dir / "checkpoints"
        if (
            created
            and dist_info.is_main
            and not (checkpoints.is_dir() and any(checkpoints.glob("*.safetensors")))
        ):
            shutil.rmtree(run_dir, ignore_errors=True)
            root = Path(cfg.run_root)
            if root.is_dir() and not any(root.iterdir()):
                root.rmdir()
        raise


def _train(cfg, run_dir, resume, restart, progress, command, device, dist_info) -> dict[str, Any]:
    if dist_info.is_main:
        # git.txt, command.txt, config.yaml, pip_freeze.txt, reproduce.json
        write_reproducibility(run_dir, cfg, command or sys.argv)
    recipe = get_recipe(cfg.recipe)
    setup = recipe.build_training(cfg, device=device, run_dir=run_dir, dist_info=dist_info)
    data = getattr(cfg, "data", None)
    trainer = Trainer(
        setup,
        run_dir=run_dir,
        device=device,
        train=cfg.train,
        seed=cfg.seed,
        num_workers=getattr(data, "num_workers", 0),
        prefetch_factor=getattr(data, "prefetch_factor", 4),
        config=cfg.model_dump(mode="json"),
        dist_info=dist_info,
        progress=progress,
    )
    summary = trainer.fit(resume=resume, restart=restart)
    if dist_info.is_main:
        atomic_write_text(run_dir / "train_summary.json", json.dumps(summary, indent=2))
    return summary
