"""Typed YAML configuration loading: ``defaults:`` inheritance, dotted overrides, validation.

A config file is a YAML mapping validated against a pydantic schema
(:class:`~geogan.config.schema.RunConfig` unless told otherwise)::

    defaults: [downscaling/base, ../common.yaml]   # merged in order, then this file on top
    train:
      steps: 2000

``defaults`` entries are paths relative to the file that names them (``.yaml``
may be left out) or names of presets packaged in ``geogan/configs/``
(``downscaling/base`` -> ``geogan/configs/downscaling/base.yaml``). Presets may
name defaults of their own; cycles are errors. Mappings merge key by key;
lists and scalars are replaced, never concatenated.

Overrides ``a.b.c=value`` are applied last; the value is read as YAML, so
``train.steps=2000`` is an int, ``model.upsampling_factors=[2,2]`` a list,
``x=null`` None and ``x=`` the empty string. Missing intermediate mappings are
created; ``evaluate.thresholds.0=0.5`` sets one list item.

Every problem is a :class:`~geogan.core.errors.ConfigError` with a one-line
message naming the key, what is wrong, how to fix it and the file or override
that set it, e.g. ``unknown key 'train.stpes' in cfg.yaml; did you mean
'train.steps'?``.

YAML is read with PyYAML's safe loader plus one change: ``1e-4`` (no dot) is a
float, as in YAML 1.2, not the string PyYAML 1.1 would make of it.
"""

from __future__ import annotations

import collections.abc
import datetime
import os
import re
import types
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from geogan.config.schema import RunConfig
from geogan.core.atomic import atomic_write_text
from geogan.core.errors import ConfigError
from geogan.core.registry import closest

__all__ = [
    "CONFIG_FILENAME",
    "EXTENSION_PREFIX",
    "PresetDirs",
    "config_from_dict",
    "config_to_yaml",
    "drop_extension_keys",
    "list_presets",
    "load_config",
    "load_tree",
    "packaged_presets_dir",
    "parse_override",
    "save_resolved_config",
    "tree_from_dict",
    "validate_tree",
]

SchemaT = TypeVar("SchemaT", bound=BaseModel)

CONFIG_FILENAME = "config.yaml"
"""Name of the resolved config written into every run directory."""

DEFAULTS_KEY = "defaults"
_SUFFIXES = (".yaml", ".yml")

Loc = tuple[Any, ...]
Provenance = dict[Loc, str]


# --------------------------------------------------------------------------- YAML dialect

_FLOAT_RE = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


class _Loader(yaml.SafeLoader):
    """Safe loader that also reads ``1e-4`` as a float."""


class _Dumper(yaml.SafeDumper):
    """Safe dumper that quotes strings :class:`_Loader` would read as floats (``'1e5'``)."""


for _cls in (_Loader, _Dumper):
    _cls.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_RE, list("-+0123456789."))


def _represent_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    """Lists of scalars on one line (``[2, 2]``), anything else in block style."""
    flat = all(not isinstance(v, (list, dict)) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flat)


_Dumper.add_representer(list, _represent_list)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _error(message: str) -> ConfigError:
    return ConfigError(_one_line(message))


