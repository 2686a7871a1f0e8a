"""Experiment files: many training runs from one YAML file, with sampled parameters.

An experiment file is a YAML mapping with these keys (all optional)::

    name: lr-study           # experiment name; default: the file name without .yaml
    seed: 0                  # seeds the uniform samplers (default 0)
    combine: product         # how the sampled values of one run combine (see below)
    defaults: ../knmi.yaml   # base config: a file (relative to this file) or a preset name
    config:                  # shared by every run, merged over the defaults
      train:
        steps: 2000
        optimizers:
          generator:
            lr: {sample: list, from: [1e-4, 3e-4]}
    runs:                    # one entry per run, each merged over `config`
      - name: small
        model: {filters_gen: 32}
      - name: big
        model.filters_gen: 128                     # dotted keys work as on the command line
        train.ema.decay: {sample: range, from: [0.99, 0.999, 0.0045]}
        job: {time: "08:00:00"}                    # this run's job settings
    job:                     # settings of the job scripts (see JobConfig)
      time: "04:00:00"
      partition: gpu
      gpus_per_node: 1

This gives six runs: ``small-lr=0.0001``, ``small-lr=0.0003``,
``big-lr=0.0001-decay=0.99``, ``big-lr=0.0001-decay=0.9945``, ``big-lr=0.0003-decay=0.99``
and ``big-lr=0.0003-decay=0.9945``.

Layers, lowest first: ``defaults`` (as ``geogan train`` reads a file, its own
``defaults:`` included), then ``config``, then the run's entry, then the run's
name (each run's name becomes its config's ``name``). Mappings merge key by key;
lists and scalars replace. A key with dots (``model.filters_gen``) is a path, as
in a command-line override; a mapping value merges under that path. ``runs``
missing or empty means one run of ``config`` alone. ``job`` in a run entry is
merged over the top-level ``job`` and is not part of the config.

**Sampled parameters.** Any value (in ``config`` or in a run) may be a sampler, a
mapping with the keys ``sample``, ``from`` and, for the random kinds, ``n``:

``{sample: list, from: [v0, v1, ...]}``
    each listed value in turn (values may be mappings or lists).
``{sample: range, from: [start, stop, step]}``
    ``start, start + step, ...`` up to but excluding ``stop``, as Python's
    ``range`` but for floats too (``start + i * step``, rounded to 12 significant
    digits). All ints give ints. ``step`` may be negative.
``{sample: uniform, from: [low, high], n: N}``
    ``N`` values drawn uniformly from ``[low, high)``.
``{sample: loguniform, from: [low, high], n: N}``
    ``N`` values whose logarithm is uniform (``0 < low < high``), e.g. learning rates.

Random values are reproducible: sampler at dotted path ``p`` draws
``numpy.random.default_rng([seed, k, zlib.crc32(p)]).uniform(low, high, N)``
(of the logarithms for ``loguniform``), where ``k`` is 0 for a sampler in
``config`` (so every run sees the same values) and ``i + 1`` for one in the
entry ``runs[i]``. The same file always gives the same runs.

``combine: product`` (the default) makes one run for every combination of the
sampled values of a run entry (the cross product, samplers in the order they
appear, ``config`` first, the last varying fastest); ``combine: zip`` makes run
``j`` from value ``j`` of every sampler, so all samplers of an entry must give
the same number of values. A sampled run is named after its entry (``name``, or
``<experiment>-<i>`` for an unnamed entry when there are several, or the
experiment name) plus ``-<key>=<value>`` for every sampler (the last part of its
path; ``<key>=<j>`` for list values that are mappings or lists).

:func:`expand_experiment` resolves and validates every run before anything is
written; a bad value fails with a one-line :class:`ConfigError` that names the
experiment and the run.
"""

from __future__ import annotations

import datetime
import itertools
import math
import os
import re
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from geogan.config.loader import _parse_yaml, config_from_dict, parse_override
from geogan.core.errors import ConfigError, GeoganError
from geogan.core.registry import closest

