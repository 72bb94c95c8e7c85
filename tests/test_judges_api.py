"""The vlm_api judge against a real chat-completions server on 127.0.0.1 that serves the tiny VLM
(tests/test_enrich_openai.py): t2v_metrics' P("Yes") and GenEval 2's summed Yes probability from
log-probabilities equal a hand computation from the model, the sampled fallback of a server without log-probabilities, retries, timeouts, a refused
connection, the judgement cache and the scores table."""

import math
import socket

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from test_enrich_openai import ChatServer, TinyVlm

from act2i_utils import evaluate, generate
from act2i_utils.benchmark import build_benchmark
from act2i_utils.config import EvaluateConfig
from act2i_utils.enrich import enrich
from act2i_utils.enrich.kb import KnowledgeBaseBackend
from act2i_utils.errors import ConfigError
from act2i_utils.evaluate.api import JudgeError, VlmApiJudge, answer_masses, t2v_yes
from act2i_utils.evaluate.atoms import NO_MASS, YES_MASS
from act2i_utils.evaluate.judges import API_METRICS
from act2i_utils.evaluate.questions import NO_VARIANTS, YES_VARIANTS, tifa_question
from act2i_utils.runs import open_run

ITEM = {"base_prompt": "a wolf chasing a deer", "animal1": "wolf", "animal2": "deer", "action": "chasing"}
ATOMS = ["vqa", "vqa_agent1", "vqa_agent2", "vqa_event", "vqa_action", "vqa_reversed"]


@pytest.fixture(scope="module")
def vlm():
    return TinyVlm()


@pytest.fixture
def served(vlm):
    vlm.logprobs, vlm.yes_or_no = True, False
    with ChatServer(vlm) as script:
        yield script


def judge(url, **kwargs) -> VlmApiJudge:
    settings = dict(concurrency=4, timeout_s=10.0, max_retries=2, top_logprobs=20, samples=8)
    made = VlmApiJudge("tiny-vlm", url, **{**settings, **kwargs})
    made.client.backoff_s = 0.01
    return made


def images():
    noise = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    return [Image.new("RGB", (32, 32), "red"), Image.fromarray(noise)]


def by_hand(vlm, image, question) -> tuple[float, float, float]:
    """(P(the token "Yes"), summed P of the Yes variants, of the No variants) of the first answer token,
    every token counted by its exact text."""
    probs = vlm.judge.next_token_probabilities([image], [question])[0].tolist()
    text = [vlm.token(i) for i in range(len(probs))]
    exact = sum(p for t, p in zip(text, probs) if t == "Yes")
    yes = sum(p for t, p in zip(text, probs) if t in YES_VARIANTS)
    no = sum(p for t, p in zip(text, probs) if t in NO_VARIANTS)
    return exact, yes, no


def test_both_readings_equal_a_hand_computation(served, vlm):
    vocab = len(vlm.tokenizer)
    values = judge(served.url, top_logprobs=vocab).score(images(), [ITEM, ITEM])
    questions = VlmApiJudge.questions(ITEM)
    assert list(questions) == ATOMS
    for image, found in zip(images(), values):
        assert {m for m in found if not m.startswith("_")} == {f"api_{m}" for m in ATOMS}
        for metric, question in questions.items():
            exact, _, _ = by_hand(vlm, image, question)
            assert found[f"api_{metric}"] == pytest.approx(exact, rel=1e-5, abs=1e-9)
            if metric != "vqa":
                _, yes, no = by_hand(vlm, image, tifa_question(question))
                assert found[YES_MASS + metric] == pytest.approx(yes, rel=1e-5, abs=1e-9)
                assert found[NO_MASS + metric] == pytest.approx(no, rel=1e-5, abs=1e-9)
    body = served.bodies[0]
    assert body["model"] == "tiny-vlm" and body["max_tokens"] == 1 and body["temperature"] == 0
    assert body["logprobs"] is True and body["top_logprobs"] == vocab


