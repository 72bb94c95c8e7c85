"""The rarity rule: how common an (animal1, action, animal2) interaction is in nature.

Two questions, both answered from the agents' attributes alone:

1. **Do they meet?** The two share at least one habitat.
2. **Does the action fit them?** Each action has a role (actions.yaml), and the role asks
   for a relation between the agents:

   | role      | fits when                                                            |
   |-----------|----------------------------------------------------------------------|
   | predation | {a} eats animals and {b} is no larger (an insectivore: {b} minute)   |
   | flight    | {b} eats animals and is no smaller than {a}                          |
   | defence   | {b} eats animals and is at most one size step smaller than {a}       |
   | rivalry   | same class, sizes at most one step apart                             |
   | social    | same class, sizes at most one step apart                             |
   | carry     | same class, {a} larger than {b}                                      |
   | feed      | same class, {a} no smaller than {b}                                  |
   | signal    | same class                                                           |

   "Eats animals" is a carnivore or omnivore diet; sizes step through minute, tiny, small,
   medium, large, huge.

The label is **common** when both hold, **plausible** when one holds, **rare** when neither.
So "a wolf chasing a deer" (forest; wolf eats animals, deer no larger) is common, "a lion
chasing a deer" (no shared habitat, the role fits) plausible, and "a sheep attacking a boar"
(no shared habitat, and sheep do not eat animals) rare.
"""

from __future__ import annotations

from .taxonomy import Action, Agent

RARITY_LEVELS = ("common", "plausible", "rare")


def eats_animals(agent: Agent) -> bool:
    return agent.diet in ("carnivore", "omnivore")


def meet(a: Agent, b: Agent) -> bool:
    """They share at least one habitat."""
    return bool(a.habitats & b.habitats)


def role_fits(role: str, a: Agent, b: Agent) -> bool:
    """Whether the action's role suits the two agents (see the module docstring)."""
    gap = a.size_rank - b.size_rank  # > 0: a is larger
    same_class = a.klass == b.klass
    if role == "predation":
        if a.diet == "insectivore":
            return b.size == "minute"
        return eats_animals(a) and gap >= 0
    if role == "flight":
        return eats_animals(b) and gap <= 0
    if role == "defence":
        return eats_animals(b) and gap <= 1
    if role in ("rivalry", "social"):
        return same_class and abs(gap) <= 1
    if role == "carry":
        return same_class and gap > 0
    if role == "feed":
        return same_class and gap >= 0
    if role == "signal":
        return same_class
    raise ValueError(f"unknown role '{role}'")


def rarity(a: Agent, action: Action, b: Agent) -> str:
    """common (they meet and the action fits), plausible (one of the two), rare (neither)."""
    hits = meet(a, b) + role_fits(action.role, a, b)
    return RARITY_LEVELS[2 - hits]


def explain(a: Agent, action: Action, b: Agent) -> str:
    """A sentence saying why the interaction got its label."""
    where = f"share {', '.join(sorted(a.habitats & b.habitats))}" if meet(a, b) else "share no habitat"
    fits = "fits" if role_fits(action.role, a, b) else "does not fit"
    return f"{rarity(a, action, b)}: they {where}; the {action.role} role {fits} a {a.name} ({a.size} {a.diet} {a.klass}) and a {b.name} ({b.size} {b.diet} {b.klass})"
