"""Clean-up and checks for every rewrite.

`clean` keeps the prompt out of what chat models wrap around it: special tokens, <think> blocks,
openers ("Sure!"), preambles ("Here is the rewritten prompt:"), markdown, quotes, all options
but the first, token-count notes and closing chatter ("I hope this helps!"). `check` flags what
makes a rewrite unusable or risky: empty, a refusal, an agent dropped, unchanged from the base
prompt, or longer than the text encoders' budget. `clean_and_check` does both.
"""

from __future__ import annotations

import re

from ..words import plural

SEVERITY = {"empty": 4, "refusal": 4, "dropped_agent": 3, "unchanged": 2, "too_long": 1}

# Wrappers around the whole answer.
_SPECIAL = re.compile(  # chat-template tokens left in the text, with the role names they frame
    r"<\|(?:im_start|start_header_id)\|>\s*(?:assistant|user|system)?(?:\s*<\|end_header_id\|>)?"
    r"|<\|[\w.-]+\|>|</?s>|\[/?INST\]",
    re.I,
)
_THINK = re.compile(r"<(think|thinking|reasoning)>.*?(?:</\1>|\Z)", re.S | re.I)  # unclosed: cut off mid-thought
_HEADING = re.compile(r"^\s*#{1,6}\s")
_LIST_ITEM = re.compile(r"^\s*(?:[-*•]\s+|\d+[.)]\s+)")

# Chatter at the start of the answer: openers, then a preamble ending in a colon.
_OPENER = re.compile(
    r"^\s*(?:sure(?: thing)?|certainly|of course|absolutely|okay|ok|alright|great|gladly|no problem"
    r"|happy to help|with pleasure|here you go)\s*[!.,:;]+\s*",
    re.I,
)
_PREAMBLE = re.compile(
    r"^\s*(?:here(?:'s| is| are)\b[^:\n]*:"
    r"|below is\b[^:\n]*:"
    r"|i(?:'ve| have)? (?:rewritten|revised|enhanced|updated|created|written|crafted)\b[^:\n]*:"
    r"|(?:the |an? |my |your )?(?:[\w-]+ ){0,3}(?:prompt|rewrite|version|output|answer|result)s?"
    r"(?: \([^)\n]*\))?\s*:)\s*",
    re.I,
)
# Sentences and lines that talk about the prompt instead of being it.
_COMMENTARY = re.compile(
    r"^\W*(?:notes?\b|nb\b|explanation\b|word count|token count|tokens?:|words?:"
    r"|this (?:prompt|version|rewrite|description|revision)\b|the (?:prompt|rewrite) (?:above|now)\b"
    r"|i (?:added|have|made|focused|kept|tried|included|emphasi[sz]ed|chose|used)\b|i'(?:ve|d|ll)\b|i would\b"
    r"|let me know|hope this|i hope|feel free|enjoy\b|good luck|happy (?:creating|generating|prompting)"
    r"|here(?:'s| is| are)\b|key (?:changes|elements|additions)\b|changes made\b)",
    re.I,
)
_OPTION = re.compile(
    r"(?:^|(?<=\s))\(?(?:option|version|variant|alternative|prompt|rewrite)\s*#?\s*(?:\d+|[a-c]|one|two|three)\b"
    r"\)?(?:\s*\([^)]*\))?\s*[:.)\-–—]\s*",
    re.I,
)
_COUNT_NOTE = re.compile(r"\s*[(\[](?=[^()\[\]]*\d)(?=[^()\[\]]*\b(?:tokens?|words?)\b)[^()\[\]]*[)\]]", re.I)
_NOTE = re.compile(r"\s*\((?:note|nb|n\.b\.)\b[^)]*\)", re.I)
_TRAILING_COUNT = re.compile(r"\s*(?:[-–—]\s*)?\(?~?\d+\s*(?:tokens?|words?)\)?\.?\s*$", re.I)
_QUOTES = "\"'“”‘’`«»"

_REFUSAL = re.compile(
    r"\b(?:i'm sorry|i am sorry|i apologi[sz]e|my apologies|i can(?:no|')t|i can not|i won't|i will not"
    r"|i'm (?:not able|unable|not comfortable)|i am (?:not able|unable|not comfortable)|i don't feel comfortable"
    r"|i (?:must|have to|need to) (?:decline|refuse)|i'd (?:rather|prefer) not|i would (?:rather|prefer) not"
    r"|unfortunately,? i\b|as an ai\b|as a language model\b"
    r"|against my (?:guidelines|principles|policy|policies)"
    r"|(?:violates?|against) (?:the |our |my )?(?:content |usage )?polic(?:y|ies))",
    re.I,
)


def clean(text: str | None) -> str:
    """The prompt in a chat model's answer: wrappers, chatter, markdown, extra options and notes removed."""
    if not text:
        return ""
    text = _unwrap(str(text))
    paragraph = _first_paragraph(_lines(text))
    text = _strip_notes(_first_option(paragraph))
    while len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES:
        text = text[1:-1].strip()
    return text.strip(_QUOTES + " ").strip()


