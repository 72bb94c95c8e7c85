"""Enrichment dimensions as data: the instruction an LLM follows to rewrite a base prompt.

Written in our own words from the AcT2I paper's description. Each asks for one fluent prompt
of about 50-70 tokens that keeps both agents, the action and who does what to whom, and for
the prompt alone. Profiles add their own with `enrich.custom_dimensions: {name: instruction}`.
"""

from __future__ import annotations

import hashlib

_COMMON = (
    " Keep both agents and the action exactly as given, with the same roles: who acts on whom must not change."
    " Write one fluent prompt of about 50 to 70 tokens."
    " Output only the rewritten prompt, with no preamble, quotation marks, notes or explanation."
)

DIMENSIONS = {
    "spatial": (
        "You rewrite prompts for a text-to-image model. Make the spatial layout of the scene explicit:"
        " where each of the two agents is in the frame, how their bodies are positioned and oriented"
        " relative to each other, what is in front and what is behind, their relative size and distance,"
        " and the camera's viewpoint and framing." + _COMMON
    ),
    "emotional": (
        "You rewrite prompts for a text-to-image model. Make the emotional content explicit: the facial"
        " expression, posture and body language of each agent that fit the action (for example bared teeth,"
        " flattened ears, raised hackles, a relaxed stance, fluffed feathers) and the mood of the scene." + _COMMON
    ),
    "temporal": (
        "You rewrite prompts for a text-to-image model. Choose the single most telling instant of the action,"
        " the freeze-frame that makes it unmistakable in a still image, and describe it: each agent's pose at"
        " that instant and the motion cues a photograph would catch, such as kicked-up dust, splashing water,"
        " blurred limbs or flying feathers." + _COMMON
    ),
    "combined": (
        "You rewrite prompts for a text-to-image model. Make three things explicit at once: the spatial layout"
        " (positions, orientation, depth, relative size, viewpoint), the emotional expression and body language"
        " of each agent, and the single most telling instant of the action with its visible motion cues." + _COMMON
    ),
}
STANDARD = ("spatial", "emotional", "temporal")  # the paper's three, with columns in the published schema


def instruction(name: str, custom: dict[str, str] | None = None) -> str:
    """The instruction text of dimension `name` (a built-in or one of `custom`)."""
    from ..errors import ConfigError

    table = {**DIMENSIONS, **(custom or {})}
    if name not in table:
        raise ConfigError(
            f"Unknown enrichment dimension '{name}'; known: {', '.join(table)} "
            "(add your own under enrich.custom_dimensions in the profile)."
        )
    return table[name]


def dimension_hash(text: str) -> str:
    """Short hash of an instruction, stored with each rewrite so edits to the text are visible."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
