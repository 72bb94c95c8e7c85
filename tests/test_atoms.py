"""Soft-TIFA over a prompt's atoms and interaction geometry from boxes, computed by hand on small cases."""

import math

import pytest

from act2i_utils.evaluate.atoms import ATOMS, NO_MASS, YES_MASS
from act2i_utils.evaluate.atoms import atom_scores as _atom_scores
from act2i_utils.evaluate.atoms import soft_tifa as _soft_tifa
from act2i_utils.words import reciprocal
from act2i_utils.evaluate.geometry import interaction_geometry, iou, relative_gap

def masses(answers: dict) -> dict:
    """P(Yes) per atom as the judges keep it: a Yes mass p and a No mass 1 - p (GenEval 2's reading then
    gives p for an atom whose right answer is yes, 1 - p for the control)."""
    out = {}
    for atom, p in answers.items():
        out.update({YES_MASS + atom: p, NO_MASS + atom: 1 - p} if atom != "vqa" else {atom: p})
    return out


def atom_scores(answers, action, *args, **kwargs):
    return _atom_scores(masses(answers), action, *args, **kwargs)


def soft_tifa(answers, action, *args):
    return _soft_tifa(masses(answers), action, *args)


ANSWERS = {"vqa": 0.7, "vqa_agent1": 0.9, "vqa_agent2": 0.8, "vqa_event": 0.6, "vqa_action": 0.5, "vqa_reversed": 0.2}


def test_each_atom_scores_the_probability_of_its_right_answer():
    scores = atom_scores(ANSWERS, "chasing")
    assert scores == pytest.approx({"vqa_agent1": 0.9, "vqa_agent2": 0.8, "vqa_event": 0.6, "vqa_action": 0.5,
                                    "vqa_reversed": 0.8})  # the control's right answer is no
    assert "vqa" not in scores  # the whole-prompt question is VQAScore, not an atom
    assert set(ATOMS) - set(scores) == {"vqa_count1", "vqa_count2", "vqa_attribute1", "vqa_attribute2"}  # not asked


def test_count_and_attribute_atoms_count_as_much_as_their_agent_is_there():
    answers = {**ANSWERS, "vqa_count1": 0.4, "vqa_attribute2": 0.7}
    found = soft_tifa(answers, "chasing")
    atoms = [0.9, 0.8, 0.6, 0.5, 0.8, 0.4, 0.7]
    both = 0.9 * 0.8
    assert found["soft_tifa_am"] == pytest.approx(sum(atoms) / 7)
    assert found["soft_tifa_gm"] == pytest.approx(math.prod(atoms) ** (1 / 7))
    assert found["soft_tifa_dsg"] == pytest.approx((0.9 + 0.8 + both * (0.6 + 0.5 + 0.8) + 0.9 * 0.4 + 0.8 * 0.7) / 7)


def test_soft_tifa_by_hand():
    found = soft_tifa(ANSWERS, "chasing")
    atoms = [0.9, 0.8, 0.6, 0.5, 0.8]
    both = 0.9 * 0.8
    assert found["soft_tifa_am"] == pytest.approx(sum(atoms) / 5)
    assert found["soft_tifa_gm"] == pytest.approx(math.prod(atoms) ** (1 / 5))
    assert found["soft_tifa_dsg"] == pytest.approx((0.9 + 0.8 + both * (0.6 + 0.5 + 0.8)) / 5)


def test_dependencies_take_the_credit_of_an_answer_about_a_missing_agent():
    no_elk = {"vqa_agent1": 0.95, "vqa_agent2": 0.0, "vqa_event": 0.05, "vqa_action": 0.05, "vqa_reversed": 0.0}
    found = soft_tifa(no_elk, "chasing")
    assert found["soft_tifa_gm"] == 0.0  # one atom failed: the prompt failed
    assert found["soft_tifa_dsg"] == pytest.approx(0.95 / 5)  # "is the elk chasing the wolf? no" earns nothing
    assert found["soft_tifa_am"] == pytest.approx((0.95 + 0 + 0.05 + 0.05 + 1.0) / 5)


def test_a_reciprocal_action_has_no_reversed_control():
    assert reciprocal("play-fighting with") and reciprocal("huddling with") and reciprocal("hugging")
    assert not reciprocal("chasing") and not reciprocal("feeding") and not reciprocal(None)
    found = soft_tifa(ANSWERS, "play-fighting with")
    assert found["soft_tifa_am"] == pytest.approx((0.9 + 0.8 + 0.6 + 0.5) / 4)


def test_no_atoms_no_soft_tifa():
    assert soft_tifa({"vqa": 0.4}, None) == {}


def test_box_overlap_and_gap():
    assert iou([0, 0, 10, 10], [0, 0, 10, 10]) == 1.0
    assert iou([0, 0, 10, 10], [5, 0, 15, 10]) == pytest.approx(50 / 150)
    assert iou([0, 0, 10, 10], [20, 20, 30, 30]) == 0.0
    assert relative_gap([0, 0, 10, 10], [5, 5, 15, 15]) == 0.0  # overlapping
    assert relative_gap([0, 0, 10, 10], [10, 0, 20, 10]) == 0.0  # touching
    assert relative_gap([0, 0, 10, 10], [15, 0, 25, 10]) == pytest.approx(0.5)  # 5 px apart, size 10
    assert relative_gap([0, 0, 10, 10], [13, 14, 23, 24]) == pytest.approx(0.5)  # 3-4-5 diagonally
    assert relative_gap([0, 0, 4, 4], [8, 0, 24, 16]) == pytest.approx(4 / 10)  # sizes 4 and 16


def box(agent, score, coords):
    return {"agent": agent, "score": score, "box": coords}


def test_interaction_geometry_by_hand():
    boxes = [box(1, 0.9, [0, 0, 10, 10]), box(1, 0.3, [50, 50, 60, 60]), box(2, 0.8, [15, 0, 25, 10])]
    found = interaction_geometry(boxes, 0.5, "physical contact", 0.1)
    assert found == pytest.approx({"geo_agents": 2.0, "geo_iou": 0.0, "geo_contact": 0.5, "geo_topology": 0.0})
    assert interaction_geometry(boxes, 0.5, "distant interaction", 0.1)["geo_topology"] == 1.0
    assert "geo_topology" not in interaction_geometry(boxes, 0.5, "pursuit", 0.1)
    assert interaction_geometry(boxes, 0.5, "physical contact", 0.6)["geo_topology"] == 1.0  # within the tolerance


def test_fused_and_missing_agents():
    fused = [box(1, 0.9, [0, 0, 10, 10]), box(2, 0.7, [0, 0, 10, 11])]
    assert interaction_geometry(fused, 0.5, None, 0.1)["geo_iou"] == pytest.approx(100 / 110)
    missing = [box(1, 0.9, [0, 0, 10, 10]), box(2, 0.2, [20, 0, 30, 10])]
    assert interaction_geometry(missing, 0.5, "physical contact", 0.1) == {"geo_agents": 1.0}
    assert interaction_geometry([], 0.5, None, 0.1) == {"geo_agents": 0.0}
