"""Entry point of one benchmark task in a fresh process: ``python worker.py TASK '{json args}'``.

Prints one ``@@BENCH_RESULT@@ {json}`` line (see :func:`common.run_isolated`), with the
process's peak RSS added. Tasks: ``train``, ``roofline``, ``generation``, ``loader``,
``prepare``, ``write_netcdf``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import emit  # noqa: E402


def main(argv: list[str]) -> None:
    task, args = argv[0], json.loads(argv[1]) if len(argv) > 1 else {}
    if task == "train":
        import train_step

        result = train_step.run(**args)
    elif task == "roofline":
        import roofline

        result = roofline.run(**args)
    elif task == "generation":
        import generation

        result = generation.run(**args)
    elif task in ("loader", "prepare", "write_netcdf"):
        import data_pipeline

        result = getattr(data_pipeline, f"task_{task}")(**args)
    else:
        raise SystemExit(f"unknown benchmark task {task!r}")
    emit(result)


if __name__ == "__main__":
    main(sys.argv[1:])
