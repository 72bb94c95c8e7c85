"""The taxonomy data: actions (templates and labels) and agents (names and attributes), and
what the rarity rule knows about them.

Each agent set is a folder; two ship with the package, `animals` (the AcT2I benchmark) and
`people`. A folder of your own works the same way. Two files are required, the rest refine the
rarity rule (`rarity.py`) and are optional:

| file | holds |
|---|---|
| `actions.yaml` | the actions: template, the three semantic labels, a role, and optionally what the rule asks (`needs`, `fits`, `documented`, `friendly`) and `reciprocal` (true when the action reads the same both ways; default `words.reciprocal`) |
| `agents.csv` | the agents: `name, article, class, size, diet, habitats`, and optionally `realms` (biogeographic realms, or domains for people), `climates` (polar, cold, temperate, tropical), `medium` (land, water, both), `status` (wild, domestic, commensal, person), `group` (kin group), `hunts` (prey sizes: `large` or `small-huge`), `source`, `aliases` |
| `abilities.yaml` | what each agent can do at all (calls, kicks, stalks, ...), each member with a reason |
| `interactions.csv` | the curated table of documented interactions: `agent1, relation, agent2, source` |
| `overrides.csv` | curated corrections: `agent1, action, agent2, label, reason` |

Without `abilities.yaml` every agent can do everything; without `realms` (or `climates`) the
agents meet by habitat alone; without `hunts` an agent hunts by diet (a carnivore or omnivore animals up to its
own size, an insectivore minute ones); without `interactions.csv` nothing is documented.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

from ..errors import InputError
from ..schema import LABELS
from ..words import reciprocal as reciprocal_phrase

DATA = Path(__file__).parent / "data"
SIZES = ("minute", "tiny", "small", "medium", "large", "huge")
DIETS = ("carnivore", "omnivore", "herbivore", "insectivore")
ROLES = ("predation", "flight", "defence", "rivalry", "social", "carry", "feed", "signal", "race")
STATUSES = ("wild", "domestic", "commensal", "person")
REALMS = ("afrotropical", "palearctic", "nearctic", "neotropical", "indomalayan", "australasian", "antarctic", "marine")
CLIMATES = ("polar", "cold", "temperate", "tropical")
WORLDWIDE = ("afrotropical", "palearctic", "nearctic", "neotropical", "indomalayan", "australasian")  # inhabited land
# Relations of interactions.csv (an action key is also a relation: exactly that behaviour).
RELATIONS = {
    "preys_on": "hunts and eats",
    "young_of": "takes the young of",
    "eggs_of": "takes the eggs or nestlings of",
    "defends": "fights off",
    "competes": "competes with",
    "dominates": "dominates and drives off",
    "mobs": "mobs",
    "companions": "lives with",
    "associates": "associates with",
    "plays": "plays with",
    "follows": "follows",
    "carries": "carries",
    "feeds": "feeds",
    "courts": "courts",
    "warns": "warns",
}
SYMMETRIC = {"competes", "companions", "associates", "plays", "courts"}
HOSTILE = {"preys_on", "young_of", "eggs_of", "defends", "competes", "dominates", "mobs"}
# What an action asks when its actions.yaml entry gives only a role (custom folders, old files).
ROLE_DEFAULTS = {
    "predation": {"fits": ("hunter",), "documented": ("preys_on",)},
    "flight": {"fits": ("threatened",), "documented": ("~preys_on", "~defends", "competes", "~mobs")},
    "defence": {"fits": ("threatened", "young_threat"), "documented": ("~preys_on", "defends", "~young_of")},
    "rivalry": {"fits": ("rival",), "documented": ("competes",)},
    "social": {"fits": ("kin", "companion"), "documented": ("companions",), "friendly": True},
    "carry": {"fits": ("larger:1 & kin", "larger:1 & companion"), "documented": ("carries",), "friendly": True},
    "feed": {"fits": ("not_smaller & kin", "not_smaller & companion"), "documented": ("feeds",), "friendly": True},
    "signal": {"fits": ("kin", "companion", "rival"), "documented": ("companions", "warns")},
    "race": {"fits": ("any",), "documented": ()},
}
# The conditions an action's `fits` may combine (see rarity.py for what each means).
FIT_KINDS = ("any", "hunter", "prey", "threatened", "young_threat", "defender", "rival", "mobber", "mobbed",
             "kin", "companion", "similar", "same_class", "not_smaller", "eavesdropper")


@dataclass(frozen=True)
class Action:
    key: str
    template: str  # "{a} attacking {b}"
    emotional_valence: str
    spatial_topology: str
    temporal_extent: str
    role: str
    needs: tuple[str, ...] = ()  # abilities {a} must have
    fits: tuple[str, ...] = ()  # alternatives, each "kind & kind"; one must hold for a plausible pair
    documented: tuple[str, ...] = ()  # relations that document it: "preys_on", "~preys_on" ({b} is agent1), "preys_on?chases"
    friendly: bool = False  # affiliative: never between enemies
    reciprocal: bool = False  # reads the same both ways: no role-reversed question (default: words.reciprocal)

    @property
    def phrase(self) -> str:
        """The words between the agents: "{a} carrying {b} on its back" -> "carrying"."""
        return self.template.split("{a}", 1)[1].split("{b}", 1)[0].strip()

    def prompt(self, a: "Agent", b: "Agent") -> str:
        return self.template.format(a=a.with_article, b=b.with_article)


@dataclass(frozen=True)
class Agent:
    name: str
    article: str
    klass: str  # "class" in the data file
    size: str
    diet: str
    habitats: frozenset[str]
    realms: frozenset[str] = frozenset()  # empty: unknown, the agents meet by habitat alone
    climates: frozenset[str] = frozenset()  # polar, cold, temperate, tropical; empty: unknown
    medium: str = "land"  # land, water (never leaves it) or both
    status: str = "wild"
    group: str = ""  # kin group (family level); "" means the class
    hunts: str | None = None  # the largest prey size it takes; None: it does not hunt
    hunts_from: str = "minute"  # the smallest prey size it takes
    abilities: frozenset[str] | None = None  # None: no abilities.yaml, it can do everything
    source: str = ""
    aliases: tuple[str, ...] = ()  # other names it goes by ("bee", "killer whale")
    folder: str = field(default="", compare=False, repr=False)  # the agent set it was loaded from

    @property
    def with_article(self) -> str:
        return f"{self.article} {self.name}"

    @property
    def size_rank(self) -> int:
        return SIZES.index(self.size)

    @property
    def slug(self) -> str:
        return self.name.replace(" ", "_").replace("-", "_")

    @property
    def kin(self) -> str:
        return self.group or self.klass

    def can(self, ability: str) -> bool:
        return self.abilities is None or ability in self.abilities


@dataclass(frozen=True)
class Ability:
    name: str
    means: str
    source: str
    members: dict  # agent name -> reason ("" when it comes from the class)
    lacking: dict  # agent name -> reason it lacks it (the `except` entries)


@dataclass(frozen=True)
class Interaction:
    agent1: str
    relation: str
    agent2: str
    source: str


@dataclass(frozen=True)
class Override:
    agent1: str
    action: str
    agent2: str
    label: str
    reason: str


@dataclass(frozen=True)
class Taxonomy:
    name: str
    actions: tuple[Action, ...]
    agents: tuple[Agent, ...]
    abilities: dict = field(default_factory=dict)  # name -> Ability
    interactions: tuple[Interaction, ...] = ()
    overrides: tuple[Override, ...] = ()
    folder: str = ""


def agent_folder(agents: str | Path) -> Path:
    """`animals`, `people` or a folder holding actions.yaml and agents.csv."""
    folder = DATA / str(agents) if (DATA / str(agents)).is_dir() else Path(agents)
    if not (folder / "actions.yaml").is_file() or not (folder / "agents.csv").is_file():
        shipped = ", ".join(sorted(p.name for p in DATA.iterdir() if p.is_dir()))
        raise InputError(
            f"Unknown agent set '{agents}'; use one of {shipped} or a folder with actions.yaml and agents.csv."
        )
    return folder


def load_taxonomy(agents: str | Path = "animals") -> Taxonomy:
    folder = agent_folder(agents).resolve()
    files = [folder / n for n in ("actions.yaml", "agents.csv", "abilities.yaml", "interactions.csv", "overrides.csv")]
    stamp = tuple((f.stat().st_mtime_ns, f.stat().st_size) if f.is_file() else None for f in files)
    return _load(str(folder), stamp)


@lru_cache(maxsize=32)
def _load(folder_name: str, stamp: tuple) -> Taxonomy:  # noqa: ARG001 - the stamp keys the cache on file changes
    folder = Path(folder_name)
    actions = tuple(_load_actions(folder / "actions.yaml"))
    abilities = _load_abilities(folder / "abilities.yaml") if (folder / "abilities.yaml").is_file() else None
    agent_list = tuple(_load_agents(folder / "agents.csv", abilities, folder_name))
    names = {a.name for a in agent_list}
    if abilities is not None:
        for ability in abilities.values():
            for name in list(ability.members) + list(ability.lacking):
                if name not in names:
                    raise InputError(f"{folder / 'abilities.yaml'}: ability '{ability.name}' names '{name}', "
                                     "which is not in agents.csv; fix the name or add the agent.")
        for action in actions:
            for need in action.needs:
                if need not in abilities:
                    raise InputError(f"{folder / 'actions.yaml'}: action '{action.key}' needs '{need}', which "
                                     f"abilities.yaml does not define; define it or remove it from needs.")
    for action in actions:
        for spec in action.documented:
            for condition in filter(None, spec.lstrip("~").partition("?")[2].split("&")):
                if condition in FIT_KINDS or abilities is None or condition in abilities:
                    continue
                raise InputError(f"{folder / 'actions.yaml'}: action '{action.key}' documents '{spec}', but "
                                 f"'{condition}' is neither a fit kind nor an ability of abilities.yaml.")
    keys = {a.key for a in actions}
    interactions = tuple(_load_interactions(folder / "interactions.csv", names, keys)) \
        if (folder / "interactions.csv").is_file() else ()
    overrides = tuple(_load_overrides(folder / "overrides.csv", names, keys)) \
        if (folder / "overrides.csv").is_file() else ()
    return Taxonomy(folder.name, actions, agent_list, abilities or {}, interactions, overrides, folder_name)


def _load_actions(path: Path) -> list[Action]:
    items = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(items, list) or not items:
        raise InputError(f"{path}: must be a non-empty YAML list of actions.")
    actions, keys = [], set()
    fields = ("key", "template", "emotional_valence", "spatial_topology", "temporal_extent", "role")
    for i, item in enumerate(items, 1):
        if not isinstance(item, dict):
            raise InputError(f"{path}: action {i} must be a mapping with {', '.join(fields)}.")
        missing = [f for f in fields if not item.get(f)]
        if missing:
            raise InputError(f"{path}: action {i} ({item.get('key', '?')}) lacks {', '.join(missing)}.")
        base = {f: str(item[f]) for f in fields}
        role = base["role"]
        if role not in ROLES:
            raise InputError(f"{path}: action '{base['key']}' has role '{role}'; expected one of {', '.join(ROLES)}.")
        defaults = ROLE_DEFAULTS[role]
        lists = {}
        for name in ("needs", "fits", "documented"):
            value = item.get(name, defaults.get(name, ()))
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v.strip() for v in value):
                raise InputError(f"{path}: action '{base['key']}' {name} must be a list of words.")
            lists[name] = tuple(v.strip() for v in value)
        reciprocal = item.get("reciprocal")
        if reciprocal is not None and not isinstance(reciprocal, bool):
            raise InputError(f"{path}: action '{base['key']}' reciprocal must be true or false, got {reciprocal!r}.")
        action = Action(**base, **lists, friendly=bool(item.get("friendly", defaults.get("friendly", False))),
                        reciprocal=reciprocal_phrase(None, base["template"]) if reciprocal is None else reciprocal)
        for label in ("emotional_valence", "spatial_topology", "temporal_extent"):
            if getattr(action, label) not in LABELS[label]:
                raise InputError(f"{path}: action '{action.key}' has {label} '{getattr(action, label)}'; expected one of {', '.join(LABELS[label])}.")
        if "{a}" not in action.template or "{b}" not in action.template:
            raise InputError(f"{path}: action '{action.key}' template must contain {{a}} and {{b}}, got '{action.template}'.")
        for alternative in action.fits:
            for kind in (k.strip() for k in alternative.split("&")):
                name = kind.split(":", 1)[0]
                if name not in FIT_KINDS and name not in ("larger", "b"):
                    raise InputError(f"{path}: action '{action.key}' fits '{kind}'; expected kinds among "
                                     f"{', '.join(FIT_KINDS)}, larger:N or b:ABILITY.")
        for spec in action.documented:
            relation = spec.lstrip("~").partition("?")[0]
            if relation not in RELATIONS:
                raise InputError(f"{path}: action '{action.key}' documents '{spec}'; expected relations among "
                                 f"{', '.join(RELATIONS)}, optionally with '~' (reversed) or '?ability'.")
        if action.key in keys:
            raise InputError(f"{path}: action key '{action.key}' appears twice.")
        keys.add(action.key)
        actions.append(action)
    return actions


def status_is_animal(row: dict) -> bool:
    """People's `realms` are domains (sport, family ...), not biogeographic realms."""
    return (row.get("status") or "wild").strip() != "person"


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(";") if v.strip()]


