"""The texts the judges read: VQA questions (the whole prompt, and its atoms: see `atoms.py`) and the
zero-shot action-classification captions."""

from __future__ import annotations

import re

from ..words import count_number, lexicon, number_word, plural

VQA_TEMPLATE = 'Does this figure show "{text}"? Please answer yes or no.'  # VQAScore's question (Lin et al. 2024), exactly
ANSWER_SUFFIX = " Please answer yes or no."
# t2v_metrics' system message for LLaVA-1.5 (its constants.SYSTEM_MSG), before "USER: <image>\n{question} ASSISTANT: Yes</s>"
SYSTEM_MSG = ("A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
              "detailed, and polite answers to the user's questions.")
TIFA_SUFFIX = " Answer in one word."  # GenEval 2 asks each atom as "{question} Answer in one word."
YES_VARIANTS = ("Yes", "yes", " yes", " Yes")  # GenEval 2's answer list, in its order
NO_VARIANTS = ("No", "no", " no", " No")  # the same for an atom whose right answer is no (act2i's control)
# materials asked as "made of ...": the substance, for the adjective a prompt uses ("wooden dogs")
SUBSTANCES = {"wooden": "wood", "wood": "wood", "woolen": "wool", "woollen": "wool", "wool": "wool", "metal": "metal",
              "metallic": "metal", "stone": "stone", "glass": "glass", "plastic": "plastic", "paper": "paper",
              "gold": "gold", "iron": "iron", "steel": "steel", "marble": "marble", "clay": "clay", "ceramic": "ceramic",
              "porcelain": "porcelain", "rubber": "rubber", "cardboard": "cardboard", "leather": "leather",
              "crystal": "crystal", "ice": "ice", "chocolate": "chocolate", "felt": "felt", "fabric": "fabric",
              "cloth": "cloth", "concrete": "concrete", "brick": "brick", "granite": "granite", "jade": "jade",
              "bamboo": "bamboo", "wicker": "wicker", "candy": "candy", "sugar": "sugar", "cheese": "cheese",
              "snow": "snow", "sand": "sand", "cotton": "cotton", "silk": "silk", "velvet": "velvet", "denim": "denim",
              "tin": "tin", "aluminum": "aluminum", "aluminium": "aluminium", "brass": "brass", "platinum": "platinum",
              "diamond": "diamond", "pearl": "pearl", "wax": "wax", "lego": "Lego bricks"}


def tifa_question(question: str) -> str:
    """An atom's VQAScore question as GenEval 2 asks it: "Is there a wolf in this image? Answer in one word."."""
    return question.removesuffix(ANSWER_SUFFIX) + TIFA_SUFFIX


def with_article(name: str) -> str:
    """'an ostrich', 'a hyena': the article by the first letter (taxonomy names follow this rule)."""
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def action_phrase(action: str, template: str | None = None) -> str:
    """The action's template ("{a} carrying {b} on its back"); without one, "{a} <action> {b}"."""
    return template if isinstance(template, str) and template else "{a} " + action + " {b}"


def vqa_questions(base_prompt: str, animal1: str | None, animal2: str | None, action: str | None,
                  template: str | None = None, counts: tuple = (None, None),
                  attributes: tuple = (None, None)) -> dict[str, str]:
    """metric -> question: the whole base prompt (`vqa`, VQAScore) and the prompt's atoms, which target
    the paper's failure modes: a missing agent (agent1, agent2), no such action (event), the wrong
    roles (action) and the role-reversed control (reversed); and, where the prompt names them, each
    agent's count ("Are there four pigs in this image?") and attributes ("Is the sheep blue?").

    `counts`: each agent's count as written ("four", "3", "a"); `attributes`: each agent's attributes
    (a list, or ";"-separated text).
    """
    questions = {"vqa": VQA_TEMPLATE.format(text=base_prompt)}
    if not (animal1 and animal2):
        return questions
    agents = [_Agent(name, count, attrs, base_prompt) for name, count, attrs in zip((animal1, animal2), counts, attributes)]
    for n, agent in enumerate(agents, 1):
        questions[f"vqa_agent{n}"] = f"{agent.there()} in this image?{ANSWER_SUFFIX}"
    if action:
        phrase = action_phrase(action, template)
        a, b = agents
        questions["vqa_event"] = f"Does this image show {phrase.format(a='something', b='something else')}?{ANSWER_SUFFIX}"
        questions["vqa_action"] = f"{_copula(a, phrase)} {phrase.format(a=a.the(), b=b.the())}?{ANSWER_SUFFIX}"
        if not phrase.startswith("{a} and {b}"):  # "the cat and the dog fighting" reads the same both ways
            questions["vqa_reversed"] = f"{_copula(b, phrase)} {phrase.format(a=b.the(), b=a.the())}?{ANSWER_SUFFIX}"
    for n, agent in enumerate(agents, 1):
        if agent.number is not None and agent.number > 1:
            questions[f"vqa_count{n}"] = f"Are there {number_word(agent.number)} {agent.plural_name} in this image?{ANSWER_SUFFIX}"
        if agent.attributes:
            questions[f"vqa_attribute{n}"] = f"{agent.described()}?{ANSWER_SUFFIX}"
    return questions


