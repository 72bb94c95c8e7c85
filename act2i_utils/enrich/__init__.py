"""Knowledge-distillation enrichment: spatial, emotional and temporal rewrites with any LLM, or offline."""

from .checks import clean_and_check
from .dimensions import DIMENSIONS, instruction
from .stage import enrich, flagged, length_stats, make_backend, run, side_by_side

__all__ = ["DIMENSIONS", "clean_and_check", "enrich", "flagged", "instruction", "length_stats", "make_backend", "run", "side_by_side"]