def _unwrap(text: str) -> str:
    """Special tokens, reasoning blocks (everything before a stray closing tag too) and code fences."""
    text = _THINK.sub(" ", _SPECIAL.sub(" ", text))
    closing = re.search(r"</(?:think|thinking|reasoning)>", text, re.I)
    while closing:
        text = text[closing.end():]
        closing = re.search(r"</(?:think|thinking|reasoning)>", text, re.I)
    return re.sub(r"```[a-zA-Z]*", "", text)


def _lines(text: str) -> list[tuple[bool, str]]:
    """(is a list item, the line without markdown) for each line; headings dropped."""
    return [(bool(_LIST_ITEM.match(line)), _strip_markdown(line)) for line in text.splitlines() if not _HEADING.match(line)]


def _strip_markdown(line: str) -> str:
    line = _LIST_ITEM.sub("", line)
    line = re.sub(r"^\s*>\s*", "", line)
    line = re.sub(r"(\*\*|\*)(?=\S)(.+?)(?<=\S)\1", r"\2", line)
    line = re.sub(r"(?<!\w)(__|_)(?=\S)(.+?)(?<=\S)\1(?!\w)", r"\2", line)  # _italic_, not snake_case
    line = re.sub(r"(?<=\w)_(?=\w)", " ", line)  # muscles_tensed -> muscles tensed
    return line.replace("`", "").strip()


def _first_paragraph(lines: list[tuple[bool, str]]) -> str:
    """The first paragraph that is neither chatter nor commentary, and of a list only its first item.
    A refusal is kept, so that `check` can flag it."""
    kept: list[str] = []
    in_item = False
    for is_item, line in lines:
        if not line:
            if kept:
                break
            continue
        if not kept:
            line = _lead(line)
            if not line:
                continue
        if not _REFUSAL.search(_plain(line)) and _COMMENTARY.match(line):
            continue
        if is_item:
            if in_item:
                break  # a second list item: another option
            in_item = True
        kept.append(line)
    return " ".join(" ".join(kept).split())


def _lead(line: str) -> str:
    """A line without the openers and preambles at its start."""
    previous = None
    while line != previous:
        previous = line
        line = _PREAMBLE.sub("", _OPENER.sub("", line, count=1), count=1).strip()
    return line


def _first_option(text: str) -> str:
    """Of "Option 1: ... Option 2: ...", the first option; any other text as it is."""
    marks = list(_OPTION.finditer(text))
    if not marks:
        return text
    end = marks[1].start() if len(marks) > 1 else len(text)
    return text[marks[0].end():end].strip()


def _strip_notes(text: str) -> str:
    """Token counts, notes in brackets, and commentary sentences before or after the prompt."""
    text = _NOTE.sub("", _COUNT_NOTE.sub("", text))
    text = _TRAILING_COUNT.sub("", text).strip()
    sentences = re.split(r"(?<=[.!?])\s+(?=[\"“(]?[A-Z])", text)
    while len(sentences) > 1 and _COMMENTARY.match(sentences[-1]):
        sentences.pop()
    while len(sentences) > 1 and _COMMENTARY.match(sentences[0]):
        sentences.pop(0)
    return " ".join(sentences).strip()


def _plain(text: str) -> str:
    return text.replace("’", "'").replace("‘", "'")


def mentions(text: str, agent: str) -> bool:
    """Whether `text` names `agent` (its head noun, singular or plural, any case)."""
    head = agent.lower().replace("_", " ").split()[-1]
    forms = {head, head + "s", head + "es", plural(head)}
    pattern = r"\b(?:" + "|".join(re.escape(f) for f in sorted(forms)) + r")\b"
    return re.search(pattern, text.lower().replace("-", " ")) is not None


def check(text: str, base_prompt: str, agents: tuple[str | None, str | None], budget=None) -> list[str]:
    """Flags for one cleaned rewrite; empty when it is fine."""
    if not text.strip():
        return ["empty"]
    flags = []
    if _REFUSAL.search(_plain(text)):
        flags.append("refusal")
    if any(isinstance(agent, str) and agent and not mentions(text, agent) for agent in agents):
        flags.append("dropped_agent")
    if " ".join(text.lower().split()).strip(". ") == " ".join(base_prompt.lower().split()).strip(". "):
        flags.append("unchanged")
    if budget is not None and budget.too_long(text):
        flags.append("too_long")
    return flags


def clean_and_check(raw: str | None, base_prompt: str, agents, budget=None) -> tuple[str, list[str]]:
    """A model's raw answer as (the cleaned prompt, its flags): `clean`, then `check`.

    Example:
        >>> clean_and_check("Sure! Here's the prompt: A wolf chasing a deer through snow. I hope this helps!",
        ...                 "a wolf chasing a deer", ("wolf", "deer"))
        ('A wolf chasing a deer through snow.', [])
    """
    text = clean(raw)
    return text, check(text, base_prompt, tuple(agents), budget)


def badness(flags: list[str]) -> tuple[int, int]:
    """Sort key for choosing the best attempt: worst flag first, then how many."""
    return (max((SEVERITY.get(f, 1) for f in flags), default=0), len(flags))
