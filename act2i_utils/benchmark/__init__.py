"""Benchmark construction: taxonomy data, the rarity rule, the builder, imports (files and the Hub)
and the stage entry."""

from ..schema import export_benchmark, read_benchmark
from .builder import build_benchmark, prompt_id, review
from .parsing import Agent, ParsedPrompt, parse_prompt
from .rarity import Verdict, explain, rarity, rarity_of
from .sources import find_agents, read_source
from .stage import label_counts, run
from .taxonomy import load_taxonomy

__all__ = ["Agent", "ParsedPrompt", "Verdict", "build_benchmark", "explain", "export_benchmark", "find_agents", "label_counts", "load_taxonomy",
           "parse_prompt", "prompt_id", "rarity", "rarity_of", "read_benchmark", "read_source", "review", "run"]
