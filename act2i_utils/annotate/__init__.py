"""The human acceptance study: a blind web annotator, its store, agreement statistics, Label Studio exchange.

`answers(run)` is the study's public result: the current answers, read from the live database.
"""

from .agreement import fleiss_kappa, krippendorff_alpha
from .study import add_annotator, answers, export, prepare_study, serve, serve_banner, status

__all__ = ["add_annotator", "answers", "export", "fleiss_kappa", "krippendorff_alpha", "prepare_study", "serve", "serve_banner",
           "status"]
