"""Benchmark construction: taxonomy data, the rarity rule, the builder and the stage entry."""

from .builder import build_benchmark, prompt_id
from .rarity import explain, rarity
from .stage import label_counts, run
from .taxonomy import load_taxonomy

__all__ = ["build_benchmark", "explain", "label_counts", "load_taxonomy", "prompt_id", "rarity", "run"]
