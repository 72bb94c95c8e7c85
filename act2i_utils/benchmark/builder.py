"""Build the benchmark: for each action, `n_per_action` distinct pairs of agents.

The choice is deterministic for a seed and balances three things: every agent is used (the
least-used agents are preferred), the rarity labels are spread as evenly as real pairs allow
(each prompt slot has a target label, rotating across actions; when an action has no pair left
with that label, the nearest label is taken, and the row keeps the label the rule gives it, so
no pair is ever forced into a label it does not have), and no pair repeats within an action.
"""

from __future__ import annotations

import random
from itertools import permutations

import pandas as pd

from ..schema import BENCHMARK_COLUMNS, BENCHMARK_EXTRA, validate_benchmark
from .rarity import RARITY_LEVELS, _knowledge_for, _name, resolve_action
from .taxonomy import Action, Agent, Taxonomy, load_taxonomy


def prompt_id(a: Agent, action: Action, b: Agent) -> str:
    """A stable, readable id: `wolf-chase-deer` (independent of seed and row order)."""
    return f"{a.slug}-{action.key}-{b.slug}"


def target_labels(n_actions: int, n_per_action: int) -> list[list[str]]:
    """Rarity targets per action, rotating so the totals differ by at most one."""
    flat = [RARITY_LEVELS[i % 3] for i in range(n_actions * n_per_action)]
    return [flat[i * n_per_action:(i + 1) * n_per_action] for i in range(n_actions)]


def build_benchmark(seed: int = 0, agents: str = "animals", n_per_action: int = 5) -> pd.DataFrame:
    """The benchmark table in the published schema (enriched prompt columns empty), plus each
    action's key and template.

    Args:
        seed: the same seed gives the same table.
        agents: `animals` (the AcT2I set), `people`, or a folder with actions.yaml and agents.csv.
        n_per_action: distinct agent pairs per action (5 in the paper: 25 x 5 = 125 prompts).
    """
    return _build(load_taxonomy(agents), seed, n_per_action)


def _grouped(tax: Taxonomy) -> dict[str, dict[str, list[tuple[Agent, Agent]]]]:
    """For each action key, its ordered pairs by label (the rule's labels; they never depend on seed)."""
    know = _knowledge_for(tax)
    if know.grouped is not None:
        return know.grouped
    pairs = list(permutations(tax.agents, 2))
    out = {}
    for action in tax.actions:
        by_label = {label: [] for label in RARITY_LEVELS}
        for a, b in pairs:
            by_label[know.label(a, action, b)].append((a, b))
        out[action.key] = by_label
    know.grouped = out
    return out


def _build(tax: Taxonomy, seed: int, n_per_action: int) -> pd.DataFrame:
    rng = random.Random(seed)
    know = _knowledge_for(tax)
    grouped = _grouped(tax)
    use = {agent.name: 0 for agent in tax.agents}
    rows = []
    for action, targets in zip(tax.actions, target_labels(len(tax.actions), n_per_action)):
        taken: set[tuple[str, str]] = set()
        for target in targets:
            a, b = _pick(grouped[action.key], target, taken, use, rng)
            taken.add((a.name, b.name))
            use[a.name] += 1
            use[b.name] += 1
            rows.append(_row(a, action, b, know.label(a, action, b)))
    frame = pd.DataFrame(rows, columns=BENCHMARK_COLUMNS + BENCHMARK_EXTRA)
    return validate_benchmark(frame, f"benchmark built from '{tax.name}'")


def _pick(by_label, target, taken, use, rng):
    """The least-used free pair with the target label (the nearest label if none is left)."""
    order = sorted(RARITY_LEVELS, key=lambda lab: abs(RARITY_LEVELS.index(lab) - RARITY_LEVELS.index(target)))
    for label in order:
        best, ties = None, []
        for a, b in by_label[label]:
            if (a.name, b.name) in taken:
                continue
            # Prefer pairs whose agents are least used (the busier one counts twice).
            ua, ub = use[a.name], use[b.name]
            score = ua + ub + max(ua, ub)
            if best is None or score < best:
                best, ties = score, [(a, b)]
            elif score == best:
                ties.append((a, b))
        if ties:
            return rng.choice(ties)
    raise ValueError("the taxonomy has too few agents for the requested pairs per action")


def _row(a: Agent, action: Action, b: Agent, label: str) -> dict:
    return {
        "id": prompt_id(a, action, b),
        "base_prompt": action.prompt(a, b),
        "animal1": a.name,
        "animal2": b.name,
        "action": action.phrase,
        "rarity_label": label,
        "emotional_valence": action.emotional_valence,
        "spatial_topology": action.spatial_topology,
        "temporal_extent": action.temporal_extent,
        "emotional_prompt": None,
        "spatial_prompt": None,
        "temporal_prompt": None,
        "action_key": action.key,
        "action_template": action.template,
        "reciprocal": action.reciprocal,
    }


def review(table: pd.DataFrame, agents: str = "animals") -> pd.DataFrame:
    """Every prompt with its label, the rule's label and the reason, for a reviewer to check.

    For a built table the two labels agree; for an imported one `rule_label` is what the rule
    gives the same agents and action (empty where the agent set does not know them).
    """
    tax = load_taxonomy(agents)
    know = _knowledge_for(tax)
    rows = []
    for row in table.itertuples(index=False):
        rule, reason = None, f"not judged: the '{tax.name}' set does not know this agent or action"
        a, b = know.named.get(_name(row.animal1 or "")), know.named.get(_name(row.animal2 or ""))
        action = None
        key = getattr(row, "action_key", None)
        for text in (key, row.action):
            if text and action is None:
                try:
                    action = resolve_action(tax, text)
                except Exception:  # noqa: BLE001 - an unknown action is reported in the reason
                    action = None
        if a is not None and b is not None and action is not None and a.name != b.name:
            rule, reason = know.judge(a, action, b)
        rows.append({"id": row.id, "prompt": row.base_prompt, "rarity_label": row.rarity_label,
                     "rule_label": rule, "reason": reason})
    return pd.DataFrame(rows, columns=["id", "prompt", "rarity_label", "rule_label", "reason"], dtype=object)
