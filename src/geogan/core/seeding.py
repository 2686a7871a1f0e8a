"""Seeds and random-number-generator states.

Seeds are derived, never shared: a member, a step or a rank gets its own seed
from a base seed with :func:`derive_seed`, so ensembles are reproducible one
member at a time and independent of batch composition.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def derive_seed(*keys: int) -> int:
    """A 63-bit seed from a tuple of integers (base seed, step, rank, member...)."""
    ss = np.random.SeedSequence([int(k) & 0xFFFFFFFF for k in keys])
    return int(
        ss.generate_state(2, dtype=np.uint32).astype(np.uint64)
        @ np.array([1, 2**32], dtype=np.uint64)
    ) & (2**63 - 1)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def torch_generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g


def get_rng_state() -> dict[str, Any]:
    """All global RNG states: torch tensors under ``tensors``, the rest JSON-able."""
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda_{i}"] = s
    np_state = np.random.get_state()
    py_state = random.getstate()
    return {
        "tensors": tensors,
        "numpy": [
            np_state[0],
            np_state[1].tolist(),
            int(np_state[2]),
            int(np_state[3]),
            float(np_state[4]),
        ],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    tensors = state["tensors"]
    torch.set_rng_state(tensors["torch_cpu"])
    if torch.cuda.is_available():
        cuda = [tensors[k] for k in sorted(tensors) if k.startswith("torch_cuda_")]
        if cuda:
            torch.cuda.set_rng_state_all(cuda)
    n = state["numpy"]
    np.random.set_state((n[0], np.asarray(n[1], dtype=np.uint32), n[2], n[3], n[4]))
    p = state["python"]
    random.setstate((p[0], tuple(p[1]), p[2]))
