"""``geogan sweep EXP.yaml --out DIR``: run folders and job scripts for every run of an experiment.

The experiment file format is described in :mod:`geogan.config.sweep`. For an
experiment of ``N`` runs this writes::

    DIR/
      experiment.yaml          the experiment file as given
      sweep.json               summary: every run's name, folder, overrides, sampled values, status
      submit.sh                one `sbatch` line per run
      00000-<run name>/
        config.yaml            the run's resolved config
        job.sbatch             its job script (from the template)
      00001-<run name>/ ...

Every run is resolved and validated first; the whole folder is then written
under a temporary name and renamed, so an error leaves nothing behind.
``--dry-run`` does all of that except writing. ``--local`` then trains the runs
one after another in this process (each one as ``geogan train
DIR/NNNNN-name/config.yaml --run-dir DIR/NNNNN-name`` would) and records each
run's status in ``sweep.json`` (``completed``, ``failed``, ``preempted``).

Job scripts come from ``string.Template`` files (``$name`` placeholders, ``$$``
for a literal ``$``). Shipped: ``slurm`` (one node: ``geogan train ... --resume
auto``, requeued when stopped with exit code 75) and ``slurm_multinode``
(``srun torchrun --nnodes ...``); ``--template PATH`` (or ``job.template``) names
your own. Placeholders: ``job_name``, ``run_name``, ``experiment``, ``index``,
``run_dir``, ``config`` and ``workdir`` (shell-quoted paths), ``time``,
``nodes``, ``gpus_per_node``, ``nproc_per_node``, ``cpus_per_task``,
``omp_threads``, ``port``, ``signal_seconds``, ``launcher`` (``geogan`` or
``torchrun --standalone --nproc-per-node N -m geogan.cli.main``),
``sbatch_options`` (the ``#SBATCH`` lines for partition, account, qos, mem,
GPUs and ``job.extra``) and ``setup`` (the ``job.setup`` lines).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import string
import sys
import time
import traceback
from importlib import resources
from pathlib import Path
from typing import Any

from geogan.config import save_resolved_config
from geogan.config.sweep import JobConfig, Run, read_experiment
from geogan.core.atomic import atomic_path, atomic_write_text
from geogan.core.errors import ConfigError, GeoganError, OutputExistsError

__all__ = ["SHIPPED_TEMPLATES", "RunsFailedError", "render_job_script", "sweep_command"]

SHIPPED_TEMPLATES = ("slurm", "slurm_multinode")
SUMMARY_FILE = "sweep.json"
_JOB_NAME_CHARS = re.compile(r"[^A-Za-z0-9._=+-]+")


class RunsFailedError(GeoganError):
    """Some runs of a ``--local`` sweep failed; ``sweep.json`` says which and why."""

    exit_code = 1


def _template_text(spec: str | None, job: JobConfig, base: Path) -> tuple[str, str, str]:
    """``(name, text, job script file name)`` of the template to use for a run."""
    choice = spec or job.template or ("slurm" if job.nodes == 1 else "slurm_multinode")
    given = Path(choice).expanduser()
    path = given if given.is_absolute() else base / given
    if path.is_file():
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read job template {path}: {exc}") from None
        return str(path), text, "job" + (path.suffix or ".sh")
    if choice not in SHIPPED_TEMPLATES:
        raise ConfigError(
            f"job template {choice!r} is neither a file nor a shipped template; "
            f"use one of {', '.join(SHIPPED_TEMPLATES)} or a template file path"
        )
    if choice == "slurm" and job.nodes > 1:
        raise ConfigError(
            f"job.nodes is {job.nodes} but template 'slurm' runs on one node; "
            "use template slurm_multinode (the default for nodes > 1)"
        )
    text = (resources.files("geogan") / "templates" / f"{choice}.sbatch").read_text("utf-8")
    return choice, text, "job.sbatch"


def _template_values(run: Run, run_dir: Path, experiment: Path) -> dict[str, Any]:
    job = run.job
    nproc = job.nproc_per_node or max(1, job.gpus_per_node)
    one_line = [job.time, job.partition, job.account, job.qos, job.mem, *job.extra]
    for value in one_line:
        if value and ("\n" in value or "\r" in value):
            raise ConfigError(f"job setting {value!r} contains a line break; give one line")
    options = [
        f"#SBATCH --{key}={getattr(job, key)}"
        for key in ("partition", "account", "qos", "mem")
        if getattr(job, key)
    ]
    if job.gpus_per_node > 0:
        options.append(f"#SBATCH --gpus-per-node={job.gpus_per_node}")
    options += [f"#SBATCH {opt.strip()}" for opt in job.extra]
    launcher = (
        "geogan"
        if nproc == 1
        else f"torchrun --standalone --nproc-per-node {nproc} -m geogan.cli.main"
    )
    return {
        "job_name": _JOB_NAME_CHARS.sub("_", run.name)[:64],
        "run_name": run.name,
        "experiment": str(experiment),
        "index": run.index,
        "run_dir": shlex.quote(str(run_dir)),
        "config": shlex.quote(str(run_dir / "config.yaml")),
        "workdir": shlex.quote(os.getcwd()),
        "time": job.time,
        "nodes": job.nodes,
        "gpus_per_node": job.gpus_per_node,
        "nproc_per_node": nproc,
        "cpus_per_task": job.cpus_per_task,
        "omp_threads": max(1, job.cpus_per_task // nproc),
        "port": job.port,
        "signal_seconds": job.signal_seconds,
        "launcher": launcher,
        "sbatch_options": "\n".join(options),
        "setup": "\n".join(job.setup),
    }


def render_job_script(template: str, values: dict[str, Any], name: str = "template") -> str:
    """Fill a ``string.Template`` text; an unknown ``$placeholder`` is a one-line ConfigError."""
    try:
        return string.Template(template).substitute(values)
    except KeyError as exc:
        raise ConfigError(
            f"job template {name} uses ${exc.args[0]}, which is not a placeholder; known: "
            f"{', '.join(sorted(values))}; write $$ for a literal $"
        ) from None
    except ValueError as exc:  # "Invalid placeholder in string: line 3, col 5"
        raise ConfigError(
            f"job template {name}: {exc}; write $$ for a literal $ (e.g. $${{SLURM_JOB_ID}})"
        ) from None


def _plan(runs: list[Run], out: Path, experiment: Path, template: str | None) -> list[dict]:
    plans = []
    for run in runs:
        run_dir = out / f"{run.index:05d}-{run.name}"
        try:
            base = Path.cwd() if template else experiment.parent
            tname, text, script = _template_text(template, run.job, base)
            rendered = render_job_script(text, _template_values(run, run_dir, experiment), tname)
        except ConfigError as exc:
            raise ConfigError(f"experiment {experiment}, run {run.name!r}: {exc}") from None
        plans.append(
            {
                "run": run,
                "run_dir": run_dir,
                "template": tname,
                "script_name": script,
                "script": rendered,
                "record": {
                    "index": run.index,
                    "name": run.name,
                    "run_dir": str(run_dir),
                    "config": str(run_dir / "config.yaml"),
                    "job_script": str(run_dir / script),
                    "template": tname,
                    "overrides": list(run.dotted),
                    "sampled": run.sampled,
                    "status": "written",
                },
            }
        )
    return plans


def _write_summary(out: Path, summary: dict) -> None:
    atomic_write_text(out / SUMMARY_FILE, json.dumps(summary, indent=2, default=str) + "\n")


def sweep_command(
    experiment: Path,
    out: Path,
    local: bool = False,
    template: str | None = None,
    dry_run: bool = False,
    overwrite: bool = False,
    quiet: bool = False,
) -> dict:
    """Expand ``experiment`` into run folders and job scripts under ``out``; return the summary.

    ``local``: train the runs here, one after another. ``template``: a shipped template
    name or a template file (overrides ``job.template``). ``dry_run``: resolve, validate
    and render everything but write nothing. ``overwrite``: replace an existing ``out``.
    ``quiet``: no progress bars. Raises :class:`ConfigError` before writing anything for
    any bad run, :class:`OutputExistsError` for an existing ``out``, and
    :class:`RunsFailedError` (exit code 1) after a ``--local`` sweep in which runs failed.
    """
    experiment = Path(experiment)
    out = Path(out).absolute()
    exp = read_experiment(experiment)
    from geogan.recipes.config import expand_sweep

    runs = expand_sweep(experiment)
    if out.exists():
        if not out.is_dir():
            raise OutputExistsError(f"output {out} is a file; give a folder for the sweep")
        if any(out.iterdir()) and not overwrite:
            raise OutputExistsError(f"output {out} exists; pass --overwrite to replace it")
    plans = _plan(runs, out, experiment.absolute(), template)
    summary: dict[str, Any] = {
        "experiment": str(experiment.absolute()),
        "name": exp.name,
        "seed": exp.seed,
        "combine": exp.combine,
        "defaults": exp.defaults,
        "out": str(out),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": [str(a) for a in sys.argv],
        "dry_run": dry_run,
        "local": local,
        "runs": [p["record"] for p in plans],
    }
    if dry_run:
        for record in summary["runs"]:
            record["status"] = "dry_run"
        return summary

    source_text = experiment.read_bytes()
    with atomic_path(out, is_dir=True) as tmp:
        tmp.mkdir()
        (tmp / "experiment.yaml").write_bytes(source_text)
        for p in plans:
            folder = tmp / p["run_dir"].name
            folder.mkdir()
            save_resolved_config(p["run"].config, folder)
            script = folder / p["script_name"]
            script.write_text(p["script"], encoding="utf-8")
            script.chmod(0o755)
        lines = ["#!/bin/sh", f"# Submit every run of sweep {exp.name}: sh {out / 'submit.sh'}"]
        lines += [f"sbatch {shlex.quote(r['job_script'])}" for r in summary["runs"]]
        (tmp / "submit.sh").write_text("\n".join(lines) + "\n", encoding="utf-8")
        (tmp / SUMMARY_FILE).write_text(
            json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8"
        )
    if local:
        _run_locally(plans, summary, out, quiet)
    return summary


def _run_locally(plans: list[dict], summary: dict, out: Path, quiet: bool) -> None:
    from geogan.recipes.run import train_from_config
    from geogan.training.trainer import Preempted

    failed = []
    for p in plans:
        record, run_dir = p["record"], p["run_dir"]
        record["status"] = "running"
        record["started"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        _write_summary(out, summary)
        command = ["geogan", "train", record["config"], "--run-dir", str(run_dir)]
        t0 = time.perf_counter()
        try:
            result = train_from_config(
                p["run"].config, run_dir=run_dir, progress=not quiet, command=command
            )
        except Preempted as exc:
            record.update(status="preempted", error=str(exc))
            raise
        except KeyboardInterrupt:
            record.update(status="interrupted")
            raise
        except GeoganError as exc:
            record.update(status="failed", error=str(exc))
            failed.append(record)
        except Exception as exc:  # a bug: keep its traceback beside the run, go on
            message = " ".join(f"{type(exc).__name__}: {exc}".split())
            record.update(status="failed", error=message)
            atomic_write_text(run_dir / "sweep_error.txt", traceback.format_exc())
            failed.append(record)
        else:
            record.update(status="completed", train_summary=result)
        finally:
            record["seconds"] = round(time.perf_counter() - t0, 3)
            _write_summary(out, summary)
    summary["failed"] = len(failed)
    _write_summary(out, summary)
    if failed:
        first = failed[0]
        raise RunsFailedError(
            f"{len(failed)} of {len(plans)} runs failed (first: {first['name']}: "
            f"{first['error']}); see {out / SUMMARY_FILE}"
        )
