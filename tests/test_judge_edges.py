"""Judge edge cases (issue 28): an answer without yes/no tokens is never cached and a rerun asks for
exactly the missing values, a dropped connection is retried, a base URL without http(s) is refused
when the profile is checked, reciprocity is data (and its default rule is right on verbs of our
own), and new weights under the same path, size and modification time make a new judge."""

import csv
import json
import math
import os
import socket
import threading
import time
from pathlib import Path

import pytest
from test_enrich_openai import ChatServer

from act2i_utils import evaluate, generate
from act2i_utils.benchmark import build_benchmark
from act2i_utils.config import load_profile
from act2i_utils.enrich import enrich
from act2i_utils.enrich.kb import KnowledgeBaseBackend
from act2i_utils.errors import ConfigError
from act2i_utils.evaluate import atoms
from act2i_utils.evaluate.api import JudgeError, VlmApiJudge
from act2i_utils.runs import open_run
from act2i_utils.words import reciprocal

DATA = Path(__file__).parent / "data"


def reply(first: str, top: list[tuple[str, float]]) -> dict:
    """A chat completion as vLLM gives it: the chosen first token and its top log-probabilities."""
    tops = [{"token": t, "logprob": math.log(p)} for t, p in top]
    return {"choices": [{"message": {"role": "assistant", "content": first},
                         "logprobs": {"content": [{"token": first, "logprob": tops[0]["logprob"], "top_logprobs": tops}]}}]}


def thinking(body: dict) -> dict:
    """A 'thinking' model: its first tokens hold neither yes nor no."""
    return reply("<think>", [("<think>", 0.9), ("Okay", 0.05), ("Let", 0.05)])


def answering(body: dict) -> dict:
    return reply("Yes", [("Yes", 0.7), ("No", 0.3)])


def question_of(body: dict) -> str:
    return next(p["text"] for p in body["messages"][-1]["content"] if p["type"] == "text")


@pytest.fixture
def api_run(tmp_path):
    def make(url):
        run = open_run(tmp_path / "run", "smoke", {
            "generate": {"seeds": [42], "variants": ["base"]}, "pairs": {"enabled": False},
            "evaluate": {"metrics": ["vlm_api"], "vlm_api_model": "judge", "vlm_api_base_url": url,
                         "vlm_api_max_retries": 1}, "analyze": {"judge_metric": "api_vqa"}}, reconfigure=True)
        if not run.benchmark_path.is_file():
            bench = build_benchmark(seed=0, n_per_action=1).head(2)
            bench.to_parquet(run.benchmark_path)
            enrich(bench, KnowledgeBaseBackend(), dimensions=["temporal"], progress=False).to_parquet(run.prompts_path)
            generate.run(run, progress=False)
        return run
    return make


def test_answers_without_yes_or_no_are_not_cached_and_a_rerun_asks_only_for_them(api_run):
    state = {"think": True}

    def partly(body):  # thinks on the role questions only, until the server is fixed
        return thinking(body) if state["think"] and question_of(body).startswith("Is the") else answering(body)

    with ChatServer(partly) as script:
        run = api_run(script.url)
        with pytest.warns(UserWarning) as caught:
            first = evaluate.run(run, progress=False)
        asked = len(script.bodies)
        roles = sum(question_of(b).startswith("Is the") for b in script.bodies)
        message = " ".join(str(w.message) for w in caught)
        assert f"{roles} of {asked} answers" in message and "'<think>'" in message
        assert "chat_template_kwargs" in message and "evaluate.vlm_api_extra_body" in message
        assert not {"api_vqa_action", "api_vqa_reversed"} & set(first["metric"])
        cached = [json.loads(line)["value"] for line in run.scores_cache_path.read_text().splitlines()]
        assert all(set(v) - {"_missing", "_judge"} for v in cached)  # no entry without a value
        state["think"] = False
        script.bodies.clear()
        second = evaluate.run(run, progress=False)
        assert len(script.bodies) == roles and all(question_of(b).startswith("Is the") for b in script.bodies)
        assert {"api_vqa_action", "api_vqa_reversed"} <= set(second["metric"])
        script.bodies.clear()
        third = evaluate.run(run, progress=False)
    assert script.bodies == [] and third.equals(second)
    wide = second.pivot_table(index="id", columns="metric", values="value")
    assert wide[["api_vqa", "api_vqa_agent1", "api_vqa_action", "soft_tifa_am"]].notna().all().all()


