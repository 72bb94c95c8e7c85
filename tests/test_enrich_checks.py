"""Clean-up and checks on realistic chat-model output."""

import pytest

from act2i_utils.enrich.checks import badness, check, clean, mentions

BASE = "a wolf chasing a deer"
GOOD = "A grey wolf racing behind a deer across fresh snow, both in full stride, low side view"


@pytest.mark.parametrize(
    "raw",
    [
        f"Here is the rewritten prompt:\n\n{GOOD}",
        f"Sure! Here's an enhanced version of your prompt: \"{GOOD}\"",
        f"**Rewritten prompt:** {GOOD}",
        f"\"{GOOD}\"\n\nNote: I added spatial detail about the snow and the camera angle.",
        f"```\n{GOOD}\n```",
        f"Prompt: {GOOD}\n\nThis prompt emphasises the pursuit.",
        f"# Temporal rewrite\n\n{GOOD}",
        f"“{GOOD}”",
        f"  {GOOD}  \n",
    ],
)
def test_clean_strips_wrappers(raw):
    assert clean(raw) == GOOD


def test_clean_keeps_an_ordinary_prompt_and_empty_input():
    assert clean("a wolf, mid-leap, chasing a deer") == "a wolf, mid-leap, chasing a deer"
    assert clean("") == "" and clean(None) == ""


@pytest.mark.parametrize(
    "text, flags",
    [
        (GOOD, []),
        ("", ["empty"]),
        ("I'm sorry, but I can't help with depicting animal violence.", ["refusal", "dropped_agent"]),
        ("As an AI, I cannot create that prompt about a wolf and a deer.", ["refusal"]),
        ("A deer running through snow, low side view", ["dropped_agent"]),
        ("A wolf chasing a deer.", ["unchanged"]),
        ("Two wolves chasing a deer", []),
    ],
)
def test_check_flags(text, flags):
    assert check(text, BASE, ("wolf", "deer")) == flags


def test_agent_mentions_handle_plurals_and_compound_names():
    assert mentions("two geese at dawn", "goose") and mentions("mice everywhere", "mouse")
    assert mentions("the bear rears up", "grizzly bear")
    assert mentions("a play-fighting otter", "otter") and not mentions("an otterhound", "otter")


class Budget:
    def too_long(self, text):
        return len(text.split()) > 5


def test_budget_flag_and_ranking():
    assert check(GOOD, BASE, ("wolf", "deer"), Budget()) == ["too_long"]
    ranked = sorted([["too_long"], ["refusal"], [], ["dropped_agent", "too_long"]], key=badness)
    assert ranked == [[], ["too_long"], ["dropped_agent", "too_long"], ["refusal"]]