def _short(value: Any, limit: int = 60) -> str:
    """``repr`` of a value cut to ``limit`` characters, for error messages (YAML spelling
    of null, true and false)."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    try:
        text = repr(value)
    except Exception:  # pragma: no cover - repr of YAML/JSON data does not fail
        text = f"<{type(value).__name__}>"
    text = _one_line(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, Mapping):
        return "mapping"
    return type(value).__name__


def _parse_yaml(text: str, label: str) -> Any:
    try:
        # _fresh: aliases (&a ... *a) become independent copies; recursive ones fail here.
        return _fresh(yaml.load(text, Loader=_Loader))  # noqa: S506 - _Loader is a SafeLoader
    except ConfigError as exc:  # from _fresh
        raise _error(f"{label}: {exc}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise _error(
            f"YAML syntax error in {label}{where}: {problem}; fix the YAML there "
            "(check indentation, colons and quotes)"
        ) from None
    except yaml.YAMLError as exc:
        raise _error(f"cannot read YAML from {label}: {exc}") from None
    except RecursionError:
        raise _error(
            f"YAML in {label} is nested too deeply or has a recursive alias; simplify it"
        ) from None
    except (ValueError, TypeError, OverflowError) as exc:  # e.g. a date such as 2001-13-45
        raise _error(f"cannot read a value in {label}: {exc}; quote it if it is text") from None


# --------------------------------------------------------------------------- presets


def packaged_presets_dir() -> Path | None:
    """The ``geogan/configs`` folder of packaged presets, or None if there is none."""
    try:
        folder = resources.files("geogan") / "configs"
    except (ModuleNotFoundError, TypeError):  # pragma: no cover - geogan is importable here
        return None
    path = Path(str(folder))
    return path if path.is_dir() else None


PresetDirs = Union[str, os.PathLike, Mapping[str, Union[str, os.PathLike]], None]
"""Where presets live: one folder (``name`` -> ``folder/name.yaml``), or a mapping of
namespaces to folders (``"downscaling": .../recipes/downscaling/presets`` makes
``downscaling/radar_knmi_x8`` -> ``.../presets/radar_knmi_x8.yaml``), as recipes register."""


class _PresetRoots:
    """Lookup of preset names in one folder or in namespaced folders."""

    def __init__(self, preset_dir: PresetDirs) -> None:
        self.folders: dict[str, Path] = {}
        if isinstance(preset_dir, Mapping):
            self.folders = {
                str(k): Path(v) for k, v in preset_dir.items() if v is not None and Path(v).is_dir()
            }
        else:
            root = packaged_presets_dir() if preset_dir is None else Path(preset_dir)
            if root is not None and root.is_dir():
                self.folders = {"": root}

    def __bool__(self) -> bool:
        return bool(self.folders)

    def find(self, name: Path) -> Path | None:
        """The file of preset ``name`` (``ns/preset`` or, for one folder, ``a/b``), or None."""
        if name.is_absolute():
            return None
        if "" in self.folders:
            return _existing(_candidates(self.folders[""] / name))
        parts = name.parts
        if len(parts) >= 2 and parts[0] in self.folders:
            return _existing(_candidates(self.folders[parts[0]].joinpath(*parts[1:])))
        return None

    def names(self) -> list[str]:
        out: set[str] = set()
        for ns, root in self.folders.items():
            for suffix in _SUFFIXES:
                for p in root.rglob(f"*{suffix}"):
                    if p.is_file():
                        rel = p.relative_to(root).with_suffix("").as_posix()
                        out.add(f"{ns}/{rel}" if ns else rel)
        return sorted(out)


def list_presets(preset_dir: PresetDirs = None) -> list[str]:
    """Names of the available presets (``downscaling/radar_knmi_x8``, ...), sorted.

    ``preset_dir`` defaults to the packaged ``geogan/configs`` folder; an absent
    folder has no presets. A mapping gives namespaced folders (see :data:`PresetDirs`).
    """
    return _PresetRoots(preset_dir).names()


def _candidates(base: Path) -> list[Path]:
    if base.suffix in _SUFFIXES:
        return [base]
    return [base.with_name(base.name + s) for s in _SUFFIXES] + [base]


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # name too long, NUL byte, ...
        return False


def _existing(paths: Iterable[Path]) -> Path | None:
    for p in paths:
        if _is_file(p):
            return p
    return None


def _display(path: Path) -> str:
    """A path for messages: relative to the working folder when below it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:  # different drive on Windows
        return str(path)
    return str(path) if rel.startswith("..") else rel


# --------------------------------------------------------------------------- merging


_MAX_NODES = 1_000_000


def _fresh(value: Any, _budget: list[int] | None = None) -> Any:
    """A copy of YAML data with new containers (YAML aliases share objects).

    Raises ConfigError past ``_MAX_NODES`` nodes (aliases expanding exponentially).
    """
    budget = [_MAX_NODES] if _budget is None else _budget
    budget[0] -= 1
    if budget[0] < 0:
        raise _error(f"configuration has more than {_MAX_NODES} values (alias bomb?); simplify it")
    if isinstance(value, Mapping):
        return {k: _fresh(v, budget) for k, v in value.items()}
    if isinstance(value, list):
        return [_fresh(v, budget) for v in value]
    return value


