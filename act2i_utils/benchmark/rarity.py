"""The rarity rule: how common an (agent1, action, agent2) interaction is in nature.

Three questions, answered from the agent set's data files (see `taxonomy.py`):

1. **Can the agent do it at all?** The action names the abilities its first agent needs
   (`needs` in actions.yaml, members in abilities.yaml): snakes give no calls, an ostrich does
   not pounce, a penguin does not kick. Without one, the interaction is **rare**.
2. **Is it documented?** The curated table `interactions.csv` lists documented interactions
   (lion preys on zebra, zebra defends itself against lion, crow mobs owl, dog and cat are
   companions ...), each with a source note; each action says which relations document it
   (`documented`). A documented interaction is **common**.
3. **Do they meet, and does the action fit them?** They meet when they share a biogeographic
   realm *and* a habitat (Afrotropical savanna, Palearctic forest ...; domestic animals meet each
   other and the animals that live with people). The action fits when one of its relations holds
   (`fits`): a predator that hunts prey of that size, a real threat for flight and defence, kin or
   companions for affiliation. Both: **plausible**; otherwise **rare**.

`overrides.csv` corrects any label, with a reason. The label depends only on the three names and
the data files, never on row order or a seed.

    >>> from act2i_utils.benchmark import rarity_of
    >>> rarity_of("cheetah", "chasing", "gazelle").label
    'common'
    >>> rarity_of("penguin", "kick", "orca").label
    'rare'
"""

from __future__ import annotations

from typing import NamedTuple

from ..errors import InputError
from .taxonomy import DATA, HOSTILE, RELATIONS, SIZES, SYMMETRIC, Action, Agent, Taxonomy, agent_folder, load_taxonomy

RARITY_LEVELS = ("common", "plausible", "rare")
REALM_NAMES = {
    "afrotropical": "Afrotropical", "palearctic": "Palearctic", "nearctic": "Nearctic", "neotropical": "Neotropical",
    "indomalayan": "Indomalayan", "australasian": "Australasian", "antarctic": "Antarctic", "marine": "marine",
}
FIT_WORDS = {
    "any": "any two agents that meet",
    "hunter": "{a} to hunt prey of {b}'s size",
    "prey": "{b} to hunt prey of {a}'s size",
    "threatened": "{b} to be a real threat to {a}",
    "young_threat": "{b} to threaten {a}'s young",
    "defender": "{a} to be threatened by {b} and larger than it",
    "rival": "rivals (same class and size, and kin or hunters of the same prey that do not hunt each other)",
    "mobber": "{a} to mob predators that threaten it",
    "mobbed": "{b} to mob {a} as a threat",
    "kin": "kin",
    "companion": "companions kept by people",
    "similar": "similar sizes",
    "same_class": "animals of one class",
    "not_smaller": "{a} no smaller than {b}",
    "eavesdropper": "{b} to be a bird, mammal or reptile that heeds alarm calls",
}


class Verdict(NamedTuple):
    """A rarity label and the sentence saying why."""

    label: str
    reason: str


