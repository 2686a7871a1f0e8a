"""Two gloo processes train recipe 5 for a few steps and end with identical weights, EMA
and path-length state (rank 0's initial weights broadcast, gradients and the running mean
of path lengths averaged)."""

from __future__ import annotations

import torch
from sg_helpers import tiny_config, write_ensemble


def test_two_gloo_processes_hold_identical_weights(tmp_path):
    import torch.multiprocessing as mp
    from sg_ddp_worker import run

    data = write_ensemble(tmp_path)
    cfg = tiny_config(tmp_path, data, train={"d_reg_every": 2, "g_reg_every": 2})
    mp.spawn(
        run,
        args=(2, str(tmp_path / "store"), str(cfg), str(tmp_path / "run"), str(tmp_path)),
        nprocs=2,
        join=True,
    )
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    for key in ("flat", "ema", "pl"):
        assert torch.equal(r0[key], r1[key]), key
    assert float(r0["pl"][0]) > 0  # the path-length phase ran and updated its state