__all__ = [
    "MAX_RUNS",
    "Experiment",
    "JobConfig",
    "Run",
    "Sampler",
    "expand_experiment",
    "read_experiment",
]

MAX_RUNS = 10_000
"""More runs than this from one experiment file is taken to be a mistake."""

TOP_KEYS = ("name", "seed", "combine", "defaults", "config", "runs", "job")
SAMPLER_KINDS = ("list", "range", "uniform", "loguniform")
_NAME_OK = re.compile(r"^[^/\\\x00]+$")
_NAME_CHARS = re.compile(r"[^A-Za-z0-9._=+-]+")
_MAX_NAME = 100


class JobConfig(BaseModel):
    """Settings of a run's job script (the ``job:`` mapping of an experiment file).

    ``template``: ``slurm`` (one node), ``slurm_multinode``, or a template file;
    default ``slurm`` for one node, ``slurm_multinode`` for more. ``time``:
    SLURM time limit (``HH:MM:SS`` or ``D-HH:MM:SS``). ``nproc_per_node``:
    training processes per node (default ``gpus_per_node``, at least 1).
    ``signal_seconds``: SLURM signals the job this long before its time limit;
    the run writes a resume checkpoint and the job requeues itself. ``setup``:
    shell lines run before training (``module load ...``, ``source venv/bin/activate``).
    ``extra``: further sbatch options, one per item (``--qos=high``).
    """

    model_config = ConfigDict(extra="forbid")

    template: str | None = None
    time: str = "24:00:00"
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    nodes: PositiveInt = 1
    gpus_per_node: int = Field(1, ge=0)
    nproc_per_node: PositiveInt | None = None
    cpus_per_task: PositiveInt = 8
    mem: str | None = None
    port: int = Field(29500, ge=1, le=65535)
    signal_seconds: int = Field(120, ge=0)
    setup: list[str] = Field(default_factory=list)
    extra: list[str] = Field(default_factory=list)


@dataclass(frozen=True)
class Sampler:
    """A sampled parameter: ``kind`` in :data:`SAMPLER_KINDS`, its ``values`` in order."""

    path: str
    kind: str
    values: tuple[Any, ...]
    origin: int  # 0: config, i + 1: runs[i]


@dataclass(frozen=True)
class Run:
    """One resolved run of an experiment.

    ``overrides``: the nested mapping applied over the defaults (config, run entry,
    sampled values and name merged); ``dotted``: the same as ``key.path=value``
    strings, so that ``geogan train <defaults> <dotted...>`` gives the same
    ``config``; ``sampled``: dotted path -> the value this run got.
    """

    index: int
    name: str
    entry: int | None
    overrides: dict[str, Any]
    dotted: tuple[str, ...]
    sampled: dict[str, Any]
    job: JobConfig
    config: BaseModel


@dataclass
class Experiment:
    """An experiment file as read (samplers still unexpanded)."""

    path: Path
    label: str
    name: str
    seed: int
    combine: Literal["product", "zip"]
    defaults: str | None
    config: dict[str, Any]
    runs: list[dict[str, Any]]
    run_jobs: list[dict[str, Any]]
    job: dict[str, Any] = field(default_factory=dict)


def _err(message: str) -> ConfigError:
    return ConfigError(" ".join(str(message).split()))


def _short(value: Any, limit: int = 60) -> str:
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------- reading


