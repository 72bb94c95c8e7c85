"""The offline knowledge-base enricher: curated cues composed into fluent prompts, no model.

For each (action, dimension) `data/cues.yaml` holds hand-written clauses (the peak moment of
the action, poses, relative positions, expressions) with slots for each agent's body words
from `data/bodies.yaml` (hooves, talons, tusks, wings, tail). A rewrite is the base prompt
followed by one curated cue (or, for an action without one, a cue from the action's label:
its topology, valence or extent) and a framing phrase, each chosen by a generator seeded per request, so the same
request always gives the same text and different samples differ.
"""

from __future__ import annotations

import functools
import hashlib
import random
from pathlib import Path

import yaml

from .backends import Request
from .dimensions import DIMENSIONS

DATA = Path(__file__).parent / "data"
GENERIC_BODY = {"limbs": "limbs", "weapon": "body", "cover": "body", "face": "face"}
LABEL_FOR = {"spatial": "spatial_topology", "emotional": "emotional_valence", "temporal": "temporal_extent"}


@functools.lru_cache(maxsize=None)
def _data() -> tuple[dict, dict]:
    cues = yaml.safe_load((DATA / "cues.yaml").read_text(encoding="utf-8"))
    bodies = yaml.safe_load((DATA / "bodies.yaml").read_text(encoding="utf-8"))
    return cues, bodies


def kb_version() -> str:
    """Hash of the knowledge base's data files: part of the cache key, so edits take effect."""
    digest = hashlib.sha256()
    for name in ("cues.yaml", "bodies.yaml"):
        digest.update((DATA / name).read_bytes())
    return digest.hexdigest()[:12]


class KnowledgeBaseBackend:
    """Rewrites from curated knowledge; `agents` names the agent set whose cues come first.

    The action (its key and labels) comes with each request from the benchmark row; the agents'
    body plans come from the taxonomy's agent attributes (class) and `data/bodies.yaml`.
    """

    name = "kb"

    def __init__(self, agents: str = "animals"):
        from ..benchmark.taxonomy import DATA as TAXONOMY_DATA, load_taxonomy

        self.model_ref = f"kb-{kb_version()}"
        self.sets = [agents] + [p.name for p in sorted(TAXONOMY_DATA.iterdir()) if p.is_dir() and p.name != agents]
        self.agents: dict[str, object] = {}
        for name in self.sets:
            try:
                tax = load_taxonomy(name)
            except Exception:  # noqa: BLE001 - a custom folder without cues still gets generic cues
                continue
            for agent in tax.agents:
                self.agents.setdefault(agent.name, agent)

    def settings(self) -> dict:
        return {}

    def generate(self, requests: list[Request]) -> list[str]:
        return [self.rewrite(r) for r in requests]

    def rewrite(self, request: Request) -> str:
        if request.dimension not in DIMENSIONS:
            from ..errors import ConfigError

            raise ConfigError(
                f"The kb enricher knows the dimensions {', '.join(DIMENSIONS)}, not '{request.dimension}'; "
                "use the transformers or openai backend for custom dimensions."
            )
        rng = random.Random(request.seed)
        slots = self._slots(request)
        cues, _ = _data()
        curated = self._curated(request.action_key)
        generic = cues["generic"]
        dims = ("spatial", "emotional", "temporal") if request.dimension == "combined" else (request.dimension,)
        clauses = []
        for dim in dims:
            options = curated.get(dim) if slots else None
            label_value = request.labels.get(LABEL_FOR[dim])
            if options:
                clauses.append(rng.choice(options).format(**slots))
            elif label_value in generic[LABEL_FOR[dim]]:
                clauses.append(rng.choice(generic[LABEL_FOR[dim]][label_value]))
        clauses.append(rng.choice(generic["framing"][request.dimension]))
        return _sentence(request.base_prompt, clauses)

    def _curated(self, action_key: str | None) -> dict:
        """The curated cues of an action, from the first agent set that has them."""
        cues, _ = _data()
        for name in self.sets:
            if action_key and action_key in cues.get(name, {}):
                return cues[name][action_key]
        return {}

    def _slots(self, request: Request) -> dict | None:
        """Placeholder values for the cue templates, or None when the agents are unknown."""
        if not request.animal1 or not request.animal2:
            return None
        slots = {"A": f"the {request.animal1}", "B": f"the {request.animal2}"}
        for prefix, name in (("a", request.animal1), ("b", request.animal2)):
            for part, word in self._body(name).items():
                slots[f"{prefix}_{part}"] = word
        return slots

    def _body(self, name: str) -> dict:
        _, bodies = _data()
        agent = self.agents.get(name)
        base = bodies["classes"].get(agent.klass, GENERIC_BODY) if agent else GENERIC_BODY
        return {**GENERIC_BODY, **base, **bodies["agents"].get(name, {})}


def _sentence(base: str, clauses: list[str]) -> str:
    text = base.strip().rstrip(".")
    text = text[0].upper() + text[1:]
    return ", ".join([text, *clauses]) + "."