def _mark(prov: Provenance, path: Loc, value: Any, label: str) -> None:
    prov[path] = label
    if isinstance(value, dict):
        for k, v in value.items():
            _mark(prov, (*path, k), v, label)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _mark(prov, (*path, i), v, label)


def _record(prov: Provenance, path: Loc, value: Any, label: str) -> None:
    """Note that ``label`` set ``path`` (and everything under it) to ``value``."""
    n = len(path)
    for key in [k for k in prov if len(k) > n and k[:n] == path]:
        del prov[key]
    _mark(prov, path, value, label)


def _merge_into(base: dict, layer: Mapping, prov: Provenance, label: str, path: Loc = ()) -> None:
    """Deep-merge ``layer`` into ``base`` in place: mappings merge, anything else replaces."""
    for key, value in layer.items():
        here = (*path, key)
        old = base.get(key)
        if isinstance(value, Mapping) and isinstance(old, dict):
            prov[here] = label
            _merge_into(old, value, prov, label, here)
        else:
            base[key] = _fresh(value)
            _record(prov, here, base[key], label)


# --------------------------------------------------------------------------- file loading


class _Resolver:
    """Reads a config file and its ``defaults:`` into an ordered list of layers."""

    def __init__(self, preset_dir: PresetDirs) -> None:
        self.presets = _PresetRoots(preset_dir)
        self.stack: list[tuple[Path, str]] = []

    def _read(self, path: Path, label: str) -> dict:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise _error(f"config file {label} not found; check the path") from None
        except IsADirectoryError:
            raise _error(f"config file {label} is a folder; give a YAML file") from None
        except UnicodeDecodeError:
            raise _error(f"config file {label} is not UTF-8 text; save it as UTF-8 YAML") from None
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or exc
            raise _error(f"cannot read config file {label}: {reason}; check the path") from None
        data = _parse_yaml(text, label)
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise _error(
                f"{label} must hold a mapping of keys (such as 'train:' or 'data:') at the top "
                f"level, not a {_type_name(data)}"
            )
        return data

    def _find_default(self, entry: Any, parent: Path, parent_label: str) -> tuple[Path, str]:
        if not isinstance(entry, str) or not entry.strip():
            raise _error(
                f"defaults entry {_short(entry)} in {parent_label} is not a file or preset name; "
                "write defaults as a list of names, e.g. defaults: [../base.yaml]"
            )
        name = entry.strip()
        given = Path(name).expanduser()
        base = given if given.is_absolute() else parent.parent / given
        found = _existing(_candidates(base))
        if found is not None:
            return found, _display(found)
        presets = []
        if self.presets and not given.is_absolute():
            found = self.presets.find(given)
            if found is not None:
                return found, f"preset {Path(name).with_suffix('').as_posix()!r}"
            presets = self.presets.names()
        hint = closest(name, presets) if presets else None
        if hint:
            fix = f"did you mean preset {hint!r}?"
        elif presets:
            fix = (
                f"available presets: {', '.join(presets[:20])}{' ...' if len(presets) > 20 else ''}"
            )
        else:
            fix = f"paths are relative to the folder of {parent_label}"
        raise _error(
            f"defaults entry {name!r} in {parent_label} not found: no file {_display(base)} "
            f"and no packaged preset of that name; {fix}"
        )

    def layers(self, path: Path, label: str) -> list[tuple[str, dict]]:
        """The layers of ``path`` in merge order: its defaults (recursively), then itself."""
        try:
            real = path.resolve()
        except (OSError, ValueError):
            real = path.absolute()
        seen = [p for p, _ in self.stack]
        if real in seen:
            chain = [lbl for _, lbl in self.stack[seen.index(real) :]] + [label]
            raise _error(
                f"defaults cycle: {' -> '.join(chain)}; remove one of these defaults entries"
            )
        self.stack.append((real, label))
        try:
            data = self._read(path, label)
            defaults = data.pop(DEFAULTS_KEY, None)
            if defaults is None:
                defaults = []
            elif isinstance(defaults, str):
                defaults = [defaults]
            elif not isinstance(defaults, list):
                raise _error(
                    f"'defaults' in {label} must be a list of files or presets, got "
                    f"{_short(defaults)}; e.g. defaults: [../base.yaml]"
                )
            out: list[tuple[str, dict]] = []
            for entry in defaults:
                child, child_label = self._find_default(entry, path, label)
                out.extend(self.layers(child, child_label))
            out.append((label, data))
            return out
        finally:
            self.stack.pop()


