"""Clean-up and checks for every rewrite.

`clean` strips what chat models wrap around an answer (preambles, quotes, markdown, notes);
`check` flags what makes a rewrite unusable or risky: empty, a refusal, an agent dropped,
unchanged from the base prompt, or longer than the text encoders' budget.
"""

from __future__ import annotations

import re

_PREAMBLE = re.compile(
    r"^\s*(?:(?:sure|certainly|okay|ok|of course|absolutely|great)[!,.]?\s*)?"
    r"(?:here(?:'s| is| are)\b[^:\n]*[:\n]"
    r"|(?:the\s+|an?\s+|my\s+)?(?:rewritten|enhanced|improved|enriched|revised|new|updated|final)\s+"
    r"(?:text-to-image\s+)?prompt\b[^:\n]*[:\n]"
    r"|prompt\s*:)\s*",
    re.IGNORECASE,
)
_COMMENTARY = re.compile(
    r"^\s*(?:\(?note|explanation|this (?:prompt|version|rewrite)|i (?:added|have|made|focused|kept)|word count|token count"
    r"|let me know|hope this)\b",
    re.IGNORECASE,
)
_REFUSAL = re.compile(
    r"^\W*(?:i'?m sorry|i am sorry|sorry,|i can(?:no|')t|i won'?t|i will not|i'?m (?:not able|unable)|i am (?:not able|unable)"
    r"|as an ai\b|i must decline|unfortunately,? i)",
    re.IGNORECASE,
)
_QUOTES = "\"'“”‘’`«»"
IRREGULAR_PLURALS = {
    "wolf": "wolves", "mouse": "mice", "goose": "geese", "child": "children", "person": "people",
    "calf": "calves", "ox": "oxen", "louse": "lice", "octopus": "octopuses", "hippo": "hippos",
}
SEVERITY = {"empty": 4, "refusal": 4, "dropped_agent": 3, "unchanged": 2, "too_long": 1}


def clean(text: str | None) -> str:
    """Strip preambles, quotes, markdown and trailing commentary; collapse white space."""
    if not text:
        return ""
    text = re.sub(r"```[a-zA-Z]*", "", text)  # code fences
    lines = [_strip_markdown(line) for line in text.splitlines() if not re.match(r"^\s*#{1,6}\s", line)]
    text = _PREAMBLE.sub("", "\n".join(lines).strip(), count=1)
    paragraphs = ([line.strip() for line in p.splitlines() if line.strip() and not _COMMENTARY.match(line)]
                  for p in re.split(r"\n\s*\n", text))
    first = next((lines for lines in paragraphs if lines), [])  # the prompt; later paragraphs are commentary
    text = " ".join(" ".join(first).split())
    while len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES:
        text = text[1:-1].strip()
    return text.strip(_QUOTES + " ").strip()


def _strip_markdown(line: str) -> str:
    line = re.sub(r"^\s*(?:[-*•]\s+|\d+[.)]\s+|>\s*)", "", line)
    line = re.sub(r"(\*\*|__|\*|_)(.+?)\1", r"\2", line)
    return line.replace("`", "").strip()


def mentions(text: str, agent: str) -> bool:
    """Whether `text` names `agent` (its head noun, singular or plural, any case)."""
    head = agent.lower().split()[-1]
    forms = {head, head + "s", head + "es", IRREGULAR_PLURALS.get(head, head)}
    pattern = r"\b(?:" + "|".join(re.escape(f) for f in sorted(forms)) + r")\b"
    return re.search(pattern, text.lower().replace("-", " ")) is not None


def check(text: str, base_prompt: str, agents: tuple[str | None, str | None], budget=None) -> list[str]:
    """Flags for one cleaned rewrite; empty when it is fine."""
    if not text.strip():
        return ["empty"]
    flags = []
    if _REFUSAL.match(text):
        flags.append("refusal")
    if any(agent and not mentions(text, agent) for agent in agents):
        flags.append("dropped_agent")
    if " ".join(text.lower().split()).strip(". ") == " ".join(base_prompt.lower().split()).strip(". "):
        flags.append("unchanged")
    if budget is not None and budget.too_long(text):
        flags.append("too_long")
    return flags


def badness(flags: list[str]) -> tuple[int, int]:
    """Sort key for choosing the best attempt: worst flag first, then how many."""
    return (max((SEVERITY.get(f, 1) for f in flags), default=0), len(flags))
