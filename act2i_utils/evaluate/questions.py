"""The texts the judges read: VQA questions (the whole prompt, and its atoms: see `atoms.py`) and the
zero-shot action-classification captions."""

from __future__ import annotations

VQA_TEMPLATE = 'Does this figure show "{text}"? Please answer yes or no.'  # VQAScore's question (Lin et al. 2024), exactly
ANSWER_SUFFIX = " Please answer yes or no."


def with_article(name: str) -> str:
    """'an ostrich', 'a hyena': the article by the first letter (taxonomy names follow this rule)."""
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def action_phrase(action: str, template: str | None = None) -> str:
    """The action's template ("{a} carrying {b} on its back"); without one, "{a} <action> {b}"."""
    return template if isinstance(template, str) and template else "{a} " + action + " {b}"


def vqa_questions(base_prompt: str, animal1: str | None, animal2: str | None, action: str | None,
                  template: str | None = None) -> dict[str, str]:
    """metric -> question: the whole base prompt (`vqa`, VQAScore) and the prompt's atoms, which target
    the paper's failure modes: a missing agent (agent1, agent2), no such action (event), the wrong
    roles (action) and the role-reversed control (reversed)."""
    questions = {"vqa": VQA_TEMPLATE.format(text=base_prompt)}
    if animal1 and animal2:
        questions["vqa_agent1"] = f"Is there {with_article(animal1)} in this image?{ANSWER_SUFFIX}"
        questions["vqa_agent2"] = f"Is there {with_article(animal2)} in this image?{ANSWER_SUFFIX}"
    if animal1 and animal2 and action:
        phrase = action_phrase(action, template)
        questions["vqa_event"] = f"Does this image show {phrase.format(a='something', b='something else')}?{ANSWER_SUFFIX}"
        questions["vqa_action"] = f"Is {phrase.format(a=f'the {animal1}', b=f'the {animal2}')}?{ANSWER_SUFFIX}"
        questions["vqa_reversed"] = f"Is {phrase.format(a=f'the {animal2}', b=f'the {animal1}')}?{ANSWER_SUFFIX}"
    return questions


def action_caption(action: str, animal1: str | None, animal2: str | None, template: str | None = None) -> str:
    """A CLIP caption for `action` performed by this image's agents, from the action's template
    (the benchmark's `action_template`; without one, "{a} <action> {b}")."""
    a = with_article(animal1) if animal1 else "an animal"
    b = with_article(animal2) if animal2 else "another animal"
    return "a photo of " + action_phrase(action, template).format(a=a, b=b)
