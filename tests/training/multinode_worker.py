"""``geogan`` as torchrun runs it, plus a record of every rank's weights after training.

Run by ``tests/training/test_multinode.py`` as ``torchrun ... -m multinode_worker OUT <geogan
arguments>`` (``tests/training`` on ``PYTHONPATH``): it runs ``geogan.cli.main.main`` on the
arguments and, when the Trainer's ``fit`` returns, writes this rank's model and EMA weights to
``OUT/rank<r>.safetensors``. The CLI writes checkpoints on rank 0 only; these files let the
test compare the ranks.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import save_file

import geogan.recipes.run as run_module
from geogan.cli.main import main
from geogan.training.trainer import Trainer


def _recording_trainer(out: Path) -> type[Trainer]:
    class RecordingTrainer(Trainer):
        def fit(self, *args, **kwargs):
            summary = super().fit(*args, **kwargs)
            tensors = {
                f"{name}.{key}": value.detach().cpu().contiguous()
                for name, model in self.models.items()
                for key, value in model.state_dict().items()
            }
            if self.ema is not None:
                for key, value in self.ema.shadow.state_dict().items():
                    tensors[f"ema.{key}"] = value.detach().cpu().contiguous()
            rank = dist.get_rank() if dist.is_initialized() else 0
            world = dist.get_world_size() if dist.is_initialized() else 1
            save_file(
                tensors,
                str(out / f"rank{rank}.safetensors"),
                metadata={"rank": str(rank), "world_size": str(world), "step": str(self.step)},
            )
            return summary

    return RecordingTrainer


if __name__ == "__main__":
    torch.set_num_threads(1)
    out_dir = Path(sys.argv[1])
    run_module.Trainer = _recording_trainer(out_dir)
    sys.exit(main(sys.argv[2:]))
