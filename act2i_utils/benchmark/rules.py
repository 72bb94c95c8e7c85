"""The rule-based prompt parser (see `parsing.py`), and what every parser returns: `ParsedPrompt`.

It reads a prompt as

    [frame] [scene objects ,] AGENT [and AGENT] [aux] VERB [particles] [prepositions] AGENT [tail] [, style]

where an agent is a noun phrase: a count ("four", "3", "a pair of", "a"), adjectives ("blue", "stone",
"tiny") and a head noun, singular ("pigs" -> "pig", "mice" -> "mouse"), compound names kept whole
("police officer", "polar bear"). A prompt in which it cannot find two agents and an action is
flagged `agents_not_found`, with the reason.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from ..words import ing, is_plural, lexicon, past, singular, verb_forms

NOT_FOUND = "agents_not_found"
_TOKEN = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*|[,;:()]")
_RECIPROCAL = (("each", "other"), ("one", "another"))
# prepositions after the first object that may introduce the real second agent
# ("giving a warning call to a gecko", "dodging a lunge from a shark")
_SHIFT = {"to", "with", "at", "for", "from", "toward", "towards", "of", "on", "against", "into", "onto"}
_POSTMODIFIERS = {"in", "with", "on", "from", "near", "at", "under", "inside", "beside", "behind", "by", "wearing",
                  "dressed", "holding", "without", "like"}  # "a man in a red shirt"
_MODIFIER_VERBS = {"wearing", "holding", "wielding", "dressed", "clad", "carrying", "using", "sporting"}


@dataclass(frozen=True)
class Agent:
    """One agent of the interaction, as the prompt names it."""

    noun: str  # head noun, singular: "pig", "police officer"
    count: str  # the count as written: "four", "3", "a", "a pair of", "" (none)
    number: int | None  # 4, 3, 1, 2; None for an unspecified plural ("pigs", "a herd of zebras")
    attributes: tuple[str, ...] = ()  # "blue", "stone", "tiny", in the prompt's order
    text: str = ""  # the noun phrase as written: "six stone dogs"

    @property
    def plural(self) -> bool:
        return self.number is None or self.number > 1


@dataclass(frozen=True)
class ParsedPrompt:
    """What `parse_prompt` found in one prompt; `flag` says what it could not find."""

    text: str
    agent1: Agent | None = None
    agent2: Agent | None = None
    action: str | None = None  # "jumping over", "competing for dominance with"
    template: str | None = None  # "{a} jumping over {b}", "{a} carrying {b} on its back"
    objects: tuple[str, ...] = ()  # other things named in the scene: "a brown guitar"
    flag: str | None = None  # None, or NOT_FOUND
    reason: str = ""  # why it is flagged, in words
    parser: str = "rules"

    @property
    def found(self) -> bool:
        return self.flag is None


# --- the rule-based parser --------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _words() -> dict:
    """The lexicon as sets, plus the agent names the shipped taxonomies know."""
    lex = lexicon()
    out = {key: frozenset(value) for key, value in lex.items() if isinstance(value, list)}
    out["numbers"], out["number_phrases"] = lex["numbers"], lex["number_phrases"]
    out["attributes"] = out["colours"] | out["materials"] | out["sizes"] | out["adjectives"]
    agents = _taxonomy_agents()
    out["compounds"] = out["compounds"] | frozenset(a for a in agents if " " in a)
    out["animate"] = out["animate"] | frozenset(agents) | frozenset(a.split()[-1] for a in agents)
    out["places"] = out["places"] - frozenset(agents)
    out["verbs"] = verb_forms()
    return out


def _taxonomy_agents() -> set[str]:
    from .taxonomy import DATA

    names = set()
    for csv_path in DATA.glob("*/agents.csv"):
        for line in csv_path.read_text(encoding="utf-8").splitlines()[1:]:
            names.add(line.split(",", 1)[0].strip().lower())
    return {n for n in names if n}


def parse_rules(text: str) -> ParsedPrompt:
    """The rule-based parser (see the module docstring)."""
    tokens = _frame_stripped(_TOKEN.findall(_normalise(text)))
    verb = _main_verb(tokens)
    if verb is None:
        return ParsedPrompt(text, flag=NOT_FOUND, reason="no action verb found", objects=_bare_objects(tokens))
    start, stop, phrase, passive = verb
    subjects, objects = _subjects(tokens[:start])
    if not subjects:
        return ParsedPrompt(text, flag=NOT_FOUND, reason=f"no agent before the action '{phrase}'", objects=objects)
    subjects = _agreeing(subjects, tokens[start])
    predicate = _predicate(tokens[stop:])
    objects += predicate.objects
    if passive and predicate.object is None:
        return ParsedPrompt(text, agent1=subjects[0], flag=NOT_FOUND, objects=objects,
                            reason=f"no agent after '{phrase}'")
    action = " ".join([phrase, *predicate.preps])
    second = predicate.object
    if second is not None and (not _is_place(second) or predicate.shifted):
        first, others = subjects[0], subjects[1:]
        if others and not _animate(second) and (predicate.preps or not second.count):
            # "a cat and a dog fighting over a bone", "a robot and an astronaut shaking hands": the subjects
            return _found(text, first, others[0], f"{{a}} and {{b}} {action} {second.text}{predicate.tail}".strip(),
                          objects + tuple(o.text for o in others[1:]))
        template = f"{{a}} {action} {{b}}{predicate.tail}"
        return _found(text, first, second, template, objects + tuple(o.text for o in others))
    if len(subjects) >= 2:
        tail = (f" {predicate.preps_text} {second.text}" if second is not None else "") + predicate.tail
        return _found(text, subjects[0], subjects[1], f"{{a}} and {{b}} {phrase}{tail}".rstrip(),
                      objects + tuple(o.text for o in subjects[2:]))
    if predicate.reciprocal and subjects[0].plural:
        reason = f"one group of agents ('{subjects[0].text}') {phrase} among themselves"
    elif second is not None:
        reason = f"'{second.text}' is a place, not a second agent"
        objects += (second.text,)
    else:
        reason = f"no second agent after '{action}'"
    return ParsedPrompt(text, agent1=subjects[0], action=action, flag=NOT_FOUND, reason=reason, objects=objects)


def _found(text, agent1: Agent, agent2: Agent, template: str, objects: tuple) -> ParsedPrompt:
    template = " ".join(template.split())
    if template.startswith("{a} and {b} "):  # "{a} and {b} fighting over a bone": the action is what they do
        action = template[len("{a} and {b} "):]
    else:
        action = template.split("{b}")[0].replace("{a}", "").strip()
    return ParsedPrompt(text, agent1, agent2, action=action, template=template, objects=tuple(objects))


def _normalise(text: str) -> str:
    """Lower case, plain quotes, and only the first sentence (the one that names the action)."""
    text = text.lower().replace("’", "'").replace("‘", "'").replace("&", " and ")
    text = re.sub(r"[\"“”`*_\[\]{}<>]", " ", text)
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)  # "1,000 ants"
    text = re.sub(r"\s*[.!?]+(\s|$)", " . ", text)  # sentence ends; "." itself is not a token
    return text.split(" . ")[0] if " . " in text.strip(" .") else text


def _frame_stripped(tokens: list[str]) -> list[str]:
    """Without "a photo of", "an illustration showing", "draw", "there are" in front."""
    w = _words()
    changed = True
    while changed and tokens:
        changed = False
        if tokens[0] in w["frame_verbs"] and len(tokens) > 1 and tokens[1] in {"me", "a", "an", "the"} | set(w["numbers"]):
            tokens = tokens[2:] if tokens[1] == "me" else tokens[1:]
            changed = True
        if tokens[:1] == ["there"] and len(tokens) > 1 and tokens[1] in w["auxiliaries"]:
            tokens, changed = tokens[2:], True
        for i in range(1, min(len(tokens), 7)):
            # "a photo of", "a high-resolution photo of", "a 4k digital illustration showing"
            if tokens[i] in ("of", "showing", "depicting", "featuring", "with") and tokens[i - 1] in w["frames"] \
                    and not any(_verb_at(tokens, j) for j in range(1, i)):
                tokens, changed = tokens[i + 1:], True
                break
    return tokens


def _main_verb(tokens: list[str]) -> tuple[int, int, str, bool] | None:
    """(first token of the verb group, first token after it, the action's verb words, passive)."""
    candidates = [i for i in range(1, len(tokens)) if _verb_at(tokens, i)]
    for n, i in enumerate(candidates):
        if tokens[i] in _MODIFIER_VERBS and n + 1 < len(candidates) and tokens[candidates[n + 1]].endswith("ing"):
            continue  # "a man wearing a hat chasing a dog": the second verb is the action
        start = i
        while start > 0 and (tokens[start - 1] in _words()["auxiliaries"] or _adverb(tokens[start - 1])
                             or tokens[start - 1] in ("being", "who", "that", "which", "not", "also")):
            start -= 1  # "is being", "that is", "happily": not part of the agent before them
        word = tokens[i]
        base, kind = _words()["verbs"].get(word, (None, "ing" if word.endswith("ing") else None))
        after = tokens[i + 1] if i + 1 < len(tokens) else ""
        if kind in ("participle", "past") and after == "by":
            return start, i + 2, f"being {past(base)[1]} by", True
        if kind == "ing" or base is None:
            return start, i + 1, word, False
        return start, i + 1, ing(base), False
    return None


def _verb_at(tokens: list[str], i: int) -> bool:
    """Whether tokens[i] is the action's verb: an -ing word or a lexicon verb after a noun."""
    w = _words()
    word, before = tokens[i], tokens[i - 1]
    after = tokens[i + 1] if i + 1 < len(tokens) else ""
    if word in w["ing_nouns"] or word in w["auxiliaries"] or word == "being" or _counts(before) \
            or before in ("of", "and", "or", "like", "very", "so") or before in w["prepositions"]:
        return False
    if before in w["frames"] and not _noun_like(before):
        return False
    form = w["verbs"].get(word)
    if form is not None and form[1] in ("participle", "past") and after == "by" and before in w["auxiliaries"]:
        return True  # "a rabbit is chased by a fox", "a mouse gets caught by an owl"
    if _compound_start(tokens, i) or " ".join((before, word)) in w["compounds"]:
        return False  # "praying mantises", "guard dog"
    ing_form = word.endswith("ing") and len(word) >= 5
    if ing_form and before in w["attributes"] and after and not _starts_phrase(after):
        return False  # "a small sleeping cat": an adjective before the noun
    if ing_form:
        return True
    if form is None or form[1] == "ing":
        return False
    if form[1] == "base" and is_plural(word):
        return False
    return _noun_like(before) and (not after or _starts_phrase(after) or after in w["particles"]
                                    or after not in w["verbs"] or is_plural(after))  # "two men shake hands with"


def _counts(word: str) -> bool:
    """A determiner, number or quantifier: what comes next is a noun phrase, not a verb."""
    w = _words()
    return word in w["determiners"] or word in w["numbers"] or word.isdigit() or word in w["quantifiers"]


def _compound_start(tokens: list[str], i: int) -> bool:
    """Whether tokens[i] begins a compound name ("praying" in "praying mantises")."""
    return i + 1 < len(tokens) and f"{tokens[i]} {singular(tokens[i + 1])}" in _words()["compounds"]


def _starts_phrase(word: str) -> bool:
    """Whether a word opens a noun or prepositional phrase (so what came before was not an adjective)."""
    w = _words()
    return word in w["determiners"] or word in w["numbers"] or word.isdigit() or word in w["prepositions"] \
        or word in w["particles"] or word in w["quantifiers"] or word in (",", ";", ":")


def _noun_like(word: str) -> bool:
    """A word that can end a noun phrase: not a determiner, preposition, auxiliary or conjunction."""
    w = _words()
    function_word = word in w["determiners"] or word in w["prepositions"] or word in w["auxiliaries"] \
        or word in (",", ";", ":", "and", "or")
    return not function_word and (word.replace("-", "").replace("'", "").isalnum())


# --- noun phrases -----------------------------------------------------------------------------

def _subjects(tokens: list[str]) -> tuple[list[Agent], tuple[str, ...]]:
    """The agents before the verb (one, or several joined by "and"), and the other things named there."""
    chunks = _split(tokens, {",", ";", ":"})
    while chunks and not chunks[-1]:
        chunks.pop()  # "the dog, chasing the cat"
    if not chunks:
        return [], ()
    objects = tuple(o for chunk in chunks[:-1] for o in _chunk_objects(chunk))
    chunk = chunks[-1]
    if chunk[:1] == ["and"]:
        chunk = chunk[1:]
    head, modifiers = _before_preposition(chunk)
    subjects = [a for a in (_noun_phrase(part) for part in _coordinated(head)) if a is not None]
    if subjects and not _animate(subjects[0]) and any(_animate(a) for a in subjects[1:]):
        # "a lamp and a cat chasing a dog": the cat acts, the lamp is part of the scene
        first = next(a for a in subjects if _animate(a))
        objects += tuple(a.text for a in subjects if a is not first and not _animate(a))
        subjects = [first] + [a for a in subjects if a is not first and _animate(a)]
    return subjects, objects + tuple(m for m in modifiers if m)


def _agreeing(subjects: list[Agent], aux: str) -> list[Agent]:
    """"the sheep are herded": a plural verb makes a lone subject of no number an unspecified plural."""
    first = subjects[0]
    if aux in ("are", "were") and len(subjects) == 1 and first.number == 1 and first.count in ("the", ""):
        return [Agent(first.noun, first.count, None, first.attributes, first.text)]
    return subjects


def _chunk_objects(chunk: list[str]) -> list[str]:
    """Noun phrases of a chunk that is not the clause ("a brown guitar"), none from "in a park"."""
    if not chunk or chunk[0] in _words()["scene_prepositions"] or chunk[0] in _words()["clause_words"]:
        return []
    parts = _coordinated(chunk[1:] if chunk[0] == "and" else chunk)
    return [" ".join(p) for p in parts if _noun_phrase(p) is not None]


def _before_preposition(tokens: list[str]) -> tuple[list[str], list[str]]:
    """A subject split from its modifiers: "a man in a red shirt" -> ("a man", ["a red shirt"])."""
    w = _words()
    for i, token in enumerate(tokens):
        if i and token in _POSTMODIFIERS:
            rest = [t for t in tokens[i + 1:] if t not in w["prepositions"]]
            return tokens[:i], [" ".join(p) for p in _coordinated(rest) if p]
    return tokens, []


def _coordinated(tokens: list[str]) -> list[list[str]]:
    """Noun phrases joined by "and" (not adjectives: "a black and white cow" is one)."""
    parts, current = [], []
    for i, token in enumerate(tokens):
        if token in ("and", "or") and current and i + 1 < len(tokens) and not _adjectives_joined(tokens, i):
            parts.append(current)
            current = []
        else:
            current.append(token)
    parts.append(current)
    return [p for p in parts if p]


def _adjectives_joined(tokens: list[str], i: int) -> bool:
    """Whether the "and" at tokens[i] joins two adjectives ("black and white"), not two noun phrases."""
    return i > 0 and _adjective(tokens[i - 1]) and i + 1 < len(tokens) and _adjective(tokens[i + 1]) \
        and tokens[i + 1] not in _words()["determiners"]


def _split(tokens: list[str], marks: set[str]) -> list[list[str]]:
    chunks, current = [], []
    for token in tokens:
        if token in marks:
            chunks.append(current)
            current = []
        else:
            current.append(token)
    chunks.append(current)
    return chunks


def _noun_phrase(tokens: list[str]) -> Agent | None:
    """An agent from its noun phrase ("six stone dogs"), or None when it names nothing."""
    w = _words()
    words = _owner_or_owned([t for t in tokens if t not in (",", ";", ":", "(", ")")])
    text = " ".join(words)
    count, number, words = _count(words)
    words = [t for t in words if t not in w["determiners"] and t not in ("and", "or", "of", "very", "quite")]
    if not words or not words[-1].replace("-", "").isalnum():
        return None
    if words[-1].endswith("'s"):
        words[-1] = words[-1][:-2]
    plural = number > 1 if number is not None else is_plural(words[-1])
    noun_words, attributes = _head(words, plural)
    if not noun_words:
        return None
    noun = " ".join(noun_words)
    noun = singular(noun) if (plural or is_plural(noun_words[-1])) else noun
    if number is None and not count and not plural:
        number = 1  # "dog chasing cat"
    if number is None and count in ("a", "an", "one", "the", "this", "that", "his", "her", "its", "their", "my",
                                    "our", "your", "another") and not is_plural(noun_words[-1]):
        number = 1
    return Agent(noun=noun, count=count, number=number, attributes=tuple(attributes), text=text)


def _owner_or_owned(words: list[str]) -> list[str]:
    """"a child's face" -> "a child" (a body part's owner acts); "a man's dog" -> "dog"."""
    owners = [i for i, t in enumerate(words[:-1]) if t.endswith("'s")]
    if not owners:
        return words
    i = owners[-1]
    if words[-1] in _words()["body_parts"]:
        return words[:i] + [words[i][:-2]]
    return words[i + 1:]


def _count(words: list[str]) -> tuple[str, int | None, list[str]]:
    """(the count as written, its number or None, the rest of the noun phrase)."""
    w = _words()
    numbers, phrases = w["numbers"], w["number_phrases"]
    i, written, number = 0, [], None
    while i < len(words):
        token = words[i]
        nxt = words[i + 1] if i + 1 < len(words) else ""
        if token in ("a", "an") and nxt in phrases and words[i + 2:i + 3] == ["of"]:
            written, number, i = words[i:i + 3], phrases[nxt], i + 3  # "a pair of"
        elif token in ("a", "an") and (nxt in w["groups"] or nxt in w["partitives"]) and words[i + 2:i + 3] == ["of"]:
            written, number, i = words[i:i + 3], None, i + 3  # "a herd of", "a piece of"
        elif token in w["groups"] and nxt == "of":
            written, number, i = words[i:i + 2], None, i + 2  # "dozens of", "lots of"
        elif token in ("a", "an") and nxt == "dozen":
            written, number, i = words[i:i + 2], 12, i + 2
        elif token in ("a", "an") and nxt in ("few", "couple", "lot"):
            written, number, i = words[i:i + 2], (2 if nxt == "couple" else None), i + 2
            i += 1 if words[i:i + 1] == ["of"] else 0
        elif token in numbers and not (token == "one" and nxt in ("another", "other")):
            written, number, i = written + [token], numbers[token], i + 1
            i += 1 if words[i:i + 1] == ["of"] else 0  # "two of the dogs"
        elif token.isdigit():
            written, number, i = written + [token], int(token), i + 1
        elif "-" in token and all(part in numbers for part in token.split("-")):
            written, number, i = written + [token], sum(numbers[p] for p in token.split("-")), i + 1  # "twenty-one"
        elif token in w["determiners"] or token in w["quantifiers"]:
            if written and written[-1] in numbers:
                break
            written, i = written + [token], i + 1
            if token in ("a", "an", "another") and number is None:
                number = 1
        elif token in ("of",) and written:
            i += 1
        else:
            break
    if number is not None and any(t in w["quantifiers"] for t in written) and not any(t in numbers or t.isdigit() for t in written):
        number = None
    return " ".join(written), number, words[i:]


def _head(words: list[str], plural: bool) -> tuple[list[str], list[str]]:
    """(the head noun's words, the attributes before it): compound names stay whole."""
    w = _words()
    last = singular(words[-1]) if plural or is_plural(words[-1]) else words[-1]
    for size in (4, 3, 2):
        if len(words) >= size and " ".join(words[-size:-1] + [last]) in w["compounds"]:
            return words[-size:], [a for a in words[:-size] if a != "and"]
    head = [words[-1]]
    for word in reversed(words[:-1]):
        if _adjective(word) or word == "and":
            break
        head.insert(0, word)
    attributes = [a for a in words[:len(words) - len(head)] if a != "and"]
    return head, attributes


def _adjective(word: str) -> bool:
    w = _words()
    if word in w["attributes"]:
        return True
    if word in w["ing_nouns"] or word in w["animate"]:
        return False
    if word.endswith("ing") and len(word) >= 5:
        return True  # "a sleeping cat"
    if word.endswith("ed") and len(word) >= 5 and not word.endswith("eed"):
        return True  # "a frightened cat", "a winged horse"
    return word.endswith(("ful", "ous", "less", "ish")) and not word.endswith("fish") and len(word) > 5


def _adverb(word: str) -> bool:
    """"happily", "quickly" (not "butterfly", "friendly", "family")."""
    w = _words()
    return word.endswith("ly") and len(word) > 4 and not word.endswith("fly") and word not in w["attributes"] \
        and word not in w["animate"] and word not in ("family", "belly", "jelly", "lily", "holly", "bully", "ally")


def _animate(agent: Agent) -> bool:
    w = _words()
    return agent.noun in w["animate"] or agent.noun.split()[-1] in w["animate"]


def _is_place(agent: Agent) -> bool:
    w = _words()
    return agent.noun in w["places"] or agent.noun.split()[-1] in w["places"]


def _bare_objects(tokens: list[str]) -> tuple[str, ...]:
    chunks = _split(tokens, {",", ";", ":"})
    return tuple(o for chunk in chunks for o in _chunk_objects(_before_preposition(chunk)[0]))


# --- after the verb -----------------------------------------------------------------------------

@dataclass
class _Predicate:
    preps: list[str] = field(default_factory=list)  # "over", "away from": between the verb and the agent
    object: Agent | None = None
    tail: str = ""  # what stays in the template after {b}: " on its back", " with an umbrella"
    objects: tuple[str, ...] = ()
    reciprocal: bool = False
    shifted: bool = False  # the agent came after a first noun phrase that belongs to the action

    @property
    def preps_text(self) -> str:
        return " ".join(self.preps)


def _predicate(tokens: list[str]) -> _Predicate:
    """What follows the verb: its particles and prepositions, the second agent and the rest."""
    w = _words()
    tokens = _clause(tokens)
    out = _Predicate()
    i = 0
    while i < len(tokens) and (tokens[i] in w["prepositions"] or tokens[i] in w["particles"] or _adverb(tokens[i])):
        if not _adverb(tokens[i]):
            out.preps.append(tokens[i])
        i += 1
    rest = tokens[i:]
    if tuple(rest[:2]) in _RECIPROCAL or rest[:1] == ["together"]:
        out.reciprocal, rest = True, rest[2 if rest[:1] != ["together"] else 1:]
    phrase, rest = _phrase(rest)
    out.object = _noun_phrase(phrase) if phrase else None
    extra: list[str] = []
    while rest[:1] == ["and"]:
        more, rest = _phrase(rest[1:])
        if more:
            extra.append(" ".join(more))
    if tuple(rest[:2]) in _RECIPROCAL or rest[:1] == ["together"]:
        out.reciprocal, rest = True, rest[2 if rest[:1] != ["together"] else 1:]
    out.object, rest, moved = _shift(out.object, phrase, rest)
    if moved:
        out.preps, out.shifted = [*out.preps, *moved], True
    out.tail, scene = _tail(rest)
    out.objects = tuple(extra) + scene
    return out


def _clause(tokens: list[str]) -> list[str]:
    """The tokens up to the end of the action's clause (a comma, "while", a second sentence)."""
    w = _words()
    for i, token in enumerate(tokens):
        if token in (",", ";", ":", "(") or (token in w["clause_words"] and i > 0):
            return tokens[:i]
    return tokens


def _phrase(tokens: list[str]) -> tuple[list[str], list[str]]:
    """A noun phrase at the start of `tokens` and what follows it."""
    w = _words()
    for i, token in enumerate(tokens):
        if i and (token in w["prepositions"] - {"of"} or token in ("and", "or") and not _adjectives_joined(tokens, i)
                  or token in w["clause_words"] or (token.endswith("ing") and token not in w["ing_nouns"]
                                                    and not _counts(tokens[i - 1]) and not _adjective(tokens[i - 1])
                                                    and not _compound_start(tokens, i))
                  or (token in ("of",) and tokens[i - 1] not in w["groups"] and tokens[i - 1] not in w["number_phrases"]
                      and tokens[i - 1] not in w["numbers"] and tokens[i - 1] not in w["partitives"])):
            return tokens[:i], tokens[i:]
    return tokens, []


def _shift(first: Agent | None, phrase: list[str], rest: list[str]) -> tuple[Agent | None, list[str], list[str]]:
    """The second agent, when the first noun phrase belongs to the action ("giving a warning call to a
    gecko", "competing for dominance with a turkey"): (agent, rest, words moved into the action)."""
    if not rest or rest[0] not in _SHIFT:
        return first, rest, []
    later_phrase, after = _phrase(rest[1:])
    later = _noun_phrase(later_phrase) if later_phrase else None
    bare = first is not None and not first.count
    if later is None or (_is_place(later) and not (bare and rest[0] in ("on", "at", "into", "onto"))):
        return first, rest, []  # "spraying water on a barn": the barn is what the action is done to
    if first is None or (not _animate(first) and (_animate(later) or bare)):
        return later, after, [*phrase, rest[0]]
    return first, rest, []


def _tail(tokens: list[str]) -> tuple[str, tuple[str, ...]]:
    """(the words that stay in the template after {b}, scene things): "in a park" is scene, "on its back" is not."""
    w = _words()
    if not tokens:
        return "", ()
    first = tokens[0]
    verb_first = first.endswith("ing") and first not in w["ing_nouns"] and len(first) >= 5
    if verb_first or (any(_verb_at(tokens, i) for i in range(1, len(tokens))) and first not in w["prepositions"]):
        return "", ()  # "... and a dog chasing a cat": a clause of its own
    if first in w["scene_prepositions"] or first in ("near", "next"):
        phrase, _ = _phrase([t for t in tokens[1:] if t not in ("to", "of", "front", "top")])
        place = _noun_phrase(phrase) if phrase else None
        if (place is not None and _is_place(place)) or first in ("in", "at", "during", "inside", "amid", "among"):
            return "", ((place.text,) if place is not None and not _is_place(place) else ())
    return " " + " ".join(tokens), ()