def _resolve_top(path: str | os.PathLike, presets: _PresetRoots) -> tuple[Path, str]:
    """The file named on the command line: a path, or else a preset name."""
    given = Path(path).expanduser()
    label = str(path)
    if _is_file(given) or not presets or given.is_absolute():
        return given, label
    found = presets.find(given)
    if found is not None:
        return found, f"preset {given.with_suffix('').as_posix()!r}"
    if not given.suffix and not given.exists():
        names = presets.names()
        hint = closest(str(path), names)
        if hint or "/" in str(path):
            more = f"did you mean {hint!r}?" if hint else f"presets: {', '.join(names[:20])}"
            raise _error(f"no config file {label} and no preset of that name; {more}")
    return given, label


# --------------------------------------------------------------------------- overrides


def parse_override(text: str) -> tuple[tuple[str, ...], Any]:
    """Split ``a.b.c=value`` into ``(("a", "b", "c"), value)``, the value read as YAML."""
    if not isinstance(text, str):
        raise _error(f"override {_short(text)} is not text; write overrides as key.path=value")
    if "=" not in text:
        raise _error(
            f"override {text!r} has no '='; write it as key.path=value, e.g. train.steps=2000"
        )
    key, _, raw = text.partition("=")
    key = key.strip()
    parts = tuple(p.strip() for p in key.split("."))
    if not key or not all(parts):
        raise _error(
            f"override {text!r} has a bad key {key!r}; use dotted keys such as train.steps=2000"
        )
    if parts[0] == DEFAULTS_KEY:
        raise _error(
            f"override {text!r}: 'defaults' cannot be overridden; list defaults in the config file"
        )
    if not raw.strip():
        return parts, ""
    try:
        value = _fresh(yaml.load(raw, Loader=_Loader))  # noqa: S506 - _Loader is a SafeLoader
    except (yaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        problem = getattr(exc, "problem", None) or str(exc) or "invalid YAML"
        raise _error(
            f"override {text!r}: cannot read value {raw!r} as YAML ({problem}); "
            "quote it if it is text, e.g. name='a: b'"
        ) from None
    return parts, value


def _apply_override(tree: dict, text: str, prov: Provenance) -> None:
    parts, value = parse_override(text)
    label = f"override {text!r}"
    node: Any = tree
    loc: list[Any] = []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not (part.isdigit() and int(part) < len(node)):
                raise _error(
                    f"{label}: {'.'.join(parts[:i])} is a list of {len(node)} items, "
                    f"so {part!r} is not a valid index; use 0 to {len(node) - 1} or set the whole list"
                )
            key: Any = int(part)
        else:
            key = part
        loc.append(key)
        if last:
            node[key] = value
            _record(prov, tuple(loc), value, label)
            return
        child = node[key] if isinstance(node, list) else node.get(key)
        if child is None:
            child = {}
            node[key] = child
            prov[tuple(loc)] = label
        elif not isinstance(child, (dict, list)):
            raise _error(
                f"{label}: {'.'.join(parts[: i + 1])} is {_short(child)}, not a section, "
                f"so it has no key {parts[i + 1]!r}; set {'.'.join(parts[: i + 1])} itself"
            )
        node = child


# --------------------------------------------------------------------------- error messages


def _unwrap(tp: Any) -> Any:
    """Strip ``Annotated`` and ``Optional`` from a type annotation."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _annotation_at(schema: type[BaseModel], loc: Loc) -> Any:
    """The (unwrapped) type annotation that applies at ``loc``, or None if unknown."""
    tp: Any = schema
    for key in loc:
        tp = _unwrap(tp)
        if _is_model(tp):
            field = tp.model_fields.get(key) if isinstance(key, str) else None
            if field is None:
                return None
            tp = field.annotation
            continue
        origin, args = get_origin(tp), get_args(tp)
        if origin in (dict, collections.abc.Mapping) and len(args) == 2:
            tp = args[1]
        elif origin in (list, set, frozenset, collections.abc.Sequence) and args:
            tp = args[0]
        elif origin is tuple and args:
            if len(args) == 2 and args[1] is Ellipsis:
                tp = args[0]
            elif isinstance(key, int) and 0 <= key < len(args):
                tp = args[key]
            else:
                return None
        else:
            return None
    return _unwrap(tp)


def _find_nested(model: type[BaseModel], name: str, depth: int = 3) -> tuple[str, ...] | None:
    """The shortest path below ``model`` (through sub-sections only) to a field ``name``."""
    level: list[tuple[tuple[str, ...], type[BaseModel]]] = [((), model)]
    for _ in range(depth):
        below = []
        for path, tp in level:
            for field_name, field in tp.model_fields.items():
                sub = _unwrap(field.annotation)
                if _is_model(sub):
                    if name in sub.model_fields:
                        return (*path, field_name, name)
                    below.append(((*path, field_name), sub))
        level = below
    return None


def _fmt(loc: Loc) -> str:
    out = ""
    for key in loc:
        if isinstance(key, int) and not isinstance(key, bool):
            out += f"[{key}]"
        else:
            out += ("." if out else "") + str(key)
    return out


def _source(prov: Provenance, loc: Loc) -> str | None:
    for n in range(len(loc), 0, -1):
        label = prov.get(tuple(loc[:n]))
        if label is not None:
            return label
    return None


def _qualify(text: str, loc: Loc) -> str:
    """Prefix a validator's message with the part of the field path it leaves out."""
    names = [str(k) for k in loc]
    for start in range(len(names)):
        tail = ".".join(names[start:])
        if text.startswith(tail) and text[len(tail) : len(tail) + 1] in ("", ".", " ", ":", "("):
            return ".".join(names[:start] + [text]) if start else text
    return f"{_fmt(loc)}: {text}" if loc else text


_TYPE_WORDS = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "tuple_type": "a list",
    "set_type": "a list",
    "dict_type": "a mapping",
    "none_required": "null",
}
_COMPARE = {
    "greater_than": ("gt", ">"),
    "greater_than_equal": ("ge", ">="),
    "less_than": ("lt", "<"),
    "less_than_equal": ("le", "<="),
    "multiple_of": ("multiple_of", "a multiple of"),
}


