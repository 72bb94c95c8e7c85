"""Metrics that mean what their names say (issue 29), each recomputed by hand from model outputs:
VQAScore as t2v_metrics computes it (exp of minus the mean cross-entropy of "Yes" and the end of the
sequence for a local model; the exact token "Yes" among the top log-probabilities for a served one,
written as `api_vqa*`), Soft-TIFA as GenEval 2 computes it (the summed full-softmax probability of
'Yes', 'yes', ' yes', ' Yes' for "<question> Answer in one word."), the renormalised reading under its
own name, and a top_logprobs setting the server refuses named in one sentence."""

import math

import numpy as np
import pytest
from PIL import Image
from test_enrich_openai import ChatServer

from act2i_utils.evaluate import atoms
from act2i_utils.evaluate.api import JudgeError, VlmApiJudge
from act2i_utils.evaluate.judges import API_METRICS, LOCAL_METRICS, VqaJudge
from act2i_utils.evaluate.questions import NO_VARIANTS, SYSTEM_MSG, TIFA_SUFFIX, YES_VARIANTS, tifa_question

ITEM = {"base_prompt": "a wolf chasing a deer", "animal1": "wolf", "animal2": "deer", "action": "chasing"}


@pytest.fixture(scope="module")
def judge():
    return VqaJudge("tiny:vlm", "cpu")


def images():
    noise = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    return [Image.new("RGB", (32, 32), "red"), Image.fromarray(noise)]


def forward(judge, image, text):
    """log-softmax over the vocabulary at every position of `text` (with the image), by hand."""
    import torch

    inputs = judge.processor(images=[image], text=[text], return_tensors="pt")
    with torch.inference_mode():
        logits = judge.model(**inputs).logits[0].double()
    return torch.log_softmax(logits, -1), inputs["input_ids"][0]


def test_vqascore_is_exp_minus_the_mean_cross_entropy_of_yes_and_the_end_of_sequence(judge):
    tokenizer = judge.processor.tokenizer
    values = judge.score(images(), [ITEM, ITEM])
    for image, found in zip(images(), values):
        for metric, question in judge.questions(ITEM).items():
            # t2v_metrics' LLaVA-1.5 conversation: its system message, USER/ASSISTANT, the answer "Yes" + eos
            prompt = f"{SYSTEM_MSG} USER: <image>\n{question} ASSISTANT:"
            answer = tokenizer(prompt + " Yes" + tokenizer.eos_token, add_special_tokens=False)["input_ids"][
                len(tokenizer(prompt, add_special_tokens=False)["input_ids"]):]
            logp, ids = forward(judge, image, prompt + " Yes" + tokenizer.eos_token)
            k = len(answer)
            assert ids[-k:].tolist() == answer and tokenizer.decode(answer[-1:]) == tokenizer.eos_token
            cross_entropy = -np.mean([logp[len(ids) - k - 1 + j, answer[j]].item() for j in range(k)])
            assert found[metric] == pytest.approx(math.exp(-cross_entropy), rel=1e-4)


def test_vqascore_is_the_geometric_mean_of_the_answer_tokens_probabilities(judge):
    """The same value from the next-token distributions alone: P(Yes | prompt) x P(eos | prompt, Yes)."""
    tokenizer = judge.processor.tokenizer
    question = judge.questions(ITEM)["vqa"]
    image = images()[0]
    prompt = f"{SYSTEM_MSG} USER: <image>\n{question} ASSISTANT:"
    full = prompt + " Yes" + tokenizer.eos_token
    answer = tokenizer(full, add_special_tokens=False)["input_ids"][len(tokenizer(prompt, add_special_tokens=False)["input_ids"]):]
    product, text = 1.0, prompt
    for token in answer:
        logp, _ = forward(judge, image, text)
        product *= math.exp(logp[-1, token].item())
        text = text + tokenizer.decode([token])
    (found,) = judge.score([image], [ITEM])
    assert found["vqa"] == pytest.approx(product ** (1 / len(answer)), rel=1e-4)


def test_soft_tifa_is_geneval_2s_summed_yes_probability(judge):
    tokenizer = judge.processor.tokenizer
    (found,) = judge.score(images()[:1], [ITEM])
    derived = judge.derive(found, ITEM)
    right, renormalised = {}, {}
    for atom, question in judge.questions(ITEM).items():
        if atom == "vqa":
            continue
        probs = judge.next_token_probabilities(images()[:1], [tifa_question(question)])[0]
        yes = sum(probs[tokenizer.encode(v, add_special_tokens=False)[0]].item() for v in YES_VARIANTS)
        no = sum(probs[tokenizer.encode(v, add_special_tokens=False)[0]].item() for v in NO_VARIANTS)
        wants_yes = atom != "vqa_reversed"
        right[atom] = yes if wants_yes else no
        renormalised[atom] = (yes if wants_yes else no) / (yes + no)
    assert tifa_question("Is the wolf chasing the deer? Please answer yes or no.") == \
        "Is the wolf chasing the deer?" + TIFA_SUFFIX == "Is the wolf chasing the deer? Answer in one word."
    assert derived["soft_tifa_am"] == pytest.approx(np.mean(list(right.values())), rel=1e-5)
    assert derived["soft_tifa_gm"] == pytest.approx(math.prod(right.values()) ** (1 / len(right)), rel=1e-5)
    assert derived["soft_tifa_am_renorm"] == pytest.approx(np.mean(list(renormalised.values())), rel=1e-5)
    assert derived["soft_tifa_gm_renorm"] == pytest.approx(math.prod(renormalised.values()) ** (1 / len(right)), rel=1e-5)