class Knowledge:
    """Everything the rule needs about one agent set, indexed once."""

    def __init__(self, tax: Taxonomy):
        self.tax = tax
        self.agents = {a.name: a for a in tax.agents}
        self.named = {alias: a for a in tax.agents for alias in a.aliases} | self.agents  # names win over aliases
        self.actions = {a.key: a for a in tax.actions}
        self.abilities = tax.abilities
        self.overrides = {(o.agent1, o.action, o.agent2): o for o in tax.overrides}
        self.hostile: dict[frozenset, str] = {}
        self.over: set[tuple[str, str]] = set()  # (a, b): a preys on or dominates b
        by_relation: dict[str, list] = {}
        self.facts: dict[tuple[str, str, str], object] = {}  # (a, action key, b) -> the documenting row
        for row in tax.interactions:
            if row.relation in self.actions:
                self.facts.setdefault((row.agent1, row.relation, row.agent2), row)
                continue
            by_relation.setdefault(row.relation, []).append(row)
            if row.relation in ("preys_on", "dominates"):
                self.over.add((row.agent1, row.agent2))
            if row.relation in HOSTILE:
                self.hostile.setdefault(frozenset((row.agent1, row.agent2)), f"{row.agent1} {RELATIONS[row.relation]} "
                                        f"{row.agent2}: {row.source}")
        for action in tax.actions:
            for spec in action.documented:
                reverse = spec.startswith("~")
                relation, _, condition = spec.lstrip("~").partition("?")
                for row in by_relation.get(relation, ()):
                    pairs = [(row.agent2, row.agent1)] if reverse else [(row.agent1, row.agent2)]
                    if relation in SYMMETRIC:
                        pairs = [(row.agent1, row.agent2), (row.agent2, row.agent1)]
                    for a, b in pairs:
                        if not all(self.condition(c, self.agents[a], self.agents[b]) for c in condition.split("&") if c):
                            continue
                        self.facts.setdefault((a, action.key, b), row)
        self._meet: dict[tuple[str, str], bool] = {}
        self.grouped = None  # the builder's pairs by label, filled on first build

    def condition(self, condition: str, a: Agent, b: Agent) -> bool:
        """A documented relation's condition: an ability of `a`, or a fit kind of the pair."""
        if condition in self.abilities or condition not in FIT_WORDS:
            return a.can(condition)
        return self.holds(condition, a, b)

    # -- the three questions -------------------------------------------------------------
    def lacks(self, a: Agent, action: Action) -> str | None:
        """The first ability of `action.needs` that `a` lacks, or None."""
        for need in action.needs:
            if not a.can(need):
                return need
        return None

    def meet(self, a: Agent, b: Agent) -> bool:
        key = (a.name, b.name)
        if key not in self._meet:
            self._meet[key] = _meet(a, b)
        return self._meet[key]

    def fits(self, action: Action, a: Agent, b: Agent) -> bool:
        if action.friendly and self.enemies(a, b):
            return False
        return any(all(self.holds(kind.strip(), a, b) for kind in alt.split("&")) for alt in action.fits)

    def masters(self, a: Agent, b: Agent) -> bool:
        """`a` is documented to prey on or dominate `b`."""
        return (a.name, b.name) in self.over

    def enemies(self, a: Agent, b: Agent) -> str | None:
        documented = self.hostile.get(frozenset((a.name, b.name)))
        if documented:
            return documented
        if _hunts(a, b):
            return f"{a.name} hunts prey of {b.name}'s size"
        if _hunts(b, a):
            return f"{b.name} hunts prey of {a.name}'s size"
        return None

    def holds(self, kind: str, a: Agent, b: Agent) -> bool:
        name, _, arg = kind.partition(":")
        if name == "any":
            return True
        if name == "hunter":  # and b is not a documented killer or master of a (a cheetah does not hunt hyenas)
            return _hunts(a, b) and not self.masters(b, a)
        if name == "prey":
            return _hunts(b, a)
        if name == "threatened":
            return _hunts(b, a) or (b.can("dangerous") and "dangerous" in self.abilities and b.size_rank >= a.size_rank)
        if name == "young_threat":
            return _hunts_size(b, _young(a))
        if name == "defender":
            return a.size_rank > b.size_rank and (_hunts(b, a) or _hunts_size(b, _young(a)))
        if name == "rival":  # the same guild: kin, or hunters of vertebrates of about the same size
            if self.masters(b, a):
                return False
            return a.klass == b.klass and abs(a.size_rank - b.size_rank) <= 1 and (a.kin == b.kin or (
                a.diet == b.diet and a.hunts is not None and b.hunts is not None and SIZES.index(a.hunts) >= 1
                and SIZES.index(b.hunts) >= 1 and abs(SIZES.index(a.hunts) - SIZES.index(b.hunts)) <= 1
                and not _hunts(a, b) and not _hunts(b, a)))
        if name == "mobber":
            return "mobs" in self.abilities and a.can("mobs") and (_hunts(b, a) or _hunts_size(b, _young(a)))
        if name == "mobbed":
            return "mobs" in self.abilities and b.can("mobs") and (_hunts(a, b) or _hunts_size(a, _young(b)))
        if name == "kin":
            return a.kin == b.kin
        if name == "companion":
            return a.status == b.status and a.status in ("domestic", "person") and a.klass == b.klass
        if name == "similar":
            return abs(a.size_rank - b.size_rank) <= 1
        if name == "same_class":
            return a.klass == b.klass
        if name == "not_smaller":
            return a.size_rank >= b.size_rank
        if name == "larger":
            return a.size_rank - b.size_rank >= int(arg or 1)
        if name == "eavesdropper":
            return b.klass in ("mammal", "bird", "reptile")
        if name == "b":
            return b.can(arg)
        raise ValueError(f"unknown fit kind '{kind}'")

    # -- the verdict ---------------------------------------------------------------------
    def label(self, a: Agent, action: Action, b: Agent) -> str:
        """The label alone (the builder's fast path; `judge` gives the same label with its reason)."""
        override = self.overrides.get((a.name, action.key, b.name))
        if override:
            return override.label
        if self.lacks(a, action):
            return "rare"
        if (a.name, action.key, b.name) in self.facts:
            return "common"
        if not self.meet(a, b) or not self.fits(action, a, b):
            return "rare"
        return "plausible"

    def judge(self, a: Agent, action: Action, b: Agent) -> Verdict:
        override = self.overrides.get((a.name, action.key, b.name))
        if override:
            return Verdict(override.label, f"curated override: {override.reason}")
        need = self.lacks(a, action)
        if need:
            ability = self.abilities[need]
            why = ability.lacking.get(a.name) or ability.source
            return Verdict("rare", f"{a.with_article} cannot do it: '{action.phrase}' needs one that {ability.means}, "
                                   f"and {a.with_article} does not ({why})")
        row = self.facts.get((a.name, action.key, b.name))
        if row:
            if row.relation in self.actions:
                what = f"{row.agent1} {self.actions[row.relation].phrase} {row.agent2}"
            else:
                what = f"{row.agent1} {RELATIONS[row.relation]} {row.agent2}"
            return Verdict("common", f"documented ({what}): {row.source}")
        if not self.meet(a, b):
            return Verdict("rare", f"they do not meet ({_apart(a, b)}): {_where(a)}; {_where(b)}")
        if action.friendly:
            enemies = self.enemies(a, b)
            if enemies:
                return Verdict("rare", f"they meet ({_shared(a, b)}), but '{action.phrase}' is affiliative and they are "
                                       f"enemies ({enemies})")
        holding = [alt for alt in action.fits if all(self.holds(k.strip(), a, b) for k in alt.split("&"))]
        if not holding:
            wanted = " or ".join(_fit_words(alt, a, b) for alt in action.fits)
            return Verdict("rare", f"they meet ({_shared(a, b)}), but '{action.phrase}' needs {wanted}, and "
                                   f"{_facts(a)}; {_facts(b)}")
        return Verdict("plausible", f"they meet ({_shared(a, b)}) and it fits ({_fit_words(holding[0], a, b)}), "
                                    f"but no documented case is in the curated table")