def _load_agents(path: Path, abilities: dict | None, folder: str) -> list[Agent]:
    agents, names = [], set()
    with open(path, newline="", encoding="utf-8") as fh:
        for i, row in enumerate(csv.DictReader(fh), 1):
            where = f"{path}: row {i} ({row.get('name') or '?'})"
            if None in row:
                raise InputError(f"{where}: has more fields than the header; quote text that holds commas.")
            if row.get("article") not in ("a", "an"):
                raise InputError(f"{where}: article must be 'a' or 'an', got '{row.get('article')}'.")
            if row.get("size") not in SIZES:
                raise InputError(f"{where}: size must be one of {', '.join(SIZES)}, got '{row.get('size')}'.")
            if row.get("diet") not in DIETS:
                raise InputError(f"{where}: diet must be one of {', '.join(DIETS)}, got '{row.get('diet')}'.")
            habitats = frozenset(_split(row.get("habitats")))
            if not row.get("name") or not row.get("class") or not habitats:
                raise InputError(f"{where}: name, class and habitats must not be empty.")
            if row["name"] in names:
                raise InputError(f"{where}: the name '{row['name']}' appears twice.")
            realms = set()
            for realm in _split(row.get("realms")):
                realms |= set(WORLDWIDE) if realm == "worldwide" else {realm}
            climates = set(_split(row.get("climates")))
            if climates - set(CLIMATES):
                raise InputError(f"{where}: climates must be among {', '.join(CLIMATES)}, got '{row.get('climates')}'.")
            if realms - set(REALMS) and status_is_animal(row):
                raise InputError(f"{where}: realms must be among {', '.join(REALMS)} or worldwide, got '{row.get('realms')}'.")
            medium = (row.get("medium") or "land").strip()
            if medium not in ("land", "water", "both"):
                raise InputError(f"{where}: medium must be land, water or both, got '{medium}'.")
            status = (row.get("status") or "wild").strip()
            if status not in STATUSES:
                raise InputError(f"{where}: status must be one of {', '.join(STATUSES)}, got '{status}'.")
            hunts_from = "minute"
            if "hunts" in row:
                hunts = (row.get("hunts") or "").strip() or None
                if hunts and "-" in hunts:
                    hunts_from, _, hunts = hunts.partition("-")
                if hunts is not None and (hunts not in SIZES or hunts_from not in SIZES or SIZES.index(hunts_from) > SIZES.index(hunts)):
                    raise InputError(f"{where}: hunts must be empty, a size ({', '.join(SIZES)}) or a range such as "
                                     f"small-huge, got '{row.get('hunts')}'.")
            else:  # the old rule: a carnivore or omnivore hunts up to its size, an insectivore minute prey
                hunts = {"carnivore": row["size"], "omnivore": row["size"], "insectivore": "minute"}.get(row["diet"])
            names.add(row["name"])
            has = None if abilities is None else frozenset(n for n, ab in abilities.items() if row["name"] in ab.members)
            agents.append(Agent(
                row["name"], row["article"], row["class"], row["size"], row["diet"], habitats,
                realms=frozenset(realms), climates=frozenset(_split(row.get("climates"))), medium=medium, status=status, group=(row.get("group") or "").strip(), hunts=hunts, hunts_from=hunts_from,
                abilities=has, source=(row.get("source") or "").strip(),
                aliases=tuple(a.lower() for a in _split(row.get("aliases"))), folder=folder,
            ))
    if len(agents) < 2:
        raise InputError(f"{path}: needs at least two agents.")
    seen = {a.name: a.name for a in agents}
    for agent in agents:
        for alias in agent.aliases:
            if seen.setdefault(alias, agent.name) != agent.name:
                raise InputError(f"{path}: '{alias}' names both {seen[alias]} and {agent.name}; an alias must be unique.")
    return agents