@pytest.mark.parametrize("top, geneval, renormalised", [
    ([("Yes", 0.30), (" yes", 0.10), ("No", 0.10), ("The", 0.50)], 0.40, 0.80),
    ([("yes", 0.15), ("No", 0.45), (" no", 0.15), ("I", 0.25)], 0.15, 0.20),
    ([(" Yes", 0.20), ("Yes", 0.20), ("no", 0.10), ("Y", 0.30), ("Based", 0.20)], 0.40, 0.80),
])
def test_the_two_readings_on_constructed_top_lists(top, geneval, renormalised):
    entry = {"token": top[0][0], "logprob": math.log(top[0][1]),
             "top_logprobs": [{"token": t, "logprob": math.log(p)} for t, p in top]}
    from act2i_utils.evaluate.api import answer_masses

    yes, no = answer_masses(entry)
    assert yes == pytest.approx(geneval) and yes / (yes + no) == pytest.approx(renormalised)
    values = {"_tifa_yes:vqa_agent1": yes, "_tifa_no:vqa_agent1": no}
    found = atoms.soft_tifa(values, "chasing")
    assert found["soft_tifa_am"] == pytest.approx(geneval) and found["soft_tifa_am_renorm"] == pytest.approx(renormalised)


def served(body):
    """A server as vLLM answers: the VQAScore question gets P(Yes) 0.6 as the exact token "Yes" (and
    0.1 as " Yes", which t2v_metrics does not count); an atom asked GenEval 2's way gets 'Yes' 0.5,
    'yes' 0.2, 'No' 0.2."""
    text = next(p["text"] for p in body["messages"][-1]["content"] if p["type"] == "text")
    if text.endswith(TIFA_SUFFIX):
        top = [("Yes", 0.5), ("yes", 0.2), ("No", 0.2), ("The", 0.1)]
    else:
        top = [("Yes", 0.6), (" Yes", 0.1), ("No", 0.3)]
    tops = [{"token": t, "logprob": math.log(p)} for t, p in top]
    return {"choices": [{"message": {"role": "assistant", "content": top[0][0]},
                         "logprobs": {"content": [{"token": top[0][0], "logprob": tops[0]["logprob"], "top_logprobs": tops}]}}]}


def test_the_api_judge_reads_t2v_metrics_gpt4o_way_and_geneval_2s_way():
    with ChatServer(served) as script:
        api = VlmApiJudge("judge", script.url, concurrency=2)
        (found,) = api.score([images()[0]], [ITEM])
    derived = api.derive(found, ITEM)
    assert found["api_vqa"] == pytest.approx(0.6) and found["api_vqa_action"] == pytest.approx(0.6)
    assert not any(m in found for m in ("vqa", "vqa_action"))  # another reading, another name
    assert derived["soft_tifa_am"] == pytest.approx((4 * 0.7 + 0.2) / 5)  # the control's right answer is No
    assert derived["soft_tifa_am_renorm"] == pytest.approx((4 * 0.7 / 0.9 + 0.2 / 0.9) / 5)
    first = [b["messages"][-1]["content"][0]["type"] for b in script.bodies]
    texts = [next(p["text"] for p in b["messages"][-1]["content"] if p["type"] == "text") for b in script.bodies]
    tifa = [b for b, t in zip(script.bodies, texts) if t.endswith(TIFA_SUFFIX)]
    # t2v_metrics puts the question before the image; GenEval 2 the image first
    assert all(f == "text" for f, t in zip(first, texts) if not t.endswith(TIFA_SUFFIX))
    assert all(b["messages"][-1]["content"][0]["type"] == "image_url" for b in tifa)
    assert len(tifa) == 5 and len(script.bodies) == 6 + 5


def test_local_and_api_rows_never_share_a_name_unless_they_share_a_definition():
    shared = set(LOCAL_METRICS) & set(API_METRICS)
    assert shared == set(atoms.SOFT_TIFA) | set(atoms.SOFT_TIFA_RENORM)  # GenEval 2's reading in both
    assert {"vqa", "vqa_action"} <= set(LOCAL_METRICS) and {"api_vqa", "api_vqa_action"} <= set(API_METRICS)


def test_top_logprobs_above_the_servers_maximum_is_refused_not_sampled():
    from test_enrich_openai import ChatServer as Server

    with Server(served) as script:
        script.statuses = [400]
        script.message = "Requested sample logprobs of 25, which is greater than max allowed: 20"
        api = VlmApiJudge("judge", script.url, top_logprobs=25, max_retries=0)
        with pytest.raises(JudgeError, match=r"evaluate.vlm_api_top_logprobs is 25.*at most 20"):
            api.score([images()[0]], [{"base_prompt": "a cat"}])
    assert not api.sampled and all("n" not in b for b in script.bodies)


def test_the_profile_says_which_metric_the_api_judge_writes():
    from act2i_utils.config import load_profile
    from act2i_utils.errors import ConfigError

    with pytest.raises(ConfigError, match=r"analyze.judge_metric.*'vqa'.*vlm_api.*api_vqa"):
        load_profile("smoke", {"evaluate": {"metrics": ["vlm_api"], "vlm_api_base_url": "http://x:1/v1"},
                               "pairs": {"enabled": False}})