def _nest(mapping: Any, where: str) -> Any:
    """Dotted keys split into nested mappings; merged with same-level keys. Samplers kept."""
    if not isinstance(mapping, Mapping) or _is_sampler(mapping):
        return mapping
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        if not isinstance(key, (str, int)) or isinstance(key, bool):
            raise _err(f"{where}: key {_short(key)} is not text; quote it in YAML")
        parts = str(key).split(".")
        if not all(p.strip() for p in parts):
            raise _err(f"{where}: bad key {str(key)!r}; use names or dotted paths like train.steps")
        parts = [p.strip() for p in parts]
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict) or _is_sampler(child):
                raise _err(
                    f"{where}: {'.'.join(parts[: i + 1])} is set twice (as a value and through "
                    f"{str(key)!r}); keep one"
                )
            node = child
        sub = _nest(value, f"{where}.{key}")
        last = parts[-1]
        if last in node:
            if isinstance(node[last], dict) and isinstance(sub, dict) and not _is_sampler(sub):
                _merge(node[last], sub)
                continue
            raise _err(f"{where}: {'.'.join(parts)} is set twice; keep one")
        node[last] = sub
    return out


def _is_sampler(value: Any) -> bool:
    return isinstance(value, Mapping) and "sample" in value and "from" in value


def _merge(base: dict, layer: Mapping) -> dict:
    """Deep-merge ``layer`` into ``base`` in place (mappings merge; samplers and the rest replace)."""
    for key, value in layer.items():
        old = base.get(key)
        if (
            isinstance(value, Mapping)
            and not _is_sampler(value)
            and isinstance(old, dict)
            and not _is_sampler(old)
        ):
            _merge(old, value)
        else:
            base[key] = _copy(value)
    return base


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _resolve_defaults(value: Any, folder: Path, label: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, list):
        if len(value) != 1:
            raise _err(
                f"experiment {label}: 'defaults' names {len(value)} configs; give one (a base "
                "file may list several in its own defaults:)"
            )
        value = value[0]
    if not isinstance(value, str) or not value.strip():
        raise _err(
            f"experiment {label}: 'defaults' must be a config file or preset name, got "
            f"{_short(value)}"
        )
    name = value.strip()
    given = Path(name).expanduser()
    base = given if given.is_absolute() else folder / given
    suffixes = ("", ".yaml", ".yml") if base.suffix not in (".yaml", ".yml") else ("",)
    for suffix in suffixes:
        candidate = base.with_name(base.name + suffix)
        if candidate.is_file():
            return str(candidate.resolve())
    return name  # a preset name (or a missing file: the config loader says so)