def _load_abilities(path: Path) -> dict[str, Ability]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not data:
        raise InputError(f"{path}: must be a YAML mapping of ability name to its description.")
    out = {}
    classes_of = _classes(path.parent / "agents.csv")
    for name, spec in data.items():
        if not isinstance(spec, dict) or not spec.get("means") or not spec.get("source"):
            raise InputError(f"{path}: ability '{name}' needs 'means' and 'source'.")
        members = {agent: "" for agent, klass in classes_of.items() if klass in (spec.get("classes") or [])}
        for key in ("agents", "except"):
            entries = spec.get(key) or {}
            if not isinstance(entries, dict) or not all(isinstance(v, str) and v.strip() for v in entries.values()):
                raise InputError(f"{path}: ability '{name}' {key} must map each agent to its reason.")
        members.update(spec.get("agents") or {})
        lacking = dict(spec.get("except") or {})
        for agent in lacking:
            members.pop(agent, None)
        out[str(name)] = Ability(str(name), str(spec["means"]), str(spec["source"]), members, lacking)
    return out


def _classes(agents_csv: Path) -> dict[str, str]:
    with open(agents_csv, newline="", encoding="utf-8") as fh:
        return {row.get("name"): row.get("class") for row in csv.DictReader(fh)}


def _rows(path: Path):
    """CSV rows without comment lines (those starting with '#')."""
    text = "".join(line for line in path.read_text(encoding="utf-8").splitlines(keepends=True) if not line.startswith("#"))
    return enumerate(csv.DictReader(io.StringIO(text)), 1)