def _young(agent: Agent) -> int:
    """The size rank of an agent's young: one step down, at least tiny (eggs and chicks of small birds)."""
    return max(1, agent.size_rank - 1)


def _hunts_size(a: Agent, rank: int) -> bool:
    return a.hunts is not None and SIZES.index(a.hunts_from) <= rank <= SIZES.index(a.hunts)


def _hunts(a: Agent, b: Agent) -> bool:
    """`a` takes prey of `b`'s size, and `b` is not too small to be worth it: at most three size
    steps below `a` (a lion may take a mouse, not a beetle), unless small prey is all `a` takes
    (a walrus eats clams, an anteater ants)."""
    return _hunts_size(a, b.size_rank) and (a.size_rank - b.size_rank <= 3 or SIZES.index(a.hunts) <= 1)


def _prey_range(agent: Agent) -> str:
    if agent.hunts_from == "minute":
        return f"up to {agent.hunts} size"
    return f"of {agent.hunts_from} to {agent.hunts} size" if agent.hunts_from != agent.hunts else f"of {agent.hunts} size"


def _meet(a: Agent, b: Agent) -> bool:
    """They share a realm and a climate (when both have them) and a habitat, and neither lives only
    in water while the other lives only on land; domestic animals meet each other and the
    commensals that live with people wherever they are."""
    return _apart(a, b) is None


