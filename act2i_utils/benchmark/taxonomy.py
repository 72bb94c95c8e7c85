"""The taxonomy data: actions (templates and labels) and agents (names and attributes).

Each agent set is a folder with `actions.yaml` and `agents.csv`; two ship with the package,
`animals` (the AcT2I benchmark) and `people`. A folder of your own with the same two files
works the same way.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..errors import InputError
from ..schema import LABELS

DATA = Path(__file__).parent / "data"
SIZES = ("minute", "tiny", "small", "medium", "large", "huge")
DIETS = ("carnivore", "omnivore", "herbivore", "insectivore")
ROLES = ("predation", "flight", "defence", "rivalry", "social", "carry", "feed", "signal")


@dataclass(frozen=True)
class Action:
    key: str
    template: str  # "{a} attacking {b}"
    emotional_valence: str
    spatial_topology: str
    temporal_extent: str
    role: str

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

    @property
    def with_article(self) -> str:
        return f"{self.article} {self.name}"

    @property
    def size_rank(self) -> int:
        return SIZES.index(self.size)

    @property
    def slug(self) -> str:
        return self.name.replace(" ", "_").replace("-", "_")


@dataclass(frozen=True)
class Taxonomy:
    name: str
    actions: tuple[Action, ...]
    agents: tuple[Agent, ...]


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
    folder = agent_folder(agents)
    actions = tuple(_load_actions(folder / "actions.yaml"))
    agent_list = tuple(_load_agents(folder / "agents.csv"))
    return Taxonomy(folder.name, actions, agent_list)


def _load_actions(path: Path) -> list[Action]:
    items = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(items, list) or not items:
        raise InputError(f"{path}: must be a non-empty YAML list of actions.")
    actions, keys = [], set()
    for i, item in enumerate(items, 1):
        fields = ("key", "template", "emotional_valence", "spatial_topology", "temporal_extent", "role")
        if not isinstance(item, dict):
            raise InputError(f"{path}: action {i} must be a mapping with {', '.join(fields)}.")
        missing = [f for f in fields if not item.get(f)]
        if missing:
            raise InputError(f"{path}: action {i} ({item.get('key', '?')}) lacks {', '.join(missing)}.")
        action = Action(**{f: str(item[f]) for f in fields})
        for label in ("emotional_valence", "spatial_topology", "temporal_extent"):
            if getattr(action, label) not in LABELS[label]:
                raise InputError(f"{path}: action '{action.key}' has {label} '{getattr(action, label)}'; expected one of {', '.join(LABELS[label])}.")
        if action.role not in ROLES:
            raise InputError(f"{path}: action '{action.key}' has role '{action.role}'; expected one of {', '.join(ROLES)}.")
        if "{a}" not in action.template or "{b}" not in action.template:
            raise InputError(f"{path}: action '{action.key}' template must contain {{a}} and {{b}}, got '{action.template}'.")
        if action.key in keys:
            raise InputError(f"{path}: action key '{action.key}' appears twice.")
        keys.add(action.key)
        actions.append(action)
    return actions


def _load_agents(path: Path) -> list[Agent]:
    agents, names = [], set()
    with open(path, newline="", encoding="utf-8") as fh:
        for i, row in enumerate(csv.DictReader(fh), 1):
            where = f"{path}: row {i} ({row.get('name') or '?'})"
            if row.get("article") not in ("a", "an"):
                raise InputError(f"{where}: article must be 'a' or 'an', got '{row.get('article')}'.")
            if row.get("size") not in SIZES:
                raise InputError(f"{where}: size must be one of {', '.join(SIZES)}, got '{row.get('size')}'.")
            if row.get("diet") not in DIETS:
                raise InputError(f"{where}: diet must be one of {', '.join(DIETS)}, got '{row.get('diet')}'.")
            habitats = frozenset(h.strip() for h in (row.get("habitats") or "").split(";") if h.strip())
            if not row.get("name") or not row.get("class") or not habitats:
                raise InputError(f"{where}: name, class and habitats must not be empty.")
            if row["name"] in names:
                raise InputError(f"{where}: the name '{row['name']}' appears twice.")
            names.add(row["name"])
            agents.append(Agent(row["name"], row["article"], row["class"], row["size"], row["diet"], habitats))
    if len(agents) < 2:
        raise InputError(f"{path}: needs at least two agents.")
    return agents
