"""The human acceptance study: a blind web annotator, its store, agreement statistics, Label Studio exchange."""

from .agreement import fleiss_kappa, krippendorff_alpha
from .study import add_annotator, export, prepare_study, serve, status

__all__ = ["add_annotator", "export", "fleiss_kappa", "krippendorff_alpha", "prepare_study", "serve", "status"]
