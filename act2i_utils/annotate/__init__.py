"""The human acceptance study: a blind web annotator, its store, agreement statistics, Label Studio exchange.

`answers(run)` is the study's public result: the current answers, read from the live database (raters
excluded by the gold rule left out; `raters(run)` says who and why, `per_rater(run)` has every answer).
"""

from .agreement import fleiss_kappa, krippendorff_alpha
from .pairs import plan_pairs
from .study import (add_annotator, answers, export, pair_answers, pair_comparisons, per_rater, prepare_study, raters, serve,
                    serve_banner, status)

__all__ = ["add_annotator", "answers", "export", "fleiss_kappa", "krippendorff_alpha", "pair_answers", "pair_comparisons",
           "per_rater", "plan_pairs", "prepare_study", "raters", "serve", "serve_banner", "status"]