def _describe(
    err: Mapping[str, Any], schema: type[BaseModel], prov: Provenance, top: list[str]
) -> str:
    """One line for one pydantic error."""
    loc: Loc = tuple(err.get("loc", ()))
    kind = err.get("type", "")
    value = err.get("input")
    ctx = err.get("ctx") or {}
    src = _source(prov, loc)
    where = f" in {src}" if src else ""
    got = _short(value)

    if kind == "extra_forbidden" and loc:
        parent, key = loc[:-1], loc[-1]
        tp = _annotation_at(schema, parent)
        choices = list(tp.model_fields) if _is_model(tp) else []
        if not parent:
            choices += [c for c in top if c not in choices]
        hint = closest(str(key), choices) if choices else None
        if hint:
            return f"unknown key {_fmt(loc)!r}{where}; did you mean {_fmt((*parent, hint))!r}?"
        nested = _find_nested(tp, str(key)) if _is_model(tp) else None
        if nested:
            full, section = _fmt((*parent, *nested)), _fmt((*parent, *nested[:-1]))
            return (
                f"unknown key {_fmt(loc)!r}{where}; did you mean {full!r}? "
                f"({str(key)!r} belongs under {section!r})"
            )
        under = f" under {_fmt(parent)!r}" if parent else ""
        listed = f"valid keys{under}: {', '.join(choices)}" if choices else "remove it"
        return f"unknown key {_fmt(loc)!r}{where}; {listed}"

    if kind == "invalid_key" or (loc and loc[-1] == "[key]"):
        key_loc = loc[:-1] if kind != "invalid_key" else loc
        parent = key_loc[:-1]
        at = f"under {_fmt(parent)!r}" if parent else "at the top level"
        return (
            f"key {_short(value)} {at}{where} is not text; keys must be strings (quote it in YAML)"
        )

    if kind == "missing":
        if loc and isinstance(loc[-1], int):
            tp = _annotation_at(schema, loc[:-1])
            args = get_args(tp) if get_origin(tp) is tuple else ()
            need = f"give {len(args)} items" if args and Ellipsis not in args else "give more items"
            return f"{_fmt(loc[:-1])}: item [{loc[-1]}] is missing{where}; {need}"
        return f"{_fmt(loc)}: required key is missing{where}; add it"

    path = _fmt(loc) or "config"
    set_in = f"; set in {src}" if src else ""

    if kind in ("model_type", "model_attributes_type", "dataclass_type"):
        fix = ""
        if value is None and loc and not (src or "").startswith("override"):
            fix = f"; remove the empty '{loc[-1]}:' line or put keys under it"
        return f"{path}: expected a section (a mapping of keys), got {got}{set_in}{fix}"
    if kind in _TYPE_WORDS:
        quote = kind == "string_type" and isinstance(value, (bool, int, float, datetime.date))
        fix = " (quote it in YAML if it is text)" if quote else ""
        return f"{path}: expected {_TYPE_WORDS[kind]}, got {got}{fix}{set_in}"
    if kind in _COMPARE:
        name, sign = _COMPARE[kind]
        return f"{path}: must be {sign} {ctx.get(name)} (got {got}){set_in}"
    if kind == "literal_error":
        tp = _annotation_at(schema, loc)
        options = list(get_args(tp)) if get_origin(tp) is Literal else []
        expected = ", ".join(repr(o) for o in options) if options else ctx.get("expected", "")
        hint = ""
        if isinstance(value, str):
            match = closest(value, [o for o in options if isinstance(o, str)])
            hint = f", did you mean {match!r}?" if match else ""
        return f"{path}: must be one of {expected} (got {got}{hint}){set_in}"
    if kind in ("too_short", "too_long"):
        actual = ctx.get("actual_length")
        if kind == "too_short":
            need = f"at least {ctx.get('min_length')}"
        else:
            need = f"at most {ctx.get('max_length')}"
        return f"{path}: expected {need} items, got {actual}{set_in}"
    if kind in ("value_error", "assertion_error"):
        exc = ctx.get("error")
        text = str(exc) if exc is not None else str(err.get("msg", ""))
        text = re.sub(r"^(Value|Assertion) error,\s*", "", text)
        if isinstance(value, Mapping):  # a model_validator: the message names its fields
            return f"{_qualify(text, loc)}{set_in}"
        return f"{_qualify(text, loc)} (got {got}){set_in}"
    msg = str(err.get("msg", "invalid value"))
    msg = msg[:1].lower() + msg[1:]
    return f"{path}: {msg} (got {got}){set_in}"