def _load_interactions(path: Path, names: set[str], keys: set[str]) -> list[Interaction]:
    out, seen = [], set()
    for i, row in _rows(path):
        where = f"{path}: row {i} ({row.get('agent1') or '?'}, {row.get('relation') or '?'}, {row.get('agent2') or '?'})"
        a, relation, b, source = (str(row.get(k) or "").strip() for k in ("agent1", "relation", "agent2", "source"))
        for name in (a, b):
            if name not in names:
                raise InputError(f"{where}: '{name}' is not in agents.csv; fix the name or add the agent.")
        if relation not in RELATIONS and relation not in keys:
            raise InputError(f"{where}: relation '{relation}' is neither one of {', '.join(RELATIONS)} nor an action key.")
        if not source:
            raise InputError(f"{where}: give a source note (where the interaction is documented).")
        if a == b:
            raise InputError(f"{where}: an agent cannot interact with itself here.")
        if (a, relation, b) in seen:
            raise InputError(f"{where}: appears twice.")
        seen.add((a, relation, b))
        out.append(Interaction(a, relation, b, source))
    return out


def _load_overrides(path: Path, names: set[str], keys: set[str]) -> list[Override]:
    out, seen = [], set()
    for i, row in _rows(path):
        a, action, b, label, reason = (str(row.get(k) or "").strip() for k in ("agent1", "action", "agent2", "label", "reason"))
        where = f"{path}: row {i} ({a or '?'}, {action or '?'}, {b or '?'})"
        for name in (a, b):
            if name not in names:
                raise InputError(f"{where}: '{name}' is not in agents.csv; fix the name.")
        if action not in keys:
            raise InputError(f"{where}: '{action}' is not an action key of actions.yaml.")
        if label not in LABELS["rarity_label"]:
            raise InputError(f"{where}: label '{label}' must be one of {', '.join(LABELS['rarity_label'])}.")
        if not reason:
            raise InputError(f"{where}: give the reason for the correction.")
        if (a, action, b) in seen:
            raise InputError(f"{where}: appears twice.")
        seen.add((a, action, b))
        out.append(Override(a, action, b, label, reason))
    return out
