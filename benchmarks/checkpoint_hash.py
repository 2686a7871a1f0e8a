"""Benchmark: the cost of checkpoint checksums on save and load, at the size of P1's resume state.

The checkpoint is the real resume state of the ``P1`` training configuration of
``train_step.py`` (generator, critic, EMA generator, both Adam optimizers with their
moment estimates, RNG states): the Trainer is built as that benchmark builds it, one
optimizer step with zero gradients creates the Adam state, and
``Trainer._resume_state()`` gives the tensors and metadata that ``save`` would write.

Timed (median of ``repeats``, after one untimed warm-up of each):

- ``hash``: :func:`geogan.core.checkpoint.tensor_digest` alone, for every algorithm in
  ``CHECKSUM_ALGORITHMS`` (MB/s of tensor bytes);
- ``save``: :func:`~geogan.core.checkpoint.save_checkpoint` (copies, hashes, writes)
  against the same copies written by ``safetensors.torch.save_file`` with the same
  metadata and no checksum (what ``save_checkpoint`` did before checksums);
- ``load``: :func:`~geogan.core.checkpoint.load_checkpoint` (header check, read,
  verify) against ``safetensors.torch.load_file`` alone.

Files go to a temporary directory (``--dir``, default the system's): after the first
write the loads mostly read the page cache, so they measure CPU cost, not the disk.

    python benchmarks/checkpoint_hash.py                 # P1 size, JSON on stdout
    python benchmarks/checkpoint_hash.py --quick         # toy sizes (smoke test)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine_info, peak_rss_mb, summarise  # noqa: E402


def resume_state(config: str = "P1", quick: bool = False) -> tuple[dict[str, torch.Tensor], dict]:
    """``(tensors, meta)`` of the resume checkpoint of training configuration ``config``."""
    from train_step import build_trainer, get_config

    spec = get_config(config, quick=quick)
    with tempfile.TemporaryDirectory(prefix="geogan-bench-hash-") as run_dir:
        trainer = build_trainer(spec, "fp32", channels_last=False, run_dir=run_dir)
        for opt in trainer.optimizers.values():
            # Adam allocates its moment estimates at the first step; zero gradients
            # leave the weights as they are.
            for group in opt.param_groups:
                for p in group["params"]:
                    p.grad = torch.zeros_like(p)
            opt.step()
            opt.zero_grad(set_to_none=True)
        tensors, meta = trainer._resume_state()
    return tensors, meta


def _median(fn, repeats: int) -> dict[str, Any]:
    fn()  # warm-up: page cache, allocator
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return summarise(times)


def run(
    config: str = "P1", quick: bool = False, repeats: int = 3, folder: str | None = None
) -> dict[str, Any]:
    from safetensors.torch import load_file, save_file

    import geogan
    from geogan.core import checkpoint as ck

    t0 = time.perf_counter()
    tensors, meta = resume_state(config, quick)
    build_s = time.perf_counter() - t0
    n_bytes = sum(t.numel() * t.element_size() for t in tensors.values())
    mb = n_bytes / 1e6
    kinds: dict[str, int] = {}
    for k in tensors:
        kinds[k.split("/", 1)[0]] = kinds.get(k.split("/", 1)[0], 0) + 1
    result: dict[str, Any] = {
        "config": config,
        "quick": quick,
        "tensors": len(tensors),
        "tensors_by_prefix": kinds,
        "tensor_mb": round(mb, 2),
        "build_s": round(build_s, 2),
        "algorithm": ck.CHECKSUM_ALGORITHM,
        "note": "smoke figures unless run alone on an idle machine; loads read the page cache",
    }

    clean = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    result["hash"] = {}
    for algo in ck.CHECKSUM_ALGORITHMS:
        timing = _median(lambda a=algo: ck.tensor_digest(clean, a), repeats)
        timing["mb_per_s"] = round(mb / timing["median_s"], 1)
        result["hash"][algo] = timing

    header = {
        "geogan_format": str(ck.FORMAT_VERSION),
        "geogan_version": geogan.__version__,
        "meta": json.dumps(meta, default=ck._json_default),
    }
    with tempfile.TemporaryDirectory(prefix="geogan-bench-hash-", dir=folder) as tmp:
        plain = Path(tmp) / "plain.safetensors"
        hashed = Path(tmp) / "hashed.safetensors"

        def save_plain() -> None:
            copies = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
            save_file(copies, str(plain), metadata=header)

        save_without = _median(save_plain, repeats)
        save_with = _median(lambda: ck.save_checkpoint(hashed, tensors, meta), repeats)
        load_without = _median(lambda: load_file(str(plain)), repeats)
        load_with = _median(lambda: ck.load_checkpoint(hashed), repeats)
        result["file_mb"] = round(hashed.stat().st_size / 1e6, 2)
    for name, without, with_ in (
        ("save", save_without, save_with),
        ("load", load_without, load_with),
    ):
        result[name] = {
            "without_hash_s": round(without["median_s"], 4),
            "with_hash_s": round(with_["median_s"], 4),
            "overhead_s": round(with_["median_s"] - without["median_s"], 4),
            "overhead_ratio": round(with_["median_s"] / without["median_s"], 3),
            "mb_per_s_without": round(mb / without["median_s"], 1),
            "mb_per_s_with": round(mb / with_["median_s"], 1),
            "samples_without_s": without["samples_s"],
            "samples_with_s": with_["samples_s"],
        }
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    result["machine"] = machine_info()
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="P1", help="training configuration of train_step.py")
    ap.add_argument("--quick", action="store_true", help="toy sizes (smoke test)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dir", default=None, help="folder for the temporary checkpoint files")
    ap.add_argument("--out", default=None, help="also write the JSON result to this file")
    args = ap.parse_args(argv)
    result = run(args.config, args.quick, args.repeats, args.dir)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