def _with_people(a: Agent, b: Agent) -> bool:
    return (a.status == "domestic" and b.status in ("domestic", "commensal")) or (
        b.status == "domestic" and a.status == "commensal")


def _apart(a: Agent, b: Agent) -> str | None:
    """What keeps two agents apart (None when they meet)."""
    if _with_people(a, b):
        return None
    people = a.status == "person" or b.status == "person"
    if a.realms and b.realms and not a.realms & b.realms:
        return "no shared domain" if people else "no shared realm"
    if a.climates and b.climates and not a.climates & b.climates:
        return f"no shared climate: {', '.join(sorted(a.climates))} against {', '.join(sorted(b.climates))}"
    if {a.medium, b.medium} == {"land", "water"}:  # a whale never meets a fox
        return "one lives only in water, the other only on land"
    if not a.habitats & b.habitats:
        return "no shared setting" if people else "no shared habitat"
    return None


def _realms(agent: Agent) -> str:
    return ", ".join(REALM_NAMES.get(r, r) for r in sorted(agent.realms, key=lambda r: list(REALM_NAMES).index(r)
                                                          if r in REALM_NAMES else 99))


def _where(agent: Agent) -> str:
    if agent.status == "person":
        return f"{agent.with_article} is found in {', '.join(sorted(agent.realms)) or 'its'} settings: {', '.join(sorted(agent.habitats))}"
    if agent.status == "domestic":
        return f"{agent.with_article} lives with people ({', '.join(sorted(agent.habitats))})"
    realms = f"{_realms(agent)}: " if agent.realms else ""
    return f"{agent.with_article} lives in {realms}{', '.join(sorted(agent.habitats))}"


def _shared(a: Agent, b: Agent) -> str:
    if _with_people(a, b):
        return "both live with people"
    realms = a.realms & b.realms
    where = f"{', '.join(REALM_NAMES.get(r, r) for r in sorted(realms))} " if realms else ""
    return f"{where}{', '.join(sorted(a.habitats & b.habitats))}".strip()


def _facts(agent: Agent) -> str:
    if agent.status == "person":
        return f"{agent.with_article} belongs to the {agent.kin} group"
    hunts = f"hunts prey {_prey_range(agent)}" if agent.hunts else "does not hunt"
    return f"{agent.with_article} is a {agent.size} {agent.diet} {agent.klass} ({agent.kin}) that {hunts}"


def _fit_words(alternative: str, a: Agent, b: Agent) -> str:
    words = []
    for kind in (k.strip() for k in alternative.split("&")):
        name, _, arg = kind.partition(":")
        if name == "larger":
            words.append(f"{a.name} at least {arg or 1} size step(s) larger than {b.name}")
        elif name == "b":
            words.append(f"{b.name} to be one that {arg.replace('_', ' ')}")
        elif name == "rival" and a.status == "person":
            words.append("rivals (the same sport or group)")
        else:
            words.append(FIT_WORDS.get(name, name).format(a=a.name, b=b.name))
    return " and ".join(words)


# -- public entry points -------------------------------------------------------------------
def knowledge(tax: Taxonomy) -> Knowledge:
    return _knowledge_for(tax)


_CACHE: dict[int, tuple[Taxonomy, Knowledge]] = {}


def _knowledge_for(tax: Taxonomy) -> Knowledge:
    hit = _CACHE.get(id(tax))
    if hit is None or hit[0] is not tax:
        if len(_CACHE) > 16:
            _CACHE.clear()
        hit = (tax, Knowledge(tax))
        _CACHE[id(tax)] = hit
    return hit[1]


