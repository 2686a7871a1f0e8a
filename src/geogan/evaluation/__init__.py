"""Verification of generated fields: streaming metrics, interpolation baselines, plots, HTML report.

Importing this package registers the metrics in :data:`geogan.core.registry.METRICS`.
Everything works on fields ``[T, *S]`` with 2D or 3D spatial axes ``S``.
"""

from geogan.evaluation.baselines import BASELINES, METHODS, coarse_valid_mask, interpolate
from geogan.evaluation.distributions import PixelWasserstein, Wasserstein
from geogan.evaluation.evaluate import (
    CRPS_ESTIMATOR,
    DEFAULT_METRICS,
    SCORING_RULE,
    Evaluator,
    build_metrics,
    evaluate,
    evaluate_dataarrays,
    scoring_mask,
)
from geogan.evaluation.metrics import (
    CRPS,
    FSS,
    RAPSD,
    EnsembleMeanErrors,
    PooledCRPS,
    RankHistogram,
    Spectra,
    SpreadSkill,
    StreamingMetric,
    power_spectra,
)
from geogan.evaluation.report import write_report

# Metrics defined in modules of their own register in METRICS on import (ROC/reliability/
# Brier, block artefacts, image metrics); importing any evaluation module runs this first.
from geogan.evaluation import artefacts, categorical, image_metrics  # noqa: E402,F401  # isort: skip

__all__ = [
    "BASELINES",
    "CRPS",
    "CRPS_ESTIMATOR",
    "DEFAULT_METRICS",
    "FSS",
    "METHODS",
    "RAPSD",
    "SCORING_RULE",
    "EnsembleMeanErrors",
    "Evaluator",
    "PixelWasserstein",
    "PooledCRPS",
    "RankHistogram",
    "Spectra",
    "SpreadSkill",
    "StreamingMetric",
    "Wasserstein",
    "build_metrics",
    "coarse_valid_mask",
    "evaluate",
    "evaluate_dataarrays",
    "interpolate",
    "power_spectra",
    "scoring_mask",
    "write_report",
]
