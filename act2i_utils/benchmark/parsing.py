"""Action prompts taken apart: the two agents (head noun, count, attributes), the action and its
template, and the other things in the scene.

    >>> p = parse_prompt("a brown guitar, and seven turtles chasing two zebras")
    >>> p.agent1.noun, p.agent1.number, p.agent2.noun, p.agent2.number, p.template, p.objects
    ('turtle', 7, 'zebra', 2, '{a} chasing {b}', ('a brown guitar',))

Two parsers give the same `ParsedPrompt`: a rule-based one that needs nothing (`rules.py`), and
spaCy's dependency parser (`spacy_parser.py`) when spaCy and its English model are installed (the
`linguistics` extra). On the test tables of tests/data the rules read more prompts right than
spaCy's small model (docs/benchmark.md), so with spaCy installed, "auto" keeps the rules' reading
and asks spaCy only about the prompts in which the rules find no agents.
"""

from __future__ import annotations

import functools

from .rules import NOT_FOUND, Agent, ParsedPrompt, parse_rules

__all__ = ["NOT_FOUND", "Agent", "ParsedPrompt", "parse_prompt", "parse_rules", "parser_name", "spacy_available"]


def parse_prompt(text: str, parser: str = "auto") -> ParsedPrompt:
    """The two agents, their counts and attributes, the action and the scene objects of a prompt.

    Args:
        text: an action prompt ("four pigs jumping over a flamingo").
        parser: "rules"; "spacy" (needs spaCy and its English model); or "auto": the rules, and
            spaCy (when installed) for a prompt in which the rules find no agents.
    """
    text = "" if text is None else str(text)
    if parser not in ("auto", "spacy", "rules"):
        raise ValueError(f"parser must be 'auto', 'spacy' or 'rules', not {parser!r}")
    if parser == "spacy":
        if not spacy_available():
            from ..errors import InputError

            raise InputError("parser='spacy' needs spaCy and its English model: pip install -e .[linguistics], then "
                             "python -m spacy download en_core_web_sm (or set ACT2I_SPACY_MODEL to a model folder).")
        from .spacy_parser import parse_spacy

        return parse_spacy(text)
    parsed = parse_rules(text)
    if parser == "auto" and not parsed.found and spacy_available():
        from .spacy_parser import parse_spacy

        second = parse_spacy(text)
        return second if second.found else parsed
    return parsed


def parser_name(parser: str = "auto") -> str:
    """What `parse_prompt(parser=...)` uses on this machine, with spaCy's model (for provenance)."""
    if parser == "rules" or (parser == "auto" and not spacy_available()):
        return "rules"
    from .spacy_parser import model_name, nlp

    model = f"spacy {nlp().meta.get('name', model_name())} {nlp().meta.get('version', '')}".strip()
    return f"rules, then {model} where the rules find no agents" if parser == "auto" else model


@functools.lru_cache(maxsize=1)
def spacy_available() -> bool:
    """Whether spaCy and its English model can be loaded."""
    try:
        from .spacy_parser import nlp

        nlp()
    except Exception:  # noqa: BLE001 - a missing package or model: the rules parse alone
        return False
    return True