def test_a_judge_that_answers_only_yes_or_no_keeps_the_odds_of_the_top_20(served, vlm):
    full = judge(served.url, top_logprobs=len(vlm.tokenizer)).score(images(), [ITEM, ITEM])
    vlm.yes_or_no = True  # as vLLM's guided choice: all the mass on the yes and no tokens, their odds kept
    top20 = judge(served.url).score(images(), [ITEM, ITEM])
    for a, b in zip(full, top20):
        for atom in ATOMS[1:]:
            ratio_full = a[YES_MASS + atom] / (a[YES_MASS + atom] + a[NO_MASS + atom])
            ratio_top = b[YES_MASS + atom] / (b[YES_MASS + atom] + b[NO_MASS + atom])
            assert ratio_top == pytest.approx(ratio_full, rel=1e-5, abs=1e-9)


def test_the_token_rules_are_exact():
    entry = {"token": "Yes", "logprob": math.log(0.4), "top_logprobs": [
        {"token": "Yes", "logprob": math.log(0.4)}, {"token": " yes", "logprob": math.log(0.1)},
        {"token": "No", "logprob": math.log(0.2)}, {"token": " no", "logprob": math.log(0.05)},
        {"token": "Y", "logprob": math.log(0.1)}, {"token": "YES", "logprob": math.log(0.05)},
        {"token": "Maybe", "logprob": math.log(0.1)}]}
    assert answer_masses(entry) == pytest.approx((0.5, 0.25))  # "Y" and "YES" are not among GenEval 2's variants
    assert t2v_yes(entry) == pytest.approx(0.4)  # t2v_metrics: the token "Yes" only
    assert t2v_yes({"token": "No", "logprob": math.log(0.9), "top_logprobs": []}) == 0.0
    assert t2v_yes({"token": "The", "logprob": -0.1, "top_logprobs": []}) is None


def test_a_server_without_logprobs_gives_the_shares_of_sampled_answers(vlm):
    vlm.logprobs, vlm.yes_or_no = False, True
    with ChatServer(vlm) as script:
        made = judge(script.url, samples=8)
        image = images()[1]
        (values,) = made.score([image], [{"base_prompt": "a wolf chasing a deer"}])  # one question: vqa
        table = evaluate.score([image], "a wolf chasing a deer", metric="vlm_api", model="tiny-vlm",
                               vlm_api_base_url=script.url, vlm_api_samples=8)
    answers = vlm.answers[-8:]  # before them: the greedy answer that came without logprobs
    assert set(answers) <= set(YES_VARIANTS + NO_VARIANTS) and len(set(answers)) >= 2
    assert values["api_vqa"] == pytest.approx(answers.count("Yes") / 8)
    assert values["_judge"] == "tiny-vlm [sampled n=8]" and made.sampled
    assert script.bodies[-1]["n"] == 8 and script.bodies[-1]["temperature"] == 1.0
    assert table["judge"].tolist() == ["tiny-vlm [sampled n=8]"] and table["value"].iloc[0] == values["api_vqa"]


def test_a_server_that_refuses_logprobs_is_sampled(vlm):
    vlm.logprobs, vlm.yes_or_no = True, True
    with ChatServer(vlm) as script:
        script.statuses, script.message = [400], "logprobs is not supported by this endpoint"
        (values,) = judge(script.url, samples=4).score(images()[:1], [{"base_prompt": "a cat"}])
    assert values["_judge"] == "tiny-vlm [sampled n=4]" and 0.0 <= values["api_vqa"] <= 1.0
    assert "logprobs" in script.bodies[0] and "logprobs" not in script.bodies[1]


def test_429_is_retried(served):
    served.statuses = [429, 429]
    (values,) = judge(served.url, concurrency=1, top_logprobs=5000).score(images()[:1], [{"base_prompt": "a cat"}])
    assert 0.0 <= values["api_vqa"] <= 1.0 and len(served.bodies) == 3


def test_slow_server_past_the_timeout(served):
    served.delay = 0.6
    with pytest.raises(JudgeError, match=r"gave no answer within 0.2 s after 2 tries; raise evaluate.vlm_api_timeout_s"):
        judge(served.url, timeout_s=0.2, max_retries=1).score(images()[:1], [{"base_prompt": "a cat"}])


