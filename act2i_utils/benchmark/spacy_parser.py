"""The spaCy reading of an action prompt (`parsing.parse_prompt(parser="spacy")`, and "auto" with spaCy installed).

The dependency parse gives the structure: the action is the first verb with a subject (its `nsubj`, or
the noun it modifies in a fragment such as "four pigs jumping over a flamingo"), the second agent
its direct object or the object of one of its prepositions (an animate one first: "giving a warning
call to a gecko"), counts come from `nummod` and determiners, attributes from `amod` and from
`compound` words that the lexicon knows as adjectives ("stone dogs"), compound names from `compound`.
Small models misread some noun-verb fragments ("a wolf howling at a moose": "wolf" as a compound
of "howling"); a noun before the verb then counts as its subject. The model is `en_core_web_sm`
unless `ACT2I_SPACY_MODEL` names another (a package name or a folder).
"""

from __future__ import annotations

import functools
import os

from ..words import ing, lexicon, singular
from .rules import NOT_FOUND, Agent, ParsedPrompt, _adjective, _animate, _frame_stripped, _is_place, _normalise, _words

_NOUNS = ("NOUN", "PROPN")
_SUBJECTS = ("nsubj", "nsubjpass")
_MISREAD_SUBJECTS = ("compound", "amod", "npadvmod", "nmod", "dep", "nsubj")
_PREPS = ("prep", "dative", "agent")
_NOT_AGENTS = {"other", "another", "together", "each"}


def model_name() -> str:
    return os.environ.get("ACT2I_SPACY_MODEL", "en_core_web_sm")


@functools.lru_cache(maxsize=1)
def nlp():
    """The spaCy pipeline (tagger, parser, lemmatizer), loaded once."""
    import spacy

    return spacy.load(model_name(), disable=["ner"])


def parse_spacy(text: str) -> ParsedPrompt:
    """A `ParsedPrompt` from spaCy's dependency parse of `text`."""
    from .rules import _TOKEN

    from spacy.tokens import Doc

    model = nlp()
    words = [t for t in _frame_stripped(_TOKEN.findall(_normalise(str(text)))) if t not in "()"]
    doc = Doc(model.vocab, words=words or [""])  # the rules' tokens: "play-fighting" stays one word
    for _, component in model.pipeline:
        doc = component(doc)
    for verb in doc:
        if not _is_verb(verb):
            continue
        subject = _subject(verb)
        if subject is None:
            continue
        found = _read(text, doc, verb, subject)
        if found is not None:
            return found
    return ParsedPrompt(text, flag=NOT_FOUND, reason="spaCy found no action verb with a subject", parser="spacy")


def _is_verb(token) -> bool:
    if token.text in _words()["ing_nouns"] or token.lemma_ in ("be", "have"):
        return False
    return token.pos_ == "VERB" or token.tag_ == "VBG" or (token.dep_ in ("ROOT", "acl") and token.text.endswith("ing"))


def _subject(verb):
    for child in verb.children:
        if child.dep_ in _SUBJECTS and child.pos_ not in ("PRON", "DET"):
            return _through_of(child)  # "seven crows mobbing an owl" (even with "crows" tagged as a verb)
    if verb.dep_ in ("acl", "relcl", "amod", "advcl", "conj") and verb.head.pos_ in _NOUNS and verb.head.i < verb.i:
        return _through_of(verb.head)  # "four pigs jumping over a flamingo": the verb modifies its subject
    left = [c for c in verb.lefts if c.dep_ in _MISREAD_SUBJECTS and c.pos_ in _NOUNS + ("ADJ",)
            and c.text not in _words()["attributes"]]
    return _through_of(left[-1]) if left else None


def _through_of(token):
    """"a pair of swans", "a herd of zebras": the noun after "of" is the agent."""
    words = lexicon()
    if token.lemma_ in words["number_phrases"] or token.lemma_ in words["groups"]:
        for child in token.children:
            if child.dep_ == "prep" and child.text == "of":
                objects = [c for c in child.children if c.dep_ == "pobj"]
                if objects:
                    return objects[0]
    return token


def _first_conjunct(token):
    """The first of "a cat and a dog"; not across a comma ("a brown guitar, and seven turtles")."""
    while token.dep_ == "conj" and token.head.pos_ in _NOUNS and \
            not any(t.text in (",", ";") for t in token.doc[token.head.i:token.i]):
        token = token.head
    return token


def _read(text: str, doc, verb, subject) -> ParsedPrompt | None:
    subject = _first_conjunct(subject)
    others = [c for c in subject.subtree if c.dep_ == "conj" and c.pos_ in _NOUNS and c.i < verb.i
              and not any(t.text in (",", ";") for t in doc[subject.i:c.i])]
    if verb.dep_ == "conj" and not others:  # "a bride and a groom dancing": "groom" read as the verb's compound
        others = [c for c in verb.lefts if c.dep_ in _MISREAD_SUBJECTS and c.pos_ in _NOUNS and c.i > subject.i]
    passive = any(c.dep_ in ("auxpass", "agent") for c in verb.children)
    first = _agent(doc, subject, verb)
    phrase = f"being {verb.text} by" if passive else (verb.text if verb.text.endswith("ing") else ing(verb.lemma_))
    second = _second(verb, passive)
    objects = tuple(_agent(doc, o, verb).text for o in others)
    if second is not None:
        agent2 = _agent(doc, second, verb)
        between = [t.text for t in doc[verb.i + 1:_start(second)] if t.dep_ != "punct"]
        if passive:
            between = []
        if others and not _animate(agent2) and (between or not agent2.count):
            partner = _agent(doc, others[0], verb)
            words = " ".join(t.text for t in doc[verb.i + 1:second.i + 1] if t.dep_ != "punct")
            return ParsedPrompt(text, first, partner, action=phrase, template=f"{{a}} and {{b}} {phrase} {words}".strip(),
                                objects=objects[1:], parser="spacy")
        action = " ".join([phrase, *between])
        return ParsedPrompt(text, first, agent2, action=action, template=f"{{a}} {action} {{b}}{_tail(doc, second)}",
                            objects=objects, parser="spacy")
    if others:
        partner = _agent(doc, others[0], verb)
        return ParsedPrompt(text, first, partner, action=phrase, template=f"{{a}} and {{b}} {phrase}",
                            objects=objects[1:], parser="spacy")
    return None