def read_experiment(path: str | os.PathLike) -> Experiment:
    """Read and check the format of an experiment file (samplers are not expanded)."""
    path = Path(path)
    label = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _err(f"experiment file {label} not found; check the path") from None
    except IsADirectoryError:
        raise _err(f"experiment file {label} is a folder; give a YAML file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise _err(f"cannot read experiment file {label}: {exc}") from None
    data = _parse_yaml(text, label)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise _err(f"experiment {label} must be a mapping with keys such as config: and runs:")
    for key in data:
        if key not in TOP_KEYS:
            hint = closest(str(key), list(TOP_KEYS))
            fix = f"did you mean {hint!r}?" if hint else f"valid keys: {', '.join(TOP_KEYS)}"
            raise _err(
                f"experiment {label}: unknown key {str(key)!r}; {fix} (run settings go under "
                "config: or runs:)"
            )

    name = data.get("name", path.stem if path.suffix in (".yaml", ".yml") else path.name)
    if not isinstance(name, str) or not _NAME_OK.match(name) or name.startswith("."):
        raise _err(f"experiment {label}: name {_short(name)} cannot be a folder name; change it")
    seed = data.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise _err(f"experiment {label}: seed must be a non-negative integer, got {_short(seed)}")
    combine = data.get("combine", "product")
    if combine not in ("product", "zip"):
        raise _err(
            f"experiment {label}: combine must be 'product' (every combination) or 'zip' "
            f"(value i of every sampler in run i), got {_short(combine)}"
        )
    defaults = _resolve_defaults(data.get("defaults"), path.parent, label)

    config = data.get("config") or {}
    if not isinstance(config, dict):
        raise _err(f"experiment {label}: config must be a mapping of config keys")
    config = _nest(config, f"experiment {label}: config")
    if "job" in config:
        raise _err(f"experiment {label}: 'job' belongs at the top level or in a run, not in config")

    entries = data.get("runs")
    if entries is None:
        entries = []
    if not isinstance(entries, list):
        raise _err(f"experiment {label}: runs must be a list of mappings (one per run)")
    runs, run_jobs = [], []
    for i, entry in enumerate(entries):
        if entry is None:
            entry = {}
        if not isinstance(entry, dict):
            raise _err(f"experiment {label}: runs[{i}] must be a mapping, got {_short(entry)}")
        entry = _nest(entry, f"experiment {label}: runs[{i}]")
        job = entry.pop("job", None) or {}
        if not isinstance(job, dict):
            raise _err(f"experiment {label}: runs[{i}].job must be a mapping")
        if "name" in entry:
            run_name = entry["name"]
            if (
                not isinstance(run_name, str)
                or not _NAME_OK.match(run_name)
                or run_name.startswith(".")
                or len(run_name) > _MAX_NAME
            ):
                raise _err(
                    f"experiment {label}: runs[{i}].name {_short(run_name)} cannot be a folder "
                    f"name; use letters, digits, '-', '_' or '.' (at most {_MAX_NAME})"
                )
        runs.append(entry)
        run_jobs.append(job)
    names = [r["name"] for r in runs if "name" in r]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise _err(f"experiment {label}: two runs are named {twice[0]!r}; give each its own name")

    job = data.get("job") or {}
    if not isinstance(job, dict):
        raise _err(f"experiment {label}: job must be a mapping (time:, partition:, ...)")
    return Experiment(
        path=path,
        label=label,
        name=name,
        seed=seed,
        combine=combine,
        defaults=defaults,
        config=config,
        runs=runs,
        run_jobs=run_jobs,
        job=job,
    )


# --------------------------------------------------------------------------- samplers


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _round(value: float) -> float:
    return float(f"{value:.12g}")


def _sampler_values(spec: Mapping, path: str, seed: int, origin: int, where: str) -> tuple:
    extra = [k for k in spec if k not in ("sample", "from", "n")]
    if extra:
        raise _err(f"{where}: sampler has unknown key {str(extra[0])!r}; use sample, from and n")
    kind = spec["sample"]
    source = spec["from"]
    if kind not in SAMPLER_KINDS:
        hint = closest(str(kind), list(SAMPLER_KINDS))
        fix = f"did you mean {hint!r}?" if hint else f"use one of {', '.join(SAMPLER_KINDS)}"
        raise _err(f"{where}: unknown sampler {_short(kind)}; {fix}")
    n = spec.get("n")
    if kind in ("uniform", "loguniform"):
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise _err(f"{where}: {kind} sampler needs n: <how many values> (a positive integer)")
    elif n is not None:
        raise _err(f"{where}: n is only for uniform and loguniform samplers; remove it")

    if kind == "list":
        if not isinstance(source, list) or not source:
            raise _err(f"{where}: list sampler needs from: [value, ...] with at least one value")
        return tuple(_copy(v) for v in source)
    if kind == "range":
        if not (isinstance(source, list) and len(source) == 3 and all(map(_number, source))):
            raise _err(f"{where}: range sampler needs from: [start, stop, step] (numbers)")
        start, stop, step = source
        if step == 0 or not all(math.isfinite(v) for v in source):
            raise _err(f"{where}: range step must be a finite non-zero number")
        count = math.ceil((stop - start) / step - 1e-9)
        if count < 1:
            raise _err(
                f"{where}: range from {start} to {stop} by {step} gives no values "
                "(stop is excluded; check the sign of step)"
            )
        if count > MAX_RUNS:
            raise _err(f"{where}: range gives {count} values; at most {MAX_RUNS}")
        if all(isinstance(v, int) for v in source):
            return tuple(range(start, stop, step))
        return tuple(_round(start + i * step) for i in range(count))
    # uniform / loguniform
    if not (isinstance(source, list) and len(source) == 2 and all(map(_number, source))):
        raise _err(f"{where}: {kind} sampler needs from: [low, high] (numbers)")
    low, high = (float(v) for v in source)
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise _err(f"{where}: {kind} needs finite low < high, got [{low}, {high}]")
    if kind == "loguniform" and low <= 0:
        raise _err(f"{where}: loguniform needs 0 < low, got {low}")
    rng = np.random.default_rng([seed, origin, zlib.crc32(path.encode("utf-8"))])
    if kind == "uniform":
        return tuple(float(v) for v in rng.uniform(low, high, n))
    return tuple(float(v) for v in np.exp(rng.uniform(math.log(low), math.log(high), n)))


def _find_samplers(
    tree: Any, seed: int, origin: int, where: str, prefix: tuple[str, ...] = ()
) -> list[Sampler]:
    found: list[Sampler] = []
    if _is_sampler(tree):
        path = ".".join(prefix)
        values = _sampler_values(tree, path, seed, origin, f"{where}.{path}")
        return [Sampler(path, tree["sample"], values, origin)]
    if isinstance(tree, Mapping):
        for key, value in tree.items():
            found += _find_samplers(value, seed, origin, where, (*prefix, str(key)))
    elif isinstance(tree, list):
        for value in tree:
            if _contains_sampler(value):
                raise _err(
                    f"{where}.{'.'.join(prefix)}: samplers cannot sit inside a list; sample the "
                    "whole list with {sample: list, from: [[...], [...]]}"
                )
    return found


def _contains_sampler(value: Any) -> bool:
    if _is_sampler(value):
        return True
    if isinstance(value, Mapping):
        return any(_contains_sampler(v) for v in value.values())
    if isinstance(value, list):
        return any(_contains_sampler(v) for v in value)
    return False


def _set_path(tree: dict, path: str, value: Any) -> None:
    parts = path.split(".")
    node = tree
    for part in parts[:-1]:
        node = node[part]
    node[parts[-1]] = _copy(value)


def _format_value(value: Any, j: int) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (Mapping, list)):
        return str(j)
    return str(value)


