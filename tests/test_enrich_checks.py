"""Clean-up and checks on realistic chat-model output."""

import pytest

from act2i_utils.enrich import clean_and_check
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
    assert mentions("The Goat stands firm", "Goat") and mentions("a humpback whale", "humpback_whale")


class Budget:
    def too_long(self, text):
        return len(text.split()) > 5


def test_budget_flag_and_ranking():
    assert check(GOOD, BASE, ("wolf", "deer"), Budget()) == ["too_long"]
    ranked = sorted([["too_long"], ["refusal"], [], ["dropped_agent", "too_long"]], key=badness)
    assert ranked == [[], ["too_long"], ["dropped_agent", "too_long"], ["refusal"]]


# --- clean_and_check on messy replies, as chat models write them -------------------------------

ATTACK = "a wolf attacking a deer"
PROMPT = "A grey wolf lunging at a deer's flank in deep snow, both bodies twisted mid-strike, low side view."
OTHER = "A deer bounding away from a wolf across a frozen lake, seen from above."

MESSY = [
    # openers and preambles
    ("opener", f"Sure! {PROMPT}", PROMPT, []),
    ("opener and preamble", f"Certainly! Here's the rewritten prompt:\n\n{PROMPT}", PROMPT, []),
    ("of course", f"Of course. {PROMPT}", PROMPT, []),
    ("sure thing, I've rewritten", f"Sure thing! I've rewritten it to focus on body language:\n{PROMPT}", PROMPT, []),
    ("happy to help", f"I'd be happy to help!\n\n{PROMPT}", PROMPT, []),
    ("absolutely, here you go", f"Absolutely! Here you go:\n\n\"{PROMPT}\"\n\nFeel free to tweak the lighting.", PROMPT, []),
    ("labelled with its dimension", f"Rewritten prompt (temporal): {PROMPT}", PROMPT, []),
    ("title-case label on its own line", f"Enhanced Spatial Prompt:\n{PROMPT}", PROMPT, []),
    ("bold label, italic prompt", f"**Temporal rewrite:** *{PROMPT}*", PROMPT, []),
    ("preamble without a colon", f"Here's a version that emphasizes the freeze-frame.\n{PROMPT}", PROMPT, []),
    # reasoning blocks and chat-template tokens
    ("think block", f"<think>The user wants a temporal rewrite. Focus on the instant of contact.</think>\n{PROMPT}",
     PROMPT, []),
    ("think block, then a preamble",
     f"<think>\nSpatial layout: wolf left, deer right.\n</think>\n\nHere is the prompt:\n\"{PROMPT}\"", PROMPT, []),
    ("think block cut off", "<think>Okay, so the wolf should be lunging from the left and the deer", "", ["empty"]),
    ("stray closing tag", f"Okay, let me plan the scene first. </think> {PROMPT}", PROMPT, []),
    ("ChatML tokens", f"<|im_start|>assistant\n{PROMPT}<|im_end|>", PROMPT, []),
    ("Llama tokens", f"<|start_header_id|>assistant<|end_header_id|>\n\n{PROMPT}<|eot_id|>", PROMPT, []),
    # several options: the first is kept
    ("options in paragraphs", f"Option 1: {PROMPT}\n\nOption 2: {OTHER}", PROMPT, []),
    ("options inline in bold", f"**Option 1:** {PROMPT} **Option 2:** {OTHER}", PROMPT, []),
    ("options with letters", f"Sure! Option A: {PROMPT} Option B: {OTHER}", PROMPT, []),
    ("numbered list", f"Here are two versions:\n1. {PROMPT}\n2. {OTHER}", PROMPT, []),
    ("one numbered item", f"1. {PROMPT}", PROMPT, []),
    # notes and closing chatter
    ("token count", f"{PROMPT} (62 tokens)", PROMPT, []),
    ("word count paragraph", f"{PROMPT}\n\n(Word count: 41)", PROMPT, []),
    ("token count in brackets", f"{PROMPT} [58 tokens]", PROMPT, []),
    ("token count after a dash", f"{PROMPT} — 60 tokens", PROMPT, []),
    ("note in brackets", f"{PROMPT} (Note: I kept both animals and the action.)", PROMPT, []),
    ("hope this helps", f"{PROMPT} I hope this helps!", PROMPT, []),
    ("let me know", f"{PROMPT} Let me know if you'd like any changes.", PROMPT, []),
    ("closing paragraph", f"{PROMPT}\n\nI hope this helps! Let me know if you want a more dramatic version.", PROMPT, []),
    ("explanation paragraph", f"{PROMPT}\n\n**Explanation:** The low angle shows their relative size.", PROMPT, []),
    ("code fence and commentary", f"```text\n{PROMPT}\n```\nThis version adds a low camera angle.", PROMPT, []),
    ("blockquote", f"> {PROMPT}", PROMPT, []),
    # markdown inside the prompt
    ("snake_case words", "A grey wolf with muscles_tensed lunging at a deer in deep snow.",
     "A grey wolf with muscles tensed lunging at a deer in deep snow.", []),
    ("italic phrase", "A grey wolf, _hackles raised_, lunging at a **startled** deer in deep snow.",
     "A grey wolf, hackles raised, lunging at a startled deer in deep snow.", []),
    ("not an opener", "Sure-footed and fast, a grey wolf lunging at a deer on an icy ridge.",
     "Sure-footed and fast, a grey wolf lunging at a deer on an icy ridge.", []),
    # refusals
    ("apology refusal", "I apologize, but I cannot create an image of a wolf attacking a deer as it depicts violence.",
     None, ["refusal"]),
    ("understand-but refusal",
     "I understand you want a vivid scene of a wolf attacking a deer, but I can't write graphic violence.", None,
     ["refusal"]),
    ("curly apostrophe", "I’m sorry, but I can’t help with that.", None, ["refusal", "dropped_agent"]),
    ("language model refusal", "As an AI language model, I must decline to depict animal cruelty.", None,
     ["refusal", "dropped_agent"]),
    ("policy refusal", "Unfortunately, I am unable to generate this content because it violates the content policy.",
     None, ["refusal", "dropped_agent"]),
    ("refusal then a softer prompt",
     "I can't depict graphic violence, but here is a gentler version:\n\nA wolf watching a deer from afar.", None,
     ["refusal", "dropped_agent"]),
    ("opener then refusal", "Sure, but I won't describe a wolf attacking a deer in detail.", None, ["refusal"]),
    # other failures
    ("agent dropped", "Sure! A deer grazing alone in the snow at dusk.", "A deer grazing alone in the snow at dusk.",
     ["dropped_agent"]),
    ("unchanged", "Here is the prompt: a wolf attacking a deer", "a wolf attacking a deer", ["unchanged"]),
    ("only quotes", '""', "", ["empty"]),
    ("only chatter", "Sure! I hope this helps!", "", ["empty"]),
]


@pytest.mark.parametrize("raw, text, flags", [case[1:] for case in MESSY], ids=[case[0] for case in MESSY])
def test_clean_and_check_messy_replies(raw, text, flags):
    cleaned, found = clean_and_check(raw, ATTACK, ("wolf", "deer"))
    if text is not None:
        assert cleaned == text
    assert found == flags


def test_clean_and_check_counts_the_budget_and_takes_any_agent_sequence():
    assert clean_and_check(f"Sure! {PROMPT}", ATTACK, ["wolf", "deer"], Budget()) == (PROMPT, ["too_long"])
    assert clean_and_check(PROMPT, ATTACK, (None, None)) == (PROMPT, [])
    assert len(MESSY) >= 30
