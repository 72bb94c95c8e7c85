"""English word forms the stages share: nouns in the singular and plural, and the forms of a verb.

Rules first, then the exceptions of `data/lexicon.yaml` (irregular plurals, nouns that end in s in
the singular, verbs that double their consonant). A core module: the prompt parser reads agents with
it, the enricher checks that a rewrite still names them, the judges ask "Are there four pigs?".

    >>> singular("wolves"), singular("walruses"), singular("policemen"), plural("mouse"), plural("bus")
    ('wolf', 'walrus', 'policeman', 'mice', 'buses')
    >>> verb_base("chases"), ing("chase"), ing("run"), ing("flee")
    ('chase', 'chasing', 'running', 'fleeing')
"""

from __future__ import annotations

import functools
from pathlib import Path

import yaml

LEXICON = Path(__file__).parent / "data" / "lexicon.yaml"
_MAN_EXCEPTIONS = {"human", "shaman", "talisman", "caiman", "ottoman", "german", "cayman", "roman", "walkman"}
_IE_NOUNS = {"movie", "cookie", "zombie", "brownie", "pie", "tie", "collie", "hippie", "rookie", "genie", "pixie",
             "selfie", "smoothie", "auntie", "birdie", "budgie", "yorkie", "doggie", "magpie", "lassie", "sweetie",
             "calorie", "prairie", "kiddie", "bootie", "goalie", "hoodie", "newbie", "zombie", "veggie", "bookie"}
_OE_PLAIN = {"shoe", "toe", "canoe", "horseshoe", "oboe", "hoe", "floe", "tiptoe", "foe", "sloe", "roe", "doe"}
_CHE_NOUNS = {"niche", "cache", "headache", "mustache", "moustache", "avalanche", "cliche", "creche", "quiche",
              "psyche", "douche", "stomachache", "toothache", "ache"}
_VE_PLAIN = {"dove", "glove", "olive", "wave", "clove", "knave", "drive", "valve", "curve", "grave", "cave",
             "hive", "stove", "groove", "sleeve", "slave", "move", "nerve", "dive", "serve", "five", "cove"}


@functools.lru_cache(maxsize=None)
def lexicon() -> dict:
    """The word lists of data/lexicon.yaml (read once)."""
    return yaml.safe_load(LEXICON.read_text(encoding="utf-8"))


@functools.lru_cache(maxsize=None)
def _plural_to_singular() -> dict[str, str]:
    lex = lexicon()
    out = {plural: single for single, plural in lex["irregular_plurals"].items()}
    out.update(lex["extra_plurals"])
    return out


@functools.lru_cache(maxsize=None)
def _singular_s() -> frozenset:
    return frozenset(lexicon()["singular_s"])


@functools.lru_cache(maxsize=None)
def _uncountable() -> frozenset:
    return frozenset(lexicon()["uncountable"])


def singular(noun: str) -> str:
    """The singular of a noun or compound noun ("police officers" -> "police officer")."""
    head, _, last = noun.strip().lower().rpartition(" ")
    return f"{head} {_singular_word(last)}".strip()


def plural(noun: str) -> str:
    """The plural of a noun or compound noun in the singular ("police officer" -> "police officers")."""
    head, _, last = noun.strip().lower().rpartition(" ")
    return f"{head} {_plural_word(last)}".strip()


def is_plural(word: str) -> bool:
    """Whether a single word reads as a plural ("pigs", "mice"); uncountable nouns ("sheep") are not."""
    word = word.lower()
    return word in _plural_to_singular() or (_singular_word(word) != word and word not in _uncountable())


def _singular_word(word: str) -> str:
    if word in _uncountable() or word in _singular_s():
        return word
    irregular = _plural_to_singular()
    if word in irregular:
        return irregular[word]
    if word.endswith("men") and len(word) > 4 and word[:-3] + "man" not in _MAN_EXCEPTIONS \
            and word not in ("omen", "semen", "specimen", "abdomen", "ramen", "amen", "stamen", "regimen"):
        return word[:-3] + "man"  # policemen, snowmen, fishermen
    if word.endswith("us") and word[:-1] in lexicon()["u_nouns"]:
        return word[:-1]  # emus, gnus
    if len(word) < 3 or not word.endswith("s") or word.endswith(("ss", "us", "is")):
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-1] if word[:-1] in _IE_NOUNS else word[:-3] + "y"
    if word.endswith("ves"):
        stem = word[:-3]
        for single in (stem + "f", stem + "fe"):
            if lexicon()["irregular_plurals"].get(single) == word:
                return single
        return word[:-1]
    if word.endswith("oes"):
        return word[:-1] if word[:-1] in _OE_PLAIN else word[:-2]
    if word.endswith("uses") and word[:-2] in _singular_s():
        return word[:-2]  # buses, walruses
    if word.endswith(("sses", "xes", "shes", "zzes")) or (word.endswith("ches") and word[:-1] not in _CHE_NOUNS):
        return word[:-2]
    if word[:-2] in _singular_s() and word.endswith("es"):
        return word[:-2]  # ibises, mantises
    return word[:-1]


def _plural_word(word: str) -> str:
    irregular = lexicon()["irregular_plurals"]
    if word in irregular:
        return irregular[word]
    if word in _uncountable():
        return word
    if word.endswith("man") and word not in _MAN_EXCEPTIONS and len(word) > 3:
        return word[:-3] + "men"
    if word.endswith("y") and len(word) > 1 and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return word + "es"
    return word + "s"