def test_a_thinking_model_gets_the_extra_body_and_the_system_prompt(api_run):
    with ChatServer(answering) as script:
        run = api_run(script.url)
        judge = VlmApiJudge("judge", script.url, extra_body={"chat_template_kwargs": {"enable_thinking": False}},
                            system_prompt="Answer with one word.")
        from PIL import Image

        judge.score([Image.new("RGB", (8, 8))], [{"base_prompt": "a cat chasing a dog"}])
    body = script.bodies[0]
    assert body["chat_template_kwargs"] == {"enable_thinking": False}
    assert body["messages"][0] == {"role": "system", "content": "Answer with one word."}
    plain = VlmApiJudge("judge", script.url)
    item = {"base_prompt": "a cat"}
    assert judge.signature(item) != plain.signature(item)  # both change the answers: both key the cache
    assert run.config.evaluate.vlm_api_extra_body == {}


def test_the_pair_judge_counts_answers_without_first_or_second(tmp_path):
    from act2i_utils.evaluate.pairwise import ApiPairJudge
    from PIL import Image

    with ChatServer(thinking) as script:
        pair = ApiPairJudge(VlmApiJudge("judge", script.url))
        image = Image.new("RGB", (8, 8))
        assert pair.p_first([(image, image)], ["Which image shows 'a cat' better?"]) == [None]
    assert pair.api.empty and pair.api.empty[0].startswith("'<think>'")


class Dropping:
    """A server that closes the first `drops` connections without a word, then answers."""

    def __init__(self, drops: int):
        self.drops, self.seen = drops, 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
                while len(body) < length:
                    body += conn.recv(65536)
                self.seen += 1
                if self.seen <= self.drops:
                    continue  # closed: "Server disconnected without sending a response"
                payload = json.dumps(answering({})).encode()
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                             b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload)


def test_a_dropped_connection_is_retried_and_then_named():
    from PIL import Image

    image = Image.new("RGB", (8, 8))
    server = Dropping(drops=2)
    judge = VlmApiJudge("judge", server.url, max_retries=3, concurrency=1)
    judge.client.backoff_s = 0.01
    (values,) = judge.score([image], [{"base_prompt": "a cat"}])
    assert values["api_vqa"] == pytest.approx(0.7) and server.seen == 3
    server = Dropping(drops=100)
    judge = VlmApiJudge("judge", server.url, max_retries=1, concurrency=1)
    judge.client.backoff_s = 0.01
    with pytest.raises(JudgeError, match=r"closed the connection without an answer after 2 tries; .*"
                                         r"lower evaluate.vlm_api_concurrency"):
        judge.score([image], [{"base_prompt": "a cat"}])
    server.sock.close()


@pytest.mark.parametrize("key", ["evaluate.vlm_api_base_url", "enrich.base_url"])
@pytest.mark.parametrize("url", ["localhost:8000/v1", "ftp://host/v1", "127.0.0.1:8000"])
def test_a_base_url_without_http_is_refused_when_the_profile_is_checked(key, url):
    section, name = key.split(".")
    overrides = {section: {name: url}}
    if section == "evaluate":
        overrides["evaluate"]["metrics"] = ["vlm_api"]
        overrides["analyze"] = {"judge_metric": "api_vqa"}
    else:
        overrides["enrich"].update(backend="openai", model="m")
    with pytest.raises(ConfigError, match=rf"{key}.*must begin with http:// or https://"):
        load_profile("smoke", overrides)
    with pytest.raises(JudgeError, match=r"evaluate.vlm_api_base_url .* must begin with http:// or https://"):
        VlmApiJudge("judge", url)


# --- reciprocity ---------------------------------------------------------------------------------

def reciprocal_cases(name: str = "reciprocal_actions.csv") -> list[tuple[str, bool]]:
    with open(DATA / name, newline="", encoding="utf-8") as fh:
        return [(r["action"], r["reciprocal"] == "yes") for r in csv.DictReader(fh)]


def test_the_reciprocity_rule_on_verbs_of_our_own():
    cases = reciprocal_cases()
    assert len(cases) >= 40 and sum(r for _, r in cases) >= 15 and sum(not r for _, r in cases) >= 15
    wrong = [(a, r) for a, r in cases if reciprocal(a) != r]
    assert wrong == []


def test_the_reciprocity_rule_on_held_out_verbs():
    """70 phrases labelled by a helper who never saw the rule; 67 right when first run (the misses:
    "lying next to", "tagging along with", "getting rough with"), left untuned so the number stays honest."""
    cases = reciprocal_cases("reciprocal_heldout.csv")
    right = sum(reciprocal(a) == r for a, r in cases)
    assert len(cases) == 70 and right >= 67


