"""Benchmark construction: taxonomy data, the rarity rule, the builder and the stage entry."""

from .builder import build_benchmark, prompt_id, review
from .rarity import Verdict, explain, rarity, rarity_of
from .stage import label_counts, run
from .taxonomy import load_taxonomy

__all__ = ["Verdict", "build_benchmark", "explain", "label_counts", "load_taxonomy", "prompt_id", "rarity",
           "rarity_of", "review", "run"]