def _suffix(samplers: list[Sampler], choice: tuple[int, ...]) -> str:
    parts = []
    for s, j in zip(samplers, choice):
        parts.append(f"{s.path.split('.')[-1]}={_format_value(s.values[j], j)}")
    return _NAME_CHARS.sub("_", "-".join(parts))


# --------------------------------------------------------------------------- dotted overrides


def _yaml_scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        return repr(value)
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        escaped = escaped.replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
        return f'"{escaped}"'
    if isinstance(value, list):
        return "[" + ", ".join(_yaml_scalar(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return (
            "{"
            + ", ".join(f"{_yaml_scalar(str(k))}: {_yaml_scalar(v)}" for k, v in value.items())
            + "}"
        )
    raise _err(f"value {_short(value)} cannot be written as an override")


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def to_dotted(tree: Mapping[str, Any], prefix: str = "") -> list[str]:
    """``{"train": {"steps": 5}}`` -> ``["train.steps=5"]`` (leaves only; empty mappings,
    which merge nothing, are left out). Each string reads back to the same value with
    :func:`~geogan.config.loader.parse_override`."""
    out: list[str] = []
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out += to_dotted(value, path + ".")
            continue
        text = f"{path}={_yaml_scalar(value)}"
        parts, back = parse_override(text)
        if ".".join(parts) != path or not _same(back, value):
            raise _err(
                f"{path}: value {_short(value)} does not survive as an override; simplify it"
            )
        out.append(text)
    return out


# --------------------------------------------------------------------------- expansion


def expand_experiment(
    path: str | os.PathLike,
    *,
    resolver: Callable[[str | None, list[str]], BaseModel],
) -> list[Run]:
    """Every run of an experiment file, resolved and validated (see the module docs).

    ``resolver(defaults, dotted_overrides)`` builds a run's config: the config layer knows no
    recipe schemas, so callers pass :func:`geogan.recipes.config.load_run_config` (as
    :func:`geogan.recipes.config.expand_sweep` does). Raises :class:`ConfigError` (one line,
    naming the experiment and the run) for the first problem found; nothing is written.
    """
    exp = read_experiment(path)
    resolve = resolver
    where = f"experiment {exp.label}"
    config_samplers = _find_samplers(exp.config, exp.seed, 0, f"{where}: config")
    entries = exp.runs or [{}]
    jobs = exp.run_jobs or [{}]

    plans: list[tuple[int | None, str, dict, list[Sampler], tuple[int, ...], dict]] = []
    for i, entry in enumerate(entries):
        entry_index = i if exp.runs else None
        entry = _copy(entry)
        base_name = entry.pop("name", None)
        if base_name is None:
            base_name = exp.name if len(entries) == 1 else f"{exp.name}-{i}"
        label = f"runs[{i}]" if exp.runs else "config"
        run_samplers = _find_samplers(entry, exp.seed, i + 1, f"{where}: {label}")
        tree = _merge(_copy(exp.config), entry)
        # config samplers the entry replaced (at their path or above) no longer apply
        samplers = [s for s in config_samplers if not _shadowed(s, entry)] + run_samplers
        if exp.combine == "zip" and samplers:
            counts = {len(s.values) for s in samplers}
            if len(counts) > 1:
                detail = ", ".join(f"{s.path}: {len(s.values)}" for s in samplers)
                raise _err(
                    f"{where}: run {base_name!r} has samplers of different lengths ({detail}); "
                    "with combine: zip all must give the same number of values"
                )
            choices = [(j,) * len(samplers) for j in range(counts.pop())]
        else:
            if math.prod(len(s.values) for s in samplers) + len(plans) > MAX_RUNS:
                raise _err(f"{where} expands to more than {MAX_RUNS} runs; sample fewer values")
            choices = list(itertools.product(*(range(len(s.values)) for s in samplers)))
        job = _merge(_copy(exp.job), jobs[i] if exp.runs else {})
        for choice in choices:
            plans.append((entry_index, base_name, tree, samplers, choice, job))
            if len(plans) > MAX_RUNS:
                raise _err(f"{where} expands to more than {MAX_RUNS} runs; sample fewer values")

    names = []
    for _, base_name, _, samplers, choice, _ in plans:
        suffix = _suffix(samplers, choice)
        name = f"{base_name}-{suffix}" if suffix else base_name
        names.append(name[:_MAX_NAME])
    seen: dict[str, int] = {}
    for k, name in enumerate(names):  # the same formatted value twice: number them
        if names.count(name) > 1:
            seen[name] = seen.get(name, -1) + 1
            names[k] = f"{name}-{seen[name]}"

    runs: list[Run] = []
    for k, ((entry_index, _, tree, samplers, choice, job), name) in enumerate(zip(plans, names)):
        where_run = f"{where}, run {name!r}"
        concrete = _copy(tree)
        sampled = {}
        for s, j in zip(samplers, choice):
            _set_path(concrete, s.path, s.values[j])
            sampled[s.path] = s.values[j]
        concrete["name"] = name
        try:
            dotted = to_dotted(concrete)
            cfg = resolve(exp.defaults, dotted)
            job_cfg = config_from_dict(job, JobConfig, source=f"{exp.label} job")
        except GeoganError as exc:
            raise _err(f"{where_run}: {exc}") from None
        runs.append(
            Run(
                index=k,
                name=name,
                entry=entry_index,
                overrides=concrete,
                dotted=tuple(dotted),
                sampled=sampled,
                job=job_cfg,
                config=cfg,
            )
        )
    return runs


def _shadowed(sampler: Sampler, entry: Mapping) -> bool:
    """Whether the run entry sets the sampler's path or a non-mapping above it."""
    node: Any = entry
    for part in sampler.path.split("."):
        if not isinstance(node, Mapping) or _is_sampler(node):
            return True
        if part not in node:
            return False
        node = node[part]
    return True
