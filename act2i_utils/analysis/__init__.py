"""Analysis: statistics and figures drawn from a run's tables."""

from .stage import Results, load_acceptance, run

__all__ = ["Results", "load_acceptance", "run"]