# --- verbs -----------------------------------------------------------------------------------

def ing(base: str) -> str:
    """The -ing form of a verb in its base form ("chase" -> "chasing", "lie" -> "lying")."""
    if base.endswith("ie"):
        return base[:-2] + "ying"
    if base.endswith("e") and not base.endswith(("ee", "oe", "ye")) and base != "be":
        return base[:-1] + "ing"
    if base in _doubling():
        return base + base[-1] + "ing"
    return base + "ing"


def third_person(base: str) -> str:
    """'chase' -> 'chases', 'carry' -> 'carries', 'catch' -> 'catches'."""
    if base.endswith("y") and len(base) > 1 and base[-2] not in "aeiou":
        return base[:-1] + "ies"
    if base.endswith(("s", "x", "z", "ch", "sh", "o")):
        return base + "es"
    return base + "s"


def past(base: str) -> tuple[str, str]:
    """(past tense, past participle): 'chase' -> ('chased', 'chased'), 'bite' -> ('bit', 'bitten')."""
    irregular = lexicon()["irregular_verbs"]
    if base in irregular:
        return tuple(irregular[base])
    if base.endswith("e"):
        form = base + "d"
    elif base.endswith("y") and len(base) > 1 and base[-2] not in "aeiou":
        form = base[:-1] + "ied"
    elif base in _doubling():
        form = base + base[-1] + "ed"
    else:
        form = base + "ed"
    return form, form


@functools.lru_cache(maxsize=None)
def _doubling() -> frozenset:
    return frozenset(lexicon()["doubling_verbs"])


@functools.lru_cache(maxsize=None)
def verb_forms() -> dict[str, tuple[str, str]]:
    """Every form of every lexicon verb -> (its base form, the kind: base, s, past, participle, ing)."""
    out: dict[str, tuple[str, str]] = {}
    for base in lexicon()["verbs"]:
        simple, participle = past(base)
        for form, kind in ((ing(base), "ing"), (participle, "participle"), (simple, "past"),
                           (third_person(base), "s"), (base, "base")):
            out.setdefault(form, (base, kind))
    return out


def verb_base(word: str) -> str | None:
    """The base form of a lexicon verb in any form ("bitten" -> "bite"), or None."""
    found = verb_forms().get(word.lower())
    return found[0] if found else None


# --- counts ----------------------------------------------------------------------------------

_NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
                 "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty")


def count_number(count: str | None) -> int | None:
    """The number a count as written gives: "four" -> 4, "3" -> 3, "a pair of" -> 2, "a" -> 1; None
    for an unspecified number ("several", "a herd of", "the")."""
    words = (count or "").lower().split()
    lex = lexicon()
    for word in words:
        if word.isdigit():
            return int(word)
        if word in lex["numbers"] and word != "one":
            return lex["numbers"][word]
        if word in lex["number_phrases"]:
            return lex["number_phrases"][word]
    if words in (["a"], ["an"], ["one"], ["another"], ["a", "single"]):
        return 1
    return None


def number_word(number: int) -> str:
    """4 -> "four"; numbers above twenty stay digits."""
    return _NUMBER_WORDS[number] if 0 <= number < len(_NUMBER_WORDS) else str(number)


RECIPROCAL_WORDS = ("each other", "one another", "together", "mutually")


def reciprocal(action: str | None, template: str | None = None) -> bool:
    """Whether an action reads the same both ways (no role to reverse): both agents as the subject
    ("{a} and {b} wrestling"), "each other" or
    "together"; a verb that is mutual by meaning (wrestling, greeting, facing: `mutual_verbs` of the
    lexicon) unless a particle makes it one-sided (fighting off, facing down); or a phrase ending in
    "with" (playing with, touching noses with) unless its verb is one-sided with "with" (fleeing with,
    catching up with: `one_sided_with`) or a particle precedes "with" (making off with)."""
    if template and template.lstrip().startswith("{a} and {b}"):
        return True
    if action is None and template and "{a}" in template and "{b}" in template:
        action = template.split("{a}", 1)[1].split("{b}", 1)[0]
    text = " ".join((action or "").lower().replace("-", " - ").split()).replace(" - ", "-")
    if not text:
        return False
    if any(f" {w} " in f" {text} " for w in RECIPROCAL_WORDS):
        return True
    words = text.split()
    lex = lexicon()
    first, pair = words[0], " ".join(words[:2])
    particle = len(words) > 1 and words[1] in lex["one_sided_particles"]
    if pair in _verb_forms(*lex["mutual_verbs"]) or (first in _verb_forms(*lex["mutual_verbs"]) and not particle):
        return True
    if words[-1] == "with" and len(words) > 1:
        return first not in _verb_forms(*lex["one_sided_with"]) and words[-2] not in lex["one_sided_particles"]
    return False


@functools.lru_cache(maxsize=None)
def _verb_forms(*bases: str) -> frozenset:
    """Every form of the verbs (and phrasal verbs: "face off" gives "facing off") act2i writes."""
    forms = set()
    for base in bases:
        verb, *rest = base.split()
        tail = [" ".join(rest)] if rest else []
        forms |= {" ".join([form, *tail]) for form in (verb, ing(verb), third_person(verb))}
    return frozenset(forms)
