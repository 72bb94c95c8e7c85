"""The texts the judges read: VQA questions (whole prompt and its decomposition) and the
zero-shot action-classification captions."""

from __future__ import annotations

VQA_TEMPLATE = "Does this figure show '{text}'? Please answer yes or no."  # VQAScore's question (Lin et al. 2024)
ANSWER_SUFFIX = " Please answer yes or no."


def with_article(name: str) -> str:
    """'an ostrich', 'a hyena': the article by the first letter (taxonomy names follow this rule)."""
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def vqa_questions(base_prompt: str, animal1: str | None, animal2: str | None, action: str | None) -> dict[str, str]:
    """metric -> question. The decomposition targets the paper's failure modes: a missing agent
    (agent1, agent2), a wrong action (action) and a role reversal (reversed, the control)."""
    questions = {"vqa": VQA_TEMPLATE.format(text=base_prompt)}
    if animal1 and animal2:
        questions["vqa_agent1"] = f"Is there {with_article(animal1)} in this image?{ANSWER_SUFFIX}"
        questions["vqa_agent2"] = f"Is there {with_article(animal2)} in this image?{ANSWER_SUFFIX}"
    if animal1 and animal2 and action:
        questions["vqa_action"] = f"Is the {animal1} {action} the {animal2}?{ANSWER_SUFFIX}"
        questions["vqa_reversed"] = f"Is the {animal2} {action} the {animal1}?{ANSWER_SUFFIX}"
    return questions


def action_caption(action: str, animal1: str | None, animal2: str | None, template: str | None = None) -> str:
    """A CLIP caption for `action` performed by this image's agents, from the action's template
    (the benchmark's `action_template`; without one, "{a} <action> {b}")."""
    a = with_article(animal1) if animal1 else "an animal"
    b = with_article(animal2) if animal2 else "another animal"
    return "a photo of " + (template or "{a} " + action + " {b}").format(a=a, b=b)