def _copula(agent: "_Agent", phrase: str) -> str:
    return "Are" if agent.is_plural or phrase.startswith("{a} and {b}") else "Is"


class _Agent:
    """An agent as the questions name it: singular or plural, with its attributes."""

    def __init__(self, name: str, count, attributes, prompt: str = ""):
        self.name = name
        self.number = count_number(count) if isinstance(count, str) and count else None
        self.plural_name = plural(name)
        if self.number is not None:
            self.is_plural = self.number > 1
        else:  # "the children", "people", "several cats": plural when the prompt says the plural
            words = set(re.findall(r"[a-z'-]+", (prompt or "").lower()))
            last = self.plural_name.split()[-1]
            self.is_plural = last != name.split()[-1] and last in words or _plural_count(count)
        if isinstance(attributes, str):
            attributes = [a for a in attributes.split(";") if a.strip()]
        self.attributes = [a.strip() for a in (attributes or [])]

    def there(self) -> str:
        return f"Are there {self.plural_name}" if self.is_plural else f"Is there {with_article(self.name)}"

    def the(self) -> str:
        return f"the {self.plural_name if self.is_plural else self.name}"

    def described(self) -> str:
        """"Is the sheep blue", "Are the dogs made of stone", "Is the dog an origami dog"."""
        copula, subject = ("Are", self.the()) if self.is_plural else ("Is", self.the())
        lex = lexicon()
        predicates = (set(lex["colours"]) | set(lex["sizes"]) | set(lex["adjectives"])) - set(lex["modifier_nouns"])
        plain = [a for a in self.attributes if a in predicates or (a.endswith(("ed", "y", "ful", "ous", "ing"))
                                                                   and a not in lex["modifier_nouns"])]
        made = [SUBSTANCES[a] for a in self.attributes if a in SUBSTANCES and a not in plain]
        other = [a for a in self.attributes if a not in plain and a not in SUBSTANCES]
        if other:
            words = " ".join(self.attributes)
            noun = f"{words} {self.plural_name}" if self.is_plural else with_article(f"{words} {self.name}")
            return f"{copula} {subject} {noun}"
        parts = plain + ([f"made of {' and '.join(made)}"] if made else [])
        return f"{copula} {subject} {_join(parts)}"


def _plural_count(count) -> bool:
    """A count word that means more than one ("several", "some", "a herd of")."""
    words = (count or "").lower().split() if isinstance(count, str) else []
    lex = lexicon()
    return any(w in ("several", "some", "many", "few", "these", "those", "all", "both", "multiple", "numerous")
               or w in lex["groups"] for w in words)


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def action_caption(action: str, animal1: str | None, animal2: str | None, template: str | None = None) -> str:
    """A CLIP caption for `action` performed by this image's agents, from the action's template
    (the benchmark's `action_template`; without one, "{a} <action> {b}")."""
    a = with_article(animal1) if animal1 else "an animal"
    b = with_article(animal2) if animal2 else "another animal"
    return "a photo of " + action_phrase(action, template).format(a=a, b=b)