def _second(verb, passive: bool):
    """The second agent's token: the direct object, or an animate object of a later preposition."""
    candidates = []
    for child in verb.children:
        if child.dep_ in ("dobj", "attr") and not passive:
            candidates.append(child)
            candidates += [p for prep in child.children if prep.dep_ in _PREPS for p in prep.children if p.dep_ == "pobj"]
        elif child.dep_ in _PREPS + ("prt", "advmod") and child.i > verb.i:
            candidates += [p for p in child.subtree if p.dep_ == "pobj" and p.head.dep_ in _PREPS + ("prt", "advmod")]
    candidates = sorted({_through_of(c).i: _through_of(c) for c in candidates
                         if c.text not in _NOT_AGENTS}.values(), key=lambda t: t.i)
    if passive:
        candidates = [c for c in candidates if c.head.dep_ == "agent"] or candidates
    agents = [c for c in candidates if not _is_place(_agent(c.doc, c, verb))]
    if not agents:
        return None
    if not _animate(_agent(agents[0].doc, agents[0], verb)):
        return next((c for c in agents[1:] if _animate(_agent(c.doc, c, verb))), agents[0])
    return agents[0]


def _start(token) -> int:
    """Where the noun phrase of `token` begins ("a pair of swans" begins at "a")."""
    head = token.head
    if head.dep_ == "prep" and head.text == "of" and head.head.lemma_ in set(lexicon()["number_phrases"]) | set(lexicon()["groups"]):
        return head.head.left_edge.i
    return min([token.i] + [c.i for c in token.lefts])


def _tail(doc, second) -> str:
    """Words after the second agent that belong to the action ("on its back"), not the scene ("in a park")."""
    words = []
    for token in doc[second.i + 1:]:
        if token.dep_ == "punct" or token.text in _words()["clause_words"]:
            break
        words.append(token)
    if not words:
        return ""
    head = words[0]
    if head.text in _words()["scene_prepositions"]:
        pobj = next((c for c in head.subtree if c.dep_ == "pobj"), None)
        if head.text in ("in", "at", "during", "inside") or (pobj is not None and _is_place(_agent(doc, pobj, None))):
            return ""
    return " " + " ".join(t.text for t in words)


def _agent(doc, token, verb) -> Agent:
    """An `Agent` from a noun token and its dependents (and, for a misread fragment, the verb's)."""
    numbers, phrases = lexicon()["numbers"], lexicon()["number_phrases"]
    lefts = [c for c in token.lefts]
    if verb is not None and token.head == verb and token.i < verb.i:
        lefts = [c for c in verb.lefts if c.i < token.i] + lefts  # "a puppy playing": the det hangs on the verb
    quantity = _words()["quantifiers"] | _words()["determiners"] | set(numbers)
    modifiers = [c.text for c in lefts if c.dep_ in ("compound", "amod", "nmod") and c.text not in quantity]
    counts = [c for c in lefts if c.dep_ in ("nummod", "det", "poss", "quantmod") or c.text in quantity]
    noun_words = [token.text]
    for word in reversed(modifiers):
        candidate = " ".join([word] + noun_words)
        if candidate in _words()["compounds"] or singular(candidate) in _words()["compounds"] or not _adjective(word):
            noun_words.insert(0, word)
        else:
            break
    attributes = modifiers[:len(modifiers) - len(noun_words) + 1]
    count, number = "", None
    start = _start(token)
    if start < token.i and doc[start].text in ("a", "an") and doc[start + 1].lemma_ in phrases:
        count, number = " ".join(t.text for t in doc[start:start + 3]), phrases[doc[start + 1].lemma_]
    elif start < token.i and doc[start + 1].lemma_ in lexicon()["groups"]:
        count = " ".join(t.text for t in doc[start:start + 3])  # "a herd of": a plural of unknown size
        number = -1
    for c in counts:
        if c.text in numbers:
            count, number = c.text, numbers[c.text]
        elif c.text.isdigit():
            count, number = c.text, int(c.text)
        elif not count:
            count = c.text
    plural = token.tag_ in ("NNS", "NNPS") or (number is not None and number != 1)
    number = None if number == -1 else number
    noun = " ".join(noun_words)
    noun = singular(noun) if plural else noun.lower()
    if number is None and not plural:
        number = 1
    if number is None and count in ("a", "an"):
        number = 1
    return Agent(noun=noun, count=count, number=number, attributes=tuple(attributes),
                 text=" ".join(t.text for t in doc[min(start, *(c.i for c in lefts)) if lefts else start:token.i + 1]))