def test_reciprocity_is_a_column_of_the_actions_data_that_the_judges_read():
    bench = build_benchmark(seed=0, n_per_action=1)
    assert "reciprocal" in bench.columns and bench["reciprocal"].dtype == bool
    by_action = dict(zip(bench["action_key"], bench["reciprocal"]))
    assert by_action["greet"] and by_action["huddle"] and not by_action["chase"] and not by_action["flee"]
    from act2i_utils.evaluate.atoms import NO_MASS, YES_MASS

    answers = {"vqa_agent1": 0.9, "vqa_agent2": 0.9, "vqa_action": 0.8, "vqa_reversed": 0.8}  # P(Yes)
    values = {k: v for atom, p in answers.items() for k, v in ((YES_MASS + atom, p), (NO_MASS + atom, 1 - p))}
    # the data decides, not the phrase: a row that says "not reciprocal" keeps the control
    kept = atoms.soft_tifa(values, "wrestling with", reciprocal=False)["soft_tifa_am"]
    dropped = atoms.soft_tifa(values, "wrestling with", reciprocal=True)["soft_tifa_am"]
    assert kept == pytest.approx((0.9 + 0.9 + 0.8 + 0.2) / 4) and dropped == pytest.approx((0.9 + 0.9 + 0.8) / 3)
    assert atoms.soft_tifa(values, "wrestling with")["soft_tifa_am"] == pytest.approx(dropped)  # the rule's default


def test_an_actions_file_may_say_an_action_is_reciprocal(tmp_path):
    import shutil

    import yaml

    from act2i_utils.benchmark import builder

    folder = tmp_path / "agents"
    shutil.copytree(Path(builder.__file__).parent / "data" / "animals", folder)
    actions = yaml.safe_load((folder / "actions.yaml").read_text())
    for action in actions:
        if action["key"] == "chase":
            action["reciprocal"] = True
    (folder / "actions.yaml").write_text(yaml.safe_dump(actions, sort_keys=False))
    bench = build_benchmark(seed=0, n_per_action=1, agents=str(folder))
    assert bench.loc[bench["action_key"] == "chase", "reciprocal"].all()
    actions[0]["reciprocal"] = "sometimes"
    (folder / "actions.yaml").write_text(yaml.safe_dump(actions, sort_keys=False))
    with pytest.raises(Exception, match=r"actions.yaml.*reciprocal.*true or false"):
        build_benchmark(seed=0, n_per_action=1, agents=str(folder))


# --- new weights under the same path, size and time -------------------------------------------------

def test_new_weights_with_the_same_size_and_time_are_a_new_model(tmp_path):
    from act2i_utils.models import model_identity

    folder = tmp_path / "model"
    folder.mkdir()
    weights = folder / "model.safetensors"
    weights.write_bytes(b"a" * 4096)
    stat = weights.stat()
    before = model_identity(str(folder))
    time.sleep(0.05)  # a retrained checkpoint is saved long after the first; the clock has moved
    with open(weights, "r+b") as fh:  # rewritten in place: the same file, size and (restored) time
        fh.write(b"b" * 4096)
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert weights.stat().st_size == stat.st_size and weights.stat().st_mtime_ns == stat.st_mtime_ns
    assert model_identity(str(folder)) != before


def test_a_local_judge_keys_its_cache_on_the_weights_it_loaded(monkeypatch):
    from act2i_utils.cache import JsonlCache, cache_key
    from act2i_utils.evaluate.judges import VqaJudge

    judge = VqaJudge("tiny:vlm", "cpu")
    loaded = judge.identity()
    assert loaded.startswith("sha256:")
    item = {"image_hash": "x", "path": None, "relpath": "x.png", "base_prompt": "a cat", "action": None}
    cache = JsonlCache(None)
    cache.add_many([(cache_key(image="x", judge=judge.name, model=loaded, inputs=judge.signature(item)), {"vqa": 0.5})])
    # what is on disk now is not what the judge holds: the key follows the weights it loaded
    monkeypatch.setattr("act2i_utils.evaluate.stage.model_identity", lambda ref: "sha256:something-else")
    (values,) = evaluate.stage.judge_all(judge, [item], cache, batch_size=1, progress=False)
    assert values["vqa"] == 0.5


def test_an_imported_prompt_set_gets_reciprocity_from_its_file_the_taxonomy_or_the_rule(tmp_path):
    from act2i_utils import benchmark

    path = tmp_path / "prompts.csv"
    path.write_text("prompt,reciprocal\n"
                    "a fox huddling with a badger for warmth,\n"  # the taxonomy's action: reciprocal
                    "a cat wrestling a dog,\n"  # the rule: mutual by meaning
                    "a dog fleeing with a bone from a cat,\n"  # the rule: one-sided
                    "a cat and a dog eating,\n"  # both as the subject
                    "a goat chasing a sheep,yes\n", encoding="utf-8")  # the file decides
    run = open_run(tmp_path / "run", "smoke", {"benchmark": {"source": str(path)}})
    table = benchmark.run(run)
    assert table["reciprocal"].tolist() == [True, True, False, True, True]
    path.write_text("prompt,reciprocal\na cat wrestling a dog,sometimes\n", encoding="utf-8")
    with pytest.raises(Exception, match=r"row 1 has reciprocal 'sometimes'; expected true or false"):
        benchmark.run(open_run(tmp_path / "run2", "smoke", {"benchmark": {"source": str(path)}}))
