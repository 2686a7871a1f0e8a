"""Verification of generated fields: streaming metrics, interpolation baselines, plots, HTML report.

Importing this package registers the metrics in :data:`geogan.core.registry.METRICS`.
"""

from geogan.evaluation.baselines import BASELINES, coarse_valid_mask, interpolate
from geogan.evaluation.evaluate import (
    CRPS_ESTIMATOR,
    SCORING_RULE,
    Evaluator,
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
    SpreadSkill,
    StreamingMetric,
)
from geogan.evaluation.report import write_report

__all__ = [
    "BASELINES",
    "CRPS",
    "CRPS_ESTIMATOR",
    "FSS",
    "RAPSD",
    "SCORING_RULE",
    "EnsembleMeanErrors",
    "Evaluator",
    "PooledCRPS",
    "RankHistogram",
    "SpreadSkill",
    "StreamingMetric",
    "coarse_valid_mask",
    "evaluate",
    "evaluate_dataarrays",
    "interpolate",
    "scoring_mask",
    "write_report",
]
