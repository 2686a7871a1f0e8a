"""The recipe-1 generator and critic with dims=3 train through the shared Trainer."""

from __future__ import annotations

import numpy as np
import torch

from geogan.models.downscaling import DownscalingCritic, DownscalingGenerator
from geogan.recipes.downscaling.phases import CriticPhase, GeneratorPhase
from geogan.training.phases import TrainingSetup
from geogan.training.trainer import Trainer


class Volumes(torch.utils.data.Dataset):
    """3D items: input [1, 4, 4, 4], target [1, 8, 8, 8] (its 2x block means are the input), mask."""

    def __getitem__(self, i):
        rng = np.random.default_rng([3, i])
        y = rng.random((1, 8, 8, 8)).astype(np.float32)
        x = y.reshape(1, 4, 2, 4, 2, 4, 2).mean(axis=(2, 4, 6))
        return {
            "input": torch.from_numpy(x),
            "target": torch.from_numpy(y),
            "constants": torch.zeros(0, 8, 8, 8),
            "mask": torch.ones(1, 8, 8, 8),
        }

    def __len__(self):
        return 2**31


def test_3d_generator_and_critic_train_one_step(tmp_path):
    torch.manual_seed(0)
    g = DownscalingGenerator(
        dims=3,
        in_channels=1,
        filters=4,
        noise_channels=1,
        upsampling_factors=[2],
        output_activation="linear",
    )
    d = DownscalingCritic(dims=3, in_channels=1, filters=4, downsampling_factors=[2])
    before = [p.detach().clone() for p in list(g.parameters()) + list(d.parameters())]
    setup = TrainingSetup(
        models={"generator": g, "critic": d},
        optimizers={
            "generator": torch.optim.Adam(g.parameters(), 1e-3),
            "critic": torch.optim.Adam(d.parameters(), 1e-3),
        },
        phases=[
            CriticPhase(repeats=2, mode="gan", adversarial="wgan", gp_weight=10.0),
            GeneratorPhase(
                mode="gan",
                adversarial="wgan",
                content_kind="crps",
                content_weight=1.0,
                members=2,
                kl_weight=0.0,
            ),
        ],
        dataset=Volumes(),
    )
    trainer = Trainer(
        setup,
        run_dir=tmp_path,
        steps=1,
        batch_size=2,
        device=torch.device("cpu"),
        tensorboard=False,
        progress=False,
    )
    summary = trainer.fit()
    assert summary["steps"] == 1 and summary["skipped_steps"] == 0
    after = list(g.parameters()) + list(d.parameters())
    # every weight moves (biases feeding the WGAN score can have exactly cancelling gradients)
    assert all(not torch.equal(a, b) for a, b in zip(before, after) if a.dim() > 1)
    assert (tmp_path / "model.safetensors").exists()
