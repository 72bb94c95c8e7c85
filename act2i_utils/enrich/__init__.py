"""Knowledge-distillation enrichment: spatial, emotional and temporal rewrites with any LLM, or offline."""

from .dimensions import DIMENSIONS, instruction
from .stage import enrich, flagged, length_stats, make_backend, run, side_by_side

__all__ = ["DIMENSIONS", "enrich", "flagged", "instruction", "length_stats", "make_backend", "run", "side_by_side"]