def _convert(
    exc: ValidationError,
    schema: type[BaseModel],
    prov: Provenance | None = None,
    top: list[str] | None = None,
) -> ConfigError:
    errors = exc.errors(include_url=False)
    if not errors:  # pragma: no cover - pydantic always lists at least one
        return _error(f"invalid configuration: {exc}")
    line = _describe(errors[0], schema, prov or {}, top or [])
    others = len(errors) - 1
    if others:
        line += f" (and {others} other error{'s' if others > 1 else ''})"
    return _error(line)


def _validate(
    data: Mapping[str, Any],
    schema: type[SchemaT],
    prov: Provenance | None = None,
    top: list[str] | None = None,
) -> SchemaT:
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise _convert(exc, schema, prov, top) from None
    except RecursionError:
        raise _error("configuration is nested too deeply (recursive YAML alias?)") from None


# --------------------------------------------------------------------------- public API


EXTENSION_PREFIX = "x-"
"""Top-level keys with this prefix are ignored (homes for YAML anchors, as in docker-compose)."""


def drop_extension_keys(tree: dict) -> dict:
    """``tree`` without its top-level ``x-...`` keys (anchors' homes; merge keys already applied)."""
    return {
        k: v for k, v in tree.items() if not (isinstance(k, str) and k.startswith(EXTENSION_PREFIX))
    }