def _taxonomy_of(a: Agent, tax: Taxonomy | None) -> Taxonomy:
    if tax is not None:
        return tax
    if a.folder:
        return load_taxonomy(a.folder)
    return Taxonomy("", (), (a,))  # an agent built by hand: no data files, the attributes alone


def rarity(a: Agent, action: Action, b: Agent, tax: Taxonomy | None = None) -> str:
    """common, plausible or rare (see the module docstring); `tax` defaults to the agents' own set."""
    return _knowledge_for(_taxonomy_of(a, tax)).label(a, action, b)


def explain(a: Agent, action: Action, b: Agent, tax: Taxonomy | None = None) -> str:
    """"label: reason", a sentence saying why the interaction got its label."""
    verdict = _knowledge_for(_taxonomy_of(a, tax)).judge(a, action, b)
    return f"{verdict.label}: {verdict.reason}"


def rarity_of(animal1: str, action: str, animal2: str, agents: str | None = None) -> Verdict:
    """The rarity label of "animal1 <action> animal2" and the reason, from names.

    Args:
        animal1, animal2: agent names as in the agent set ("red fox", "an ostrich" also works).
        action: the action key ("pounce") or its phrase ("pouncing on", "giving a warning call to").
        agents: the agent set (`animals`, `people` or a folder); by default the shipped set that
            knows both names.

    Returns:
        `Verdict(label, reason)`, a named tuple: `label, reason = rarity_of(...)`.

    Example:
        >>> rarity_of("ostrich", "pouncing on", "gazelle")
        Verdict(label='rare', reason="an ostrich cannot do this: ...")
    """
    tax = _find_set(animal1, animal2, agents)
    know = _knowledge_for(tax)
    a, b = know.named[_name(animal1)], know.named[_name(animal2)]
    if a.name == b.name:
        raise InputError(f"'{animal1}' and '{animal2}' are the same agent; the benchmark pairs two different agents.")
    return know.judge(a, resolve_action(tax, action), b)


def _name(text: str) -> str:
    words = " ".join(str(text).lower().split()).split(" ")
    if len(words) > 1 and words[0] in ("a", "an", "the"):
        words = words[1:]
    return " ".join(words)


def _find_set(animal1: str, animal2: str, agents: str | None) -> Taxonomy:
    names = (_name(animal1), _name(animal2))
    candidates = [agents] if agents else sorted((p.name for p in DATA.iterdir() if p.is_dir()),
                                                key=lambda n: (n != "animals", n))
    for candidate in candidates:
        tax = load_taxonomy(candidate)
        known = set(_knowledge_for(tax).named)
        missing = [n for n in names if n not in known]
        if not missing:
            return tax
        if agents:
            raise InputError(f"'{missing[0]}' is not an agent of the '{agent_folder(agents).name}' set; "
                             f"see its agents.csv for the names.")
    raise InputError(f"No shipped agent set knows both '{names[0]}' and '{names[1]}'; "
                     f"pass agents= a folder whose agents.csv has them.")


def resolve_action(tax: Taxonomy, action: str) -> Action:
    """An action by key ("pounce"), phrase ("pouncing on") or template ("{a} pouncing on {b}")."""
    text = " ".join(str(action).lower().replace("{a}", " ").replace("{b}", " ").split())
    for candidate in tax.actions:
        if text in (candidate.key, candidate.phrase, " ".join(candidate.template.replace("{a}", " ").replace("{b}", " ").split())):
            return candidate
    starts = [c for c in tax.actions if c.phrase.startswith(text + " ") or text.startswith(c.phrase + " ")]
    if len(starts) == 1:
        return starts[0]
    inside = [c for c in tax.actions if len(text) > 3 and text in c.phrase]
    if len(inside) == 1:
        return inside[0]
    known = ", ".join(f"{c.key} ({c.phrase})" for c in tax.actions)
    raise InputError(f"'{action}' is not an action of the '{tax.name}' set; use a key or phrase among: {known}.")

