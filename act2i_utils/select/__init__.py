"""Judge-guided selection (issue 21): per prompt, the rewrite and image a judge expects to be accepted,
with an honest held-out evaluation and the cost of each extra candidate.

`run(run)` is the stage (notebook 04, `act2i select`); `policies` holds the choosers
(best-of-all, best dimension per prompt, a cross-fitted per-label rule); `evaluation` the pure
functions the analysis reports with: `honest_acceptance`, `honest_comparison`, `cost_curve`,
`cost_curve_figure`.
"""

from .evaluation import (cost_curve, cost_curve_figure, honest_acceptance, honest_comparison, judge_family, reportable,
                         same_judge)
from .policies import best_dimension, best_of_all, expected_best, folds_for, per_label, sample_variant
from .stage import Selected, choose_all, run, summary

__all__ = ["Selected", "best_dimension", "best_of_all", "choose_all", "cost_curve", "cost_curve_figure", "expected_best",
           "folds_for", "honest_acceptance", "honest_comparison", "judge_family", "per_label", "reportable", "run",
           "same_judge", "sample_variant", "summary"]