def test_refused_connection_and_missing_address():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again when the block ends: nothing listens there
    with pytest.raises(JudgeError, match=rf"Could not reach the OpenAI-compatible server at http://127.0.0.1:{port}/v1 "
                                         r"\(connection refused\); start the server or correct evaluate.vlm_api_base_url"):
        judge(f"http://127.0.0.1:{port}/v1", max_retries=1).score(images()[:1], [ITEM])
    with pytest.raises(JudgeError, match=r"needs evaluate.vlm_api_base_url"):
        evaluate.make_judges(EvaluateConfig(), "cpu", ["chasing"], ["vlm_api"])


def test_wrong_key(served, monkeypatch):
    served.key = "right"
    monkeypatch.setenv("JUDGE_KEY", "wrong")
    with pytest.raises(JudgeError, match=r"refused the API key \(401\); set a valid key in the environment variable JUDGE_KEY"):
        judge(served.url, api_key_env="JUDGE_KEY").score(images()[:1], [ITEM])


def test_concurrent_requests_reach_the_server_together(served, vlm):
    vlm.batches.clear()
    judge(served.url, concurrency=8, top_logprobs=5).score(images() * 4, [ITEM] * 8)
    assert sum(vlm.batches) == 8 * (6 + 5) and max(vlm.batches) > 1  # VQAScore's 6 questions, GenEval 2's 5 atoms


def test_the_judge_keeps_the_interface_and_the_profile_picks_one_vqa_judge(served):
    cfg = EvaluateConfig(vlm_api_model="tiny-vlm", vlm_api_base_url=served.url)
    (made,) = evaluate.make_judges(cfg, "cpu", ["chasing"], ["vlm_api"])
    assert isinstance(made, evaluate.Judge) and made.metrics == API_METRICS and made.identity() == "api:tiny-vlm"
    with pytest.raises(ConfigError, match=r"names both vqa and vlm_api, which both write Soft-TIFA"):
        evaluate.make_judges(cfg, "cpu", ["chasing"], ["vqa", "vlm_api"])


def test_the_stage_scores_through_the_server_and_caches(tmp_path, vlm):
    vlm.logprobs, vlm.yes_or_no = True, True
    with ChatServer(vlm) as script:
        run = open_run(tmp_path / "run", "smoke", {
            "generate": {"seeds": [42], "variants": ["base", "temporal"]},
            "evaluate": {"metrics": ["vlm_api"], "vlm_api_model": "tiny-vlm", "vlm_api_base_url": script.url},
            "analyze": {"judge_metric": "api_vqa"}})
        bench = build_benchmark(seed=0, n_per_action=1).head(2)
        bench.to_parquet(run.benchmark_path)
        enrich(bench, KnowledgeBaseBackend(), dimensions=["temporal"], progress=False).to_parquet(run.prompts_path)
        generate.run(run, progress=False)
        scores = evaluate.run(run, progress=False)
        asked = len(script.bodies)
        again = evaluate.run(run, progress=False)
    assert asked == 4 * (2 * len(ATOMS) - 1) and len(script.bodies) == asked  # VQAScore + GenEval 2; the rerun asked nothing
    pd.testing.assert_frame_equal(again, scores)
    per_image = scores.groupby(["variant", "id"])["metric"].apply(set)
    asked_of_these = set(API_METRICS) - {f"api_vqa_{m}" for m in ("count1", "count2", "attribute1", "attribute2")}  # none named
    assert len(per_image) == 4 and all(m == asked_of_these for m in per_image)
    assert set(scores["judge"]) == {"tiny-vlm"}
    wide = scores.pivot_table(index=["variant", "id"], columns="metric", values="value")
    assert (wide["soft_tifa_gm"] <= wide["soft_tifa_am"] + 1e-12).all()
    # variants of a prompt are asked the base prompt's questions: one target
    base = [b for b in script.bodies if b["messages"][0]["content"][0].get("text", "").startswith("Does this figure show")]
    assert {b["messages"][0]["content"][0]["text"] for b in base} == {
        f'Does this figure show "{p}"? Please answer yes or no.' for p in bench["base_prompt"]}
