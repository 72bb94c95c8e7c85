"""Analysis: statistics and figures drawn from a run's tables."""
