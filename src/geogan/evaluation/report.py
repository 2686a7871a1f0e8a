"""A self-contained HTML verification report plus ``metrics.json`` beside it.

The HTML has no external CSS, JS, fonts or network references: figures are
embedded as base64 PNG data URIs, styles are inline.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from geogan.core.atomic import atomic_write_text
from geogan.core.errors import DataError

__all__ = ["best_direction", "to_jsonable", "write_report"]

# Which value is best for a table row: "min", "max", "abs" (closest to 0), "one" (closest to 1).
_DIRECTIONS: tuple[tuple[str, str | None], ...] = (
    ("n_", None),
    ("rank_n", None),
    ("members", None),
    ("block_tiles", None),
    ("block_power_ratio", "one"),
    ("block_contrast_ratio", "one"),
    ("brier_rel", "min"),
    ("brier_res", "max"),
    ("brier_unc", None),
    ("brier", "min"),
    ("roc_auc", "max"),
    ("spread", None),
    ("crps", "min"),
    ("mae", "min"),
    ("rmse", "min"),
    ("ensemble_mean_rmse", "min"),
    ("lsd_db", "min"),
    ("wasserstein_bound", None),
    ("wasserstein", "min"),
    ("pixel_wasserstein", "min"),
    ("bias", "abs"),
    ("relative_bias", "abs"),
    ("mean_truth", None),
    ("ssr", "one"),
    ("rank_max_ratio", "one"),
    ("rank_min_ratio", "one"),
    ("fss", "max"),
)

# Rows shown first, in this order; the rest follow alphabetically.
_ORDER = ("crps", "crps_fair", "mae", "rmse", "bias", "ssr", "spread", "lsd_db")


def best_direction(metric: str) -> str | None:
    """``"min"``, ``"max"``, ``"abs"``, ``"one"`` or None (no best) for a metric name."""
    for prefix, direction in _DIRECTIONS:
        if metric == prefix or metric.startswith(prefix):
            return direction
    return None


def to_jsonable(obj: Any) -> Any:
    """``obj`` with numpy scalars/arrays as Python values and NaN/inf as None (strict JSON)."""
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer, int)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        value = float(obj)
        return value if math.isfinite(value) else None
    if isinstance(obj, (str, type(None))):
        return obj
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to metrics.json")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _best(values: list[float | None], direction: str | None) -> set[int]:
    present = [(i, v) for i, v in enumerate(values) if v is not None]
    if direction is None or len(present) < 2:
        return set()
    key = {
        "min": lambda v: v,
        "max": lambda v: -v,
        "abs": abs,
        "one": lambda v: abs(v - 1.0),
    }[direction]
    target = min(key(v) for _, v in present)
    return {i for i, v in present if math.isclose(key(v), target, rel_tol=1e-12, abs_tol=1e-15)}


def _format(value: float | None) -> str:
    if value is None:
        return "&ndash;"
    if value == int(value) and abs(value) >= 1000:
        return f"{int(value):d}"
    return f"{value:.4g}"


def _table(methods: Mapping[str, Mapping[str, Any]]) -> str:
    names = list(methods)
    keys: list[str] = []
    for name in names:
        for key, value in methods[name].items():
            is_number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
                value, bool
            )
            if is_number and key not in keys:  # NaN values still get a row (shown as a dash)
                keys.append(key)
    keys = [k for k in _ORDER if k in keys] + sorted(k for k in keys if k not in _ORDER)
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    rows = []
    for key in keys:
        values = [_number(methods[n].get(key)) for n in names]
        best = _best(values, best_direction(key))
        cells = "".join(
            f'<td class="best">{_format(v)}</td>' if i in best else f"<td>{_format(v)}</td>"
            for i, v in enumerate(values)
        )
        rows.append(f"<tr><th>{html.escape(key)}</th>{cells}</tr>")
    return (
        '<table id="metrics"><thead><tr><th>metric</th>'
        + head
        + "</tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )


_STYLE = """
body { font-family: sans-serif; margin: 2em; max-width: 1200px; color: #222; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
thead th { background: #eee; }
tbody th { text-align: left; font-weight: normal; font-family: monospace; }
td.best { background: #c8e6c9; font-weight: bold; }
figure { margin: 1.5em 0; }
figure img { max-width: 100%; }
p.rule { background: #f5f5f5; padding: 0.6em; border-left: 4px solid #888; }
"""


def write_report(
    out_dir: str | os.PathLike,
    metrics: Mapping[str, Any],
    figures: Mapping[str, str | os.PathLike],
    title: str = "geogan verification",
    notes: Iterable[str] = (),
) -> Path:
    """Write ``out_dir/report.html`` (self-contained) and ``out_dir/metrics.json``; return the HTML path.

    ``metrics``: an :func:`~geogan.evaluation.evaluate.evaluate` result (its
    ``"methods"`` give the table: one row per metric, one column per method, the
    best value of each row highlighted; ``"rule"`` and ``"crps_estimator"`` give
    the paragraph on what was scored). ``figures``: caption -> PNG path,
    embedded as base64. ``notes``: extra paragraphs (e.g. data, commands).
    Both files are written atomically.
    """
    out_dir = Path(out_dir)
    methods = metrics.get("methods", {})
    if not isinstance(methods, Mapping):
        raise DataError("metrics['methods'] must map method name -> {metric: value}")
    sections = [f"<h1>{html.escape(title)}</h1>"]
    rule = metrics.get("rule")
    estimator = metrics.get("crps_estimator")
    scored = " ".join(html.escape(str(s)) for s in (rule, estimator) if s)
    if scored:
        counts = []
        if metrics.get("n_valid"):
            counts.append(f"{int(metrics['n_valid'])} scored pixel values")
        if metrics.get("n_times"):
            counts.append(f"{int(metrics['n_times'])} time steps")
        tail = f" ({', '.join(counts)}.)" if counts else ""
        sections.append(f'<p class="rule">{scored}{tail}</p>')
    for note in notes:
        sections.append(f"<p>{html.escape(str(note))}</p>")
    sections.append("<h2>Metrics</h2>")
    sections.append(
        "<p>Best value per row highlighted: lowest for errors, CRPS, LSD (dB) and Wasserstein "
        "distances; highest for FSS; "
        "closest to 0 for bias; closest to 1 for the spread-skill ratio and rank-histogram ratios"
        " and for the block-artefact power ratio; highest for ROC areas (roc_auc) and Brier"
        " resolution, lowest for Brier scores and their reliability term.</p>"
    )
    sections.append(_table(methods))
    if figures:
        sections.append("<h2>Figures</h2>")
    for caption, path in figures.items():
        data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
        sections.append(
            f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>\n"
        + "\n".join(sections)
        + "\n</body></html>\n"
    )
    atomic_write_text(
        out_dir / "metrics.json", json.dumps(to_jsonable(metrics), indent=2, allow_nan=False) + "\n"
    )
    report = out_dir / "report.html"
    atomic_write_text(report, page)
    return report
