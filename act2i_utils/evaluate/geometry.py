"""Interaction geometry from the detector's boxes: automatic signals of three failure modes.

From each agent's best box (x0, y0, x1, y1 in pixels):

| metric | what | failure it signals |
|---|---|---|
| `geo_agents` | agents found (best score at least the detection threshold): 0, 1 or 2 | a missing agent (< 2) |
| `geo_iou` | intersection over union of the two agents' best boxes | fused agents (near 1: one region answers to both names) |
| `geo_contact` | the gap between the two boxes over their size (mean square root of their areas); 0 when they touch or overlap | no contact |
| `geo_topology` | 1 when the gap fits the prompt's `spatial_topology`: physical contact touches (gap <= `contact_tolerance`), a distant interaction does not; 0 when not | no contact (or contact where there should be none) |

`geo_iou` and `geo_contact` need both agents found; `geo_topology` also a topology that says
something about contact (pursuit says nothing: the pursuer may or may not have caught up).
"""

from __future__ import annotations

import math

TOUCHING = "physical contact"
APART = "distant interaction"


def area(box) -> float:
    return max(box[2] - box[0], 0.0) * max(box[3] - box[1], 0.0)


def iou(a, b) -> float:
    """Intersection over union of two boxes (0 when both are empty)."""
    inter = area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))
    union = area(a) + area(b) - inter
    return inter / union if union > 0 else 0.0


def relative_gap(a, b) -> float:
    """The shortest distance between the two boxes (0 when they touch or overlap) over their size."""
    dx = max(a[0] - b[2], b[0] - a[2], 0.0)
    dy = max(a[1] - b[3], b[1] - a[3], 0.0)
    size = (math.sqrt(area(a)) + math.sqrt(area(b))) / 2
    return math.hypot(dx, dy) / max(size, 1.0)  # boxes under a pixel: the gap in pixels


def interaction_geometry(boxes: list[dict], threshold: float, topology: str | None, tolerance: float) -> dict:
    """The geo_* metrics of one image from its detections (dicts with agent 1 or 2, score, box)."""
    best = {}
    for b in boxes:
        if b["agent"] not in best or b["score"] > best[b["agent"]]["score"]:
            best[b["agent"]] = b
    found = [a for a in (1, 2) if a in best and best[a]["score"] >= threshold]
    values = {"geo_agents": float(len(found))}
    if len(found) == 2:
        first, second = best[1]["box"], best[2]["box"]
        values["geo_iou"] = iou(first, second)
        values["geo_contact"] = relative_gap(first, second)
        if topology in (TOUCHING, APART):
            touching = values["geo_contact"] <= tolerance
            values["geo_topology"] = float(touching == (topology == TOUCHING))
    return values
