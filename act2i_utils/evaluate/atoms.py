"""Atoms: an action prompt taken apart into facts that a VQA judge checks one at a time, and
Soft-TIFA over them (GenEval 2, Kamath et al. 2025).

The atoms are the VQA judge's decomposition questions (`questions.vqa_questions`): one set of
questions, read two ways. Each is a metric of its own (`vqa_agent1`, ...: the judge's P("Yes")), and
each atom's soft score is the judge's probability of the *right* answer:

| atom (metric) | question, for "a wolf chasing an elk" | right answer | counts (dependency-aware) |
|---|---|---|---|
| `vqa_agent1` | Is there a wolf in this image? | yes | always |
| `vqa_agent2` | Is there an elk in this image? | yes | always |
| `vqa_event` | Does this image show something chasing something else? | yes | as much as both agents are there |
| `vqa_action` | Is the wolf chasing the elk? (the roles) | yes | as much as both agents are there |
| `vqa_reversed` | Is the elk chasing the wolf? (the control) | no | as much as both agents are there; not for a reciprocal action |
| `vqa_count1`, `vqa_count2` | Are there four pigs in this image? (where the prompt names a number above one) | yes | as much as that agent is there |
| `vqa_attribute1`, `vqa_attribute2` | Is the sheep blue? Are the dogs made of stone? (where the prompt names attributes) | yes | as much as that agent is there |

- `soft_tifa_am`: the arithmetic mean of the atoms' soft scores (GenEval 2's atom-level estimate);
- `soft_tifa_gm`: their geometric mean (GenEval 2's prompt-level estimate: one failed atom fails the prompt);
- `soft_tifa_dsg`: the arithmetic mean after DSG's dependencies (Cho et al. 2024), made soft: the
  event, role and control atoms count times P(agent 1 there) x P(agent 2 there), so that "is the elk
  chasing the wolf? no" earns nothing in an image without an elk; an agent's count and attribute
  atoms count times P(that agent there).

A reciprocal action ("competing for dominance with", "huddling with", "wrestling") reads the same both
ways, so its reversed question has no wrong answer and is left out. Whether an action is reciprocal
is data: the benchmark's `reciprocal` column (from the actions data), else `words.reciprocal`. Enriched variants are judged on
their base prompt's atoms: every variant of a prompt shares one target.
"""

from __future__ import annotations

import math

from ..words import reciprocal as reciprocal_rule

# atom -> (the right answer is "yes", the atoms it depends on)
ATOMS: dict[str, tuple[bool, tuple[str, ...]]] = {
    "vqa_agent1": (True, ()),
    "vqa_agent2": (True, ()),
    "vqa_event": (True, ("vqa_agent1", "vqa_agent2")),
    "vqa_action": (True, ("vqa_agent1", "vqa_agent2")),
    "vqa_reversed": (False, ("vqa_agent1", "vqa_agent2")),
    "vqa_count1": (True, ("vqa_agent1",)),
    "vqa_count2": (True, ("vqa_agent2",)),
    "vqa_attribute1": (True, ("vqa_agent1",)),
    "vqa_attribute2": (True, ("vqa_agent2",)),
}
SOFT_TIFA = ("soft_tifa_am", "soft_tifa_gm", "soft_tifa_dsg")
def atom_scores(values: dict, action: str | None, reciprocal: bool | None = None) -> dict[str, float]:
    """atom -> the judge's probability of the right answer, for the atoms the judge answered.
    `reciprocal`: the benchmark row's value (None: the rule's, from the action phrase)."""
    symmetric = reciprocal_rule(action) if reciprocal is None else reciprocal
    scores = {}
    for atom, (yes, _) in ATOMS.items():
        if atom not in values or (atom == "vqa_reversed" and symmetric):
            continue
        p = min(max(float(values[atom]), 0.0), 1.0)
        scores[atom] = p if yes else 1.0 - p
    return scores


def soft_tifa(values: dict, action: str | None, reciprocal: bool | None = None) -> dict[str, float]:
    """`soft_tifa_am`, `soft_tifa_gm` and `soft_tifa_dsg` from one image's VQA answers (metric ->
    P("Yes")); nothing when the judge answered no atom (a prompt without agents)."""
    scores = atom_scores(values, action, reciprocal)
    if not scores:
        return {}
    n = len(scores)
    gated = []
    for atom, score in scores.items():
        for parent in ATOMS[atom][1]:
            score *= scores.get(parent, 1.0)
        gated.append(score)
    gm = 0.0 if min(scores.values()) <= 0.0 else math.exp(sum(math.log(s) for s in scores.values()) / n)
    return {"soft_tifa_am": sum(scores.values()) / n, "soft_tifa_gm": gm, "soft_tifa_dsg": sum(gated) / n}
