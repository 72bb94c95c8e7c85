"""The offline knowledge-base enricher: rewrites a person might write, from curated data, no model.

A rewrite opens with the base prompt and a place, then adds sentences along its dimension:
the action's cue (`data/cues.yaml`), a second detail (the agents' relative size, their body
language, the motion a fast shutter catches) and a closing phrase, in one of several sentence
frames (`data/frames.yaml`). Body words fit each agent's body plan (`data/bodies.yaml`: talons
for an eagle, flippers for a seal) and the place fits where both agents live
(`data/settings.yaml`, from the taxonomy's habitats). Every choice comes from a generator seeded
per request, so the same request always gives the same text and different samples differ.

A rewrite over the token budget of the profile's text encoders loses its closing phrase, then its
second detail, then its place, and then tries the action's other cues. Without a budget a
conservative CLIP-like estimate stands in (`estimate_budget`).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import random
import re
from pathlib import Path

import yaml

from ..words import singular
from .backends import Request
from .budget import Encoder, TokenBudget
from .dimensions import DIMENSIONS

DATA = Path(__file__).parent / "data"
STANDARD = ("spatial", "emotional", "temporal")
LABEL_FOR = {"spatial": "spatial_topology", "emotional": "emotional_valence", "temporal": "temporal_extent"}
OPTIONAL = ("close", "extra", "place")  # dropped in this order when a rewrite is over budget
BODY_WORDS = ("limbs", "head", "mouth", "weapon", "cover", "speed", "voice")
STATES = ("threat", "fear", "calm", "alert")
CLIP_LIMIT = 77

_SLOT = re.compile(r"\{([A-Za-z_']+)\}")
_OPTIONAL_PART = re.compile(r"\[([^\[\]]*)\]")


@functools.lru_cache(maxsize=None)
def _data() -> dict:
    """Every data file by name: bodies, cues, frames, settings."""
    return {path.stem: yaml.safe_load(path.read_text(encoding="utf-8")) for path in sorted(DATA.glob("*.yaml"))}


def kb_version() -> str:
    """Hash of the knowledge base's data files: part of the model reference, so edits take effect."""
    digest = hashlib.sha256()
    for path in sorted(DATA.glob("*.yaml")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


class _WordPieces:
    """A tokenizer stand-in that counts more than CLIP would: a token per word and per
    punctuation mark, one more for every six letters of a word, plus start and end. (On the kb's
    rewrites it counts about 12 tokens more than the smoke profile's tiny CLIP tokenizer, itself
    more fragmenting than CLIP's 49k-word vocabulary.)"""

    def __call__(self, text: str, **_) -> dict:
        pieces = re.findall(r"[^\W\d_]+|\d|[^\w\s]", text)
        return {"input_ids": [0] * (2 + sum(1 + len(p) // 6 for p in pieces))}


def estimate_budget(limit: int = CLIP_LIMIT) -> TokenBudget:
    """A budget without tokenizers: CLIP's 77 tokens, counted conservatively."""
    return TokenBudget([Encoder("estimate (CLIP-like)", _WordPieces(), limit)])


def lookup_key(name: str) -> str:
    """An agent name as the taxonomy spells it: lower case, no article, spaces for underscores."""
    key = " ".join(str(name).lower().replace("_", " ").split())
    return re.sub(r"^(?:the|a|an) ", "", key)


def _singulars(key: str) -> list[str]:
    """`key` and what it would be if it were a plural ("wolves" -> "wolf", "goats" -> "goat")."""
    head, _, last = key.rpartition(" ")
    forms = [singular(last)]
    if last.endswith("es"):
        forms.append(last[:-2])
    if last.endswith("s"):
        forms.append(last[:-1])
    return [key] + [f"{head} {f}".strip() for f in dict.fromkeys(forms) if f and f != last]


class KnowledgeBaseBackend:
    """Rewrites from curated knowledge; `agents` names the agent set whose cues come first.

    The action (its key and labels) comes with each request from the benchmark row; the agents'
    class, size and habitats come from the taxonomy, found by name in any case, with or without
    an article, singular or plural. `budget` is the profile's `TokenBudget` (enrich.budget):
    every rewrite is made to fit it; None uses `estimate_budget()`.
    """

    name = "kb"

    def __init__(self, agents: str = "animals", budget: TokenBudget | None = None):
        from ..benchmark.taxonomy import DATA as TAXONOMY_DATA, load_taxonomy

        self.model_ref = f"kb-{kb_version()}"
        self.budget = budget if budget is not None else estimate_budget()
        self.sets = [agents] + [p.name for p in sorted(TAXONOMY_DATA.iterdir()) if p.is_dir() and p.name != agents]
        self.agents: dict[str, object] = {}
        self.roles: dict[str, str] = {}
        for name in self.sets:
            try:
                tax = load_taxonomy(name)
            except Exception:  # noqa: BLE001 - a custom folder without a taxonomy still gets generic cues
                continue
            for agent in tax.agents:
                self.agents.setdefault(lookup_key(agent.name), agent)
            for action in tax.actions:
                self.roles.setdefault(action.key, action.role)

    def settings(self) -> dict:
        """What the rewrites depend on besides the request: the budget they are fitted to."""
        return {"budget": [[e.label, e.limit] for e in self.budget.encoders]}

    def generate(self, requests: list[Request]) -> list[str]:
        return [self.rewrite(r) for r in requests]

    # --- one rewrite ------------------------------------------------------------------------

    def rewrite(self, request: Request) -> str:
        """One rewrite: a frame, the scene, the action's cues and details, fitted to the budget."""
        dim = request.dimension
        if dim not in DIMENSIONS:
            from ..errors import ConfigError

            raise ConfigError(
                f"The kb enricher knows the dimensions {', '.join(DIMENSIONS)}, not '{dim}'; "
                "use the transformers or openai backend for custom dimensions."
            )
        rng = random.Random(request.seed)
        frames = _data()["frames"]
        base = _base(request.base_prompt)
        if not request.animal1 or not request.animal2:
            return _tidy(f"{base}, {rng.choice(frames['fallback'][dim])}.")
        frame = rng.choice(frames["frames"][dim])
        slots = self._slots(request, rng)
        dims = STANDARD if dim == "combined" else (dim,)
        orders = [rng.sample(options, len(options)) for options in (self._cues(request, d) for d in dims)]
        parts = {"base": base, "place": slots["place"], "close": _render(rng.choice(self._closings(request)), slots)}
        if dim != "combined":
            parts["extra"] = _render(rng.choice(self._extras(request, slots)), slots)
        names = dims if dim == "combined" else ("cue",)
        cue_sets = [{n: _render(c, slots) for n, c in zip(names, combo)} for combo in itertools.product(*orders)]
        return self._fit(frame, parts, cue_sets)

    def _fit(self, frame: str, parts: dict, cue_sets: list[dict]) -> str:
        """The fullest rewrite within budget: the preferred cues with every part, else other cues,
        else fewer optional parts; when none fits, the shortest without its last sentences."""
        tried = []
        for n in range(len(OPTIONAL) + 1):
            for cues in cue_sets:
                text = _fill(frame, {**parts, **cues}, OPTIONAL[:n])
                if not self.budget.too_long(text):
                    return text
                tried.append(text)
        text = min(tried, key=self._overflow)
        sentences = re.split(r"(?<=\.) ", text)
        while len(sentences) > 2 and self.budget.too_long(" ".join(sentences)):
            sentences.pop()  # last resort: what a text encoder would cut anyway, at a sentence boundary
        return " ".join(sentences)

    def _overflow(self, text: str) -> int:
        return max((e.count(text) - e.limit for e in self.budget.encoders), default=0)

    # --- what goes into a rewrite -----------------------------------------------------------

    def _slots(self, request: Request, rng: random.Random) -> dict:
        """Placeholder values: both agents' names, body words and body language, and the scene."""
        a, b = self.agent(request.animal1), self.agent(request.animal2)
        moods = _data()["frames"]["moods"]
        keys = (self.roles.get(request.action_key or ""), request.labels.get("emotional_valence"), "default")
        states = next(moods[k] for k in keys if k in moods)
        slots, taken = {}, set()
        names = self.display_names(request.animal1, request.animal2)
        for letter, name, shown, state in zip("AB", (request.animal1, request.animal2), names, states):
            prefix = letter.lower()
            words = self.body(name)
            slots.update({letter: f"the {shown}", f"{letter}'s": f"the {shown}'s"})
            slots.update({f"{prefix}_{w}": words[w] for w in BODY_WORDS})
            for s in STATES:  # two different phrases: one for the cue, one for the mood sentence
                first, second = _two(words[s], taken, rng, avoid=slots.get("a_mood") if letter == "B" else None)
                slots[f"{prefix}_{s}"] = first
                if s == state:
                    slots[f"{prefix}_mood"] = second
                taken |= {first, second}
        slots.update(self._scene((a, b), (self.body(request.animal1), self.body(request.animal2)), rng))
        slots["size"] = _size_relation(a, b)
        return slots

    def _scene(self, agents: tuple, bodies: tuple[dict, dict], rng: random.Random) -> dict:
        """A place both agents can be (settings.yaml says how it is chosen), then its ground,
        debris and cover to hide behind."""
        settings = _data()["settings"]
        media = [body["medium"] for body in bodies]
        kinds = _kinds(set(media))
        swimmers = [agent for agent, medium in zip(agents, media) if agent and medium == "water"]
        known = [agent for agent in agents if agent]
        scores = {}
        for habitat, entry in settings["habitats"].items():
            if any(kind in entry for kind in kinds) and all(habitat in s.habitats for s in swimmers):
                fits = [_fit_score(habitat, agent) for agent in known]
                scores[habitat] = 2 * sum(fits) + (2 in fits)
        best = max(scores.values(), default=0)
        habitat = rng.choice(sorted(h for h, s in scores.items() if s == best)) if best > 0 else None
        entry = settings["habitats"][habitat] if habitat else settings["default"]
        away = any(m == "amphibious" and a and habitat not in a.habitats for a, m in zip(agents, media))
        if away and "shore" in entry:
            kinds = ("shore",)
        options = [(kind, place) for kind in kinds if kind in entry for place in entry[kind]["places"]]
        if not options:  # the default scene has land only
            options = [("land", place) for place in entry["land"]["places"]]
        kind, place = rng.choice(options)
        scene = entry[kind]
        debris, more_debris = rng.sample(scene["debris"], 2)
        return {"place": place, "ground": rng.choice(scene["ground"]), "debris": debris, "more_debris": more_debris,
                "hide": rng.choice(scene["hide"])}

    def _cues(self, request: Request, dim: str) -> list[str]:
        """The action's curated cues, from the first agent set that has them, else generic ones by label."""
        cues = _data()["cues"]
        for name in self.sets:
            curated = cues.get(name, {}).get(request.action_key or "", {}).get(dim)
            if curated:
                return curated
        generic = _data()["frames"]["generic"][dim]
        return generic.get(request.labels.get(LABEL_FOR[dim]) or "", generic["default"])

    def _extras(self, request: Request, slots: dict) -> list[str]:
        extras = _data()["frames"]["extras"]
        if request.dimension == "spatial":
            spatial = extras["spatial"]
            found = spatial.get(slots["size"] or "", []) + spatial.get(request.labels.get("spatial_topology") or "", [])
            return found or spatial["default"]
        if request.dimension == "emotional":
            return extras["emotional"]
        temporal = extras["temporal"]
        return temporal.get(request.labels.get("temporal_extent") or "", temporal["default"])

    def _closings(self, request: Request) -> list[str]:
        closings = _data()["frames"]["closings"][request.dimension]
        if isinstance(closings, dict):  # emotional: by valence
            return closings.get(request.labels.get("emotional_valence") or "", closings["default"])
        return closings

    # --- agents -----------------------------------------------------------------------------

    def agent(self, name: str | None):
        """The taxonomy's agent named `name` (any case, article, underscores or plural), or None."""
        if not name:
            return None
        for key in _singulars(lookup_key(name)):
            if key in self.agents:
                return self.agents[key]
        return None

    def display_names(self, first: str, second: str) -> tuple[str, str]:
        """How the rewrite calls the agents after the base prompt: their short names ("grizzly"),
        unless the two could be confused, else their names."""
        names = (lookup_key(first), lookup_key(second))
        shorts = tuple(self.body(n).get("short", key) for n, key in zip((first, second), names))
        clash = shorts[0] == shorts[1] or shorts[0] in names[1].split() or shorts[1] in names[0].split()
        return names if clash else shorts

    def body(self, name: str | None) -> dict:
        """The words for an agent's body (bodies.yaml): its plan's, then its own."""
        bodies = _data()["bodies"]
        agent = self.agent(name)
        own = bodies["agents"].get(agent.name, {}) if agent else {}
        plan = own.get("plan") or _plan_of(agent, bodies["classes"])
        return {**bodies["plans"][plan], **own}


# --- helpers ----------------------------------------------------------------------------------


def _plan_of(agent, classes: dict) -> str:
    if agent is None:
        return "creature"
    plan = classes.get(agent.klass, "creature")
    return plan.get(agent.diet, "creature") if isinstance(plan, dict) else plan


def _kinds(media: set[str]) -> tuple[str, ...]:
    """The kinds of scene (settings.yaml) where agents of these media can meet."""
    if media == {"water"}:
        return ("water",)
    if "water" in media:
        return ("shore",) if "land" in media else ("water", "shore")
    return ("land", "shore")


def _two(phrases: list[str], taken: set[str], rng: random.Random, avoid: str | None = None) -> tuple[str, str]:
    """Two different phrases, those not `taken` (by the other agent) first; the second is never `avoid`."""
    order = sorted(rng.sample(phrases, len(phrases)), key=lambda p: p in taken)
    first = order[0]
    rest = [p for p in order[1:] if p != avoid] or order[1:] or order
    return first, rest[0]


@functools.lru_cache(maxsize=None)
def _neighbours() -> dict[str, frozenset[str]]:
    """settings.yaml's neighbours, both ways."""
    table: dict[str, set[str]] = {}
    for habitat, near in _data()["settings"]["neighbours"].items():
        for other in near:
            table.setdefault(habitat, set()).add(other)
            table.setdefault(other, set()).add(habitat)
    return {h: frozenset(n) for h, n in table.items()}


def _fit_score(habitat: str, agent) -> int:
    """2 where the agent lives, 1 next to where it lives, else 0."""
    if habitat in agent.habitats:
        return 2
    return 1 if _neighbours().get(habitat, frozenset()) & agent.habitats else 0


def _size_relation(a, b) -> str | None:
    """How {A}'s size compares with {B}'s: a key of frames.yaml's spatial extras."""
    if a is None or b is None:
        return None
    diff = a.size_rank - b.size_rank
    return {2: "much_larger", 1: "larger", 0: "same", -1: "smaller", -2: "much_smaller"}[max(-2, min(2, diff))]


def _base(prompt: str) -> str:
    text = " ".join(str(prompt).split()).rstrip(". ")
    return text[:1].upper() + text[1:]


def _render(template: str, values: dict) -> str:
    def value(match: re.Match) -> str:
        try:
            return values[match.group(1)]
        except KeyError:
            raise KeyError(f"The kb template '{template}' uses {{{match.group(1)}}}, which no data file defines.") from None

    return _SLOT.sub(value, template)


def _fill(frame: str, parts: dict, dropped: tuple[str, ...]) -> str:
    """The frame with its parts; an optional [segment] goes when one of its parts is dropped or empty."""
    def optional(match: re.Match) -> str:
        names = _SLOT.findall(match.group(1))
        return "" if any(n in dropped or not parts.get(n) for n in names) else match.group(1)

    return _tidy(_render(_OPTIONAL_PART.sub(optional, frame), parts))


def _tidy(text: str) -> str:
    """One space between words, none before punctuation, a capital after each full stop."""
    text = " ".join(text.split())
    text = re.sub(r" ([,.;:!?])", r"\1", text)
    text = re.sub(r"([.!?]) ([a-z])", lambda m: f"{m.group(1)} {m.group(2).upper()}", text)
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."