def load_tree(
    path: str | os.PathLike | None,
    overrides: Iterable[str] = (),
    *,
    preset_dir: PresetDirs = None,
) -> tuple[dict, Provenance, list[str]]:
    """Read and merge a config and its defaults, apply overrides: ``(tree, provenance, top)``.

    ``top`` lists the extra top-level keys the schema may ignore in messages (``defaults``).
    Top-level ``x-...`` keys are dropped. Validation is :func:`validate_tree`'s job.
    """
    if isinstance(overrides, str):
        overrides = [overrides]
    resolver = _Resolver(preset_dir)
    prov: Provenance = {}
    tree: dict = {}
    if path is not None:
        top, label = _resolve_top(path, resolver.presets)
        try:
            layers = resolver.layers(top, label)
        except RecursionError:
            raise _error(f"defaults in {label} are nested too deeply") from None
        for layer_label, layer in layers:
            try:
                _merge_into(tree, layer, prov, layer_label)
            except RecursionError:
                raise _error(f"YAML in {layer_label} is recursive or nested too deeply") from None
    for text in overrides:
        _apply_override(tree, text, prov)
    return drop_extension_keys(tree), prov, [DEFAULTS_KEY] if path is not None else []


def validate_tree(
    tree: Mapping[str, Any],
    schema: type[SchemaT],
    prov: Provenance | None = None,
    top: list[str] | None = None,
) -> SchemaT:
    """Validate a merged tree against ``schema``; one-line :class:`ConfigError` on any problem."""
    return _validate(tree, schema, prov, top)


def load_config(
    path: str | os.PathLike | None,
    overrides: Iterable[str] = (),
    schema: type[SchemaT] = RunConfig,  # type: ignore[assignment]
    *,
    preset_dir: PresetDirs = None,
) -> SchemaT:
    """Read, merge, override and validate a config against ``schema``.

    ``path``: a YAML file, or the name of a preset; None starts from the
    schema's defaults. ``overrides``: ``key.path=value`` strings applied last.
    ``preset_dir`` replaces the packaged presets (a folder, or namespaced folders).
    Raises :class:`ConfigError` with a one-line message for every user mistake.
    Run configs are read with :func:`geogan.recipes.config.load_run_config`, which picks
    the schema of the config's recipe.
    """
    tree, prov, top = load_tree(path, overrides, preset_dir=preset_dir)
    return _validate(tree, schema, prov, top)


def tree_from_dict(
    data: Mapping[str, Any], *, source: str | None = None, overrides: Iterable[str] = ()
) -> tuple[dict, Provenance]:
    """A plain mapping (e.g. a config stored as JSON in a checkpoint) as ``(tree, provenance)``,
    with overrides applied and ``x-...`` keys dropped."""
    if not isinstance(data, Mapping):
        where = f" in {source}" if source else ""
        raise _error(f"config{where} must be a mapping of keys, got a {_type_name(data)}")
    prov: Provenance = {}
    if source:
        prov = {(key,): source for key in data}
    tree = _fresh(dict(data))
    for text in [overrides] if isinstance(overrides, str) else overrides:
        _apply_override(tree, text, prov)
    return drop_extension_keys(tree), prov


def config_from_dict(
    data: Mapping[str, Any],
    schema: type[SchemaT] = RunConfig,  # type: ignore[assignment]
    *,
    source: str | None = None,
    overrides: Iterable[str] = (),
) -> SchemaT:
    """Validate a plain mapping (e.g. a config stored as JSON in a checkpoint).

    ``source`` names where it came from in error messages ("checkpoint x.safetensors");
    ``overrides`` (``key.path=value``) are applied on top, as on the command line.
    """
    tree, prov = tree_from_dict(data, source=source, overrides=overrides)
    return _validate(tree, schema, prov)


def config_to_yaml(cfg: BaseModel) -> str:
    """The complete config as YAML; :func:`load_config` reads it back to an equal config."""
    return yaml.dump(
        cfg.model_dump(mode="json"),
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
    )


def save_resolved_config(cfg: BaseModel, run_dir: str | os.PathLike) -> Path:
    """Write ``run_dir/config.yaml`` atomically (the config as run); return its path."""
    path = Path(run_dir) / CONFIG_FILENAME
    header = "# Resolved geogan configuration: defaults and overrides applied.\n"
    atomic_write_text(path, header + config_to_yaml(cfg))
    return path
