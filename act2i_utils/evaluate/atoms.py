"""Atoms: an action prompt taken apart into facts that a VQA judge checks one at a time, and
Soft-TIFA over them (GenEval 2, Kamath et al. 2025).

The atoms are the VQA judge's decomposition questions (`questions.vqa_questions`), asked two ways.
As VQAScore questions ("... Please answer yes or no.") each is a metric of its own (`vqa_agent1`, ...,
VQAScore's reading: docs/judges.md). Asked as GenEval 2 asks them ("<question> Answer in one word."),
the judge's summed probability of the right answer's variants ('Yes', 'yes', ' yes', ' Yes'; 'No',
'no', ' no', ' No' where the right answer is no) is the atom's soft score; the judges keep these
masses as `_tifa_yes:<atom>` and `_tifa_no:<atom>` (private values, not rows):

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
- `soft_tifa_am_renorm`, `soft_tifa_gm_renorm`: the same means of the renormalised soft scores,
  right / (yes + no) (not GenEval 2's; kept under its own name);
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
SOFT_TIFA_RENORM = ("soft_tifa_am_renorm", "soft_tifa_gm_renorm")
YES_MASS, NO_MASS = "_tifa_yes:", "_tifa_no:"  # value keys: an atom's summed yes / no probability
def atom_scores(values: dict, action: str | None, reciprocal: bool | None = None,
                renormalised: bool = False) -> dict[str, float]:
    """atom -> the judge's probability of the right answer (GenEval 2's reading; `renormalised`:
    right / (yes + no)), for the atoms the judge answered. `reciprocal`: the benchmark row's value
    (None: the rule's, from the action phrase)."""
    symmetric = reciprocal_rule(action) if reciprocal is None else reciprocal
    scores = {}
    for atom, (wants_yes, _) in ATOMS.items():
        if YES_MASS + atom not in values or (atom == "vqa_reversed" and symmetric):
            continue
        yes, no = float(values[YES_MASS + atom]), float(values[NO_MASS + atom])
        right = yes if wants_yes else no
        if renormalised:
            right = right / (yes + no) if yes + no > 0 else 0.0
        scores[atom] = min(max(right, 0.0), 1.0)
    return scores


def soft_tifa(values: dict, action: str | None, reciprocal: bool | None = None) -> dict[str, float]:
    """`soft_tifa_am`, `soft_tifa_gm`, `soft_tifa_dsg` and the renormalised means from one image's
    answer masses (`_tifa_yes:<atom>`, `_tifa_no:<atom>`); nothing when the judge answered no atom
    (a prompt without agents)."""
    scores = atom_scores(values, action, reciprocal)
    if not scores:
        return {}
    gated = []
    for atom, score in scores.items():
        for parent in ATOMS[atom][1]:
            score *= scores.get(parent, 1.0)
        gated.append(score)
    renormalised = atom_scores(values, action, reciprocal, renormalised=True)
    return {"soft_tifa_am": _mean(scores.values()), "soft_tifa_gm": _geometric_mean(scores.values()),
            "soft_tifa_dsg": sum(gated) / len(gated), "soft_tifa_am_renorm": _mean(renormalised.values()),
            "soft_tifa_gm_renorm": _geometric_mean(renormalised.values())}


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def _geometric_mean(values) -> float:
    values = list(values)
    return 0.0 if min(values) <= 0.0 else math.exp(sum(math.log(v) for v in values) / len(values))
