"""Recipe 2 memory: a 512^3 volume with 4 variables generated and written with peak RSS <= 2 GiB.

The issue's target: ``geogan generate`` streams a 512^3 x 4-variable output (2 GiB of
float32 per member, more than the budget itself) to Zarr (or NetCDF) from overlapping 3D
tiles. This script

1. writes a coarse 128^3 input (x4) of generated mantle-like fields (T, u, v, w) to NetCDF,
2. writes an export of the ``volume/mantle_x4`` generator (random weights: memory and time
   do not depend on training) whose config points ``generate.input`` at that file,
3. runs the recipe's ``generate`` (the code behind ``geogan generate``) in a fresh process
   and reports that process's peak resident memory (``ru_maxrss``), the time, and the
   output's shape, checking every voxel was written.

    python benchmarks/volume_memory.py [--size 512] [--members 1] [--format zarr] [--quick]

``--quick``: a 64^3 output (smoke test). Exit code 1 when the peak exceeds ``--limit-mb``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
RESULT = "@@VOLUME_MEMORY@@ "


def prepare(work: Path, size: int, factor: int, tile: int, fmt: str, members: int) -> Path:
    """The coarse input file and an export pointing at it; returns the export's path."""
    import numpy as np
    import torch
    import xarray as xr

    from geogan.core.checkpoint import module_tensors, save_checkpoint
    from geogan.core.modules import model_spec
    from geogan.data.normalisation import Normalisation
    from geogan.data.synthetic import mantle_like
    from geogan.models.srsgan import SRSGANGenerator
    from geogan.recipes.config import load_run_config
    from geogan.recipes.volume.build import EXPORT_FORMAT, model_kwargs

    coarse = size // factor
    fields = mantle_like((coarse,) * 3, seed=1)
    axes = ("z", "y", "x")
    ds = xr.Dataset(
        {k: (axes, v, {"units": "1"}) for k, v in fields.items()},
        coords={
            a: (a, np.arange(coarse, dtype=np.float32) * factor + (factor - 1) / 2) for a in axes
        },
    )
    path = work / "coarse.nc"
    ds.to_netcdf(path)
    norm = Normalisation.compute({k: [v] for k, v in fields.items()})
    cfg = load_run_config(
        "volume/mantle_x4",
        [
            f"data.factor={factor}",
            f"generate.input={path}",
            f"generate.tile={tile}",
            f"generate.members={members}",
            f"generate.format={fmt}",
            "generate.batch_size=1",
        ],
    )
    kwargs = model_kwargs(cfg, 4, 4)["generator"]
    torch.manual_seed(0)
    g = SRSGANGenerator(**kwargs)
    with torch.no_grad():  # noise scales start at 0; give them a value so noise is drawn and used
        for block in g.blocks:
            block.noise1.inject.weight.fill_(0.1)
            block.noise2.inject.weight.fill_(0.1)
    meta = {
        "kind": "export",
        "format": EXPORT_FORMAT,
        "step": 0,
        "models": {"generator": model_spec(g)},
        "config": cfg.model_dump(mode="json"),
        "variables": list(fields),
        "units": {k: "1" for k in fields},
        "factor": [factor] * 3,
        "with_mask": False,
        "input_pad": [1, 1, 1],
        "periodic": [True, True, True],
        "dims": list(axes),
        "normalisation": norm.to_dict(),
    }
    export = work / "model.safetensors"
    save_checkpoint(export, module_tensors("generator", g), meta)
    return export


def worker(args: dict[str, Any]) -> dict[str, Any]:
    import torch
    from common import peak_rss_mb

    torch.set_num_threads(int(args["threads"]))
    from geogan.recipes.volume.generate import generate

    before = peak_rss_mb()
    t0 = time.perf_counter()
    summary = generate(args["export"], out=args["out"], progress=False, overwrite=True)
    seconds = time.perf_counter() - t0
    return {
        "summary": summary,
        "seconds": seconds,
        "peak_rss_mb": peak_rss_mb(),
        "rss_after_imports_mb": before,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=512, help="fine voxels per axis")
    parser.add_argument("--factor", type=int, default=4)
    parser.add_argument("--tile", type=int, default=16, help="coarse voxels per tile")
    parser.add_argument("--members", type=int, default=1)
    parser.add_argument("--format", choices=["zarr", "netcdf"], default="zarr")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit-mb", type=float, default=2048.0)
    parser.add_argument("--quick", action="store_true", help="a 64^3 output (smoke test)")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: temp)")
    parser.add_argument("--out", type=Path, default=None, help="write the result JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    ns = parser.parse_args(argv)
    if ns.worker:
        print(RESULT + json.dumps(worker(json.loads(ns.worker)), default=str), flush=True)
        return {}
    from common import machine_info

    size = 64 if ns.quick else ns.size
    work = ns.work or Path(tempfile.mkdtemp(prefix="volume_memory_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        export = prepare(
            work, size, ns.factor, min(ns.tile, size // ns.factor), ns.format, ns.members
        )
        suffix = ".zarr" if ns.format == "zarr" else ".nc"
        args = {"export": str(export), "out": str(work / f"out{suffix}"), "threads": ns.threads}
        env = dict(os.environ, OMP_NUM_THREADS=str(ns.threads))
        proc = subprocess.run(
            [sys.executable, __file__, "--worker", json.dumps(args)],
            capture_output=True,
            text=True,
            env=env,
        )
        result = None
        for line in proc.stdout.splitlines():
            if line.startswith(RESULT):
                result = json.loads(line[len(RESULT) :])
        if result is None:
            raise SystemExit(f"generation failed: {proc.stderr[-2000:]}")
        import xarray as xr

        with xr.open_dataset(args["out"], engine="zarr" if ns.format == "zarr" else None) as ds:
            shape = {k: list(ds[k].shape) for k in ds.data_vars}
            complete = all(bool(ds[k].notnull().all()) for k in ds.data_vars)
        out_bytes = (
            sum(f.stat().st_size for f in Path(args["out"]).rglob("*") if f.is_file())
            if ns.format == "zarr"
            else Path(args["out"]).stat().st_size
        )
        report = {
            "machine": machine_info(),
            "size": size,
            "variables": 4,
            "members": ns.members,
            "format": ns.format,
            "tile": ns.tile,
            "output_shape": shape,
            "all_voxels_written": complete,
            "output_mb_on_disk": out_bytes / 2**20,
            "output_mb_float32": 4 * ns.members * 4 * size**3 / 2**20,
            "peak_rss_mb": result["peak_rss_mb"],
            "rss_after_imports_mb": result["rss_after_imports_mb"],
            "seconds": result["seconds"],
            "limit_mb": ns.limit_mb,
            "within_limit": result["peak_rss_mb"] <= ns.limit_mb,
        }
    finally:
        if not ns.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report, indent=2))
    if ns.out:
        ns.out.parent.mkdir(parents=True, exist_ok=True)
        ns.out.write_text(json.dumps(report, indent=2))
    if not report["within_limit"] or not report["all_voxels_written"]:
        raise SystemExit(1)
    return report


if __name__ == "__main__":
    main()
