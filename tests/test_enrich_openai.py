"""The openai backend against a real chat-completions server on 127.0.0.1, scripted by the test.

The server (`ChatServer`) is shared with the API judge's tests and benchmark: it answers through a
function of the request body, the enrichment's echo here or `TinyVlm`, which serves the tiny
vision-language model with log-probabilities as vLLM does."""

import base64
import io
import json
import math
import queue
import socket
import threading
import time
from concurrent.futures import Future
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from act2i_utils.benchmark import build_benchmark
from act2i_utils.enrich import enrich
from act2i_utils.enrich.backends import EnrichError, OpenAIBackend


class Script:
    """What the server answers: a queue of statuses to return before answering normally."""

    def __init__(self):
        self.statuses: list[int] = []
        self.delay = 0.0
        self.key = None
        self.message = None  # the error message of a scripted status (default "scripted <status>")
        self.bodies: list[dict] = []
        self.lock = threading.Lock()


def echo_rewrite(body: dict) -> dict:
    """The enrichment's answer: the prompt back, with a preamble and quotes for the clean-up to remove."""
    prompt = body["messages"][-1]["content"].removeprefix("Prompt: ")
    return {"choices": [{"message": {"role": "assistant", "content": f"Here is the rewritten prompt:\n\n\"{prompt}, at dawn\""}}]}


class ChatServer:
    """A real HTTP chat-completions server on 127.0.0.1 (one thread per connection), scripted through
    its `Script`; `answer(body)` makes the reply of every request the script lets through."""

    def __init__(self, answer=echo_rewrite):
        self.script = script = Script()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real servers
            disable_nagle_algorithm = True  # headers and body go out at once, not 40 ms apart

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with script.lock:
                    script.bodies.append(body)
                    status = script.statuses.pop(0) if script.statuses else 200
                if script.key and self.headers.get("Authorization") != f"Bearer {script.key}":
                    status = 401
                if script.delay:
                    time.sleep(script.delay)
                payload = answer(body) if status == 200 else {"error": {"message": script.message or f"scripted {status}"}}
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    if status == 429:
                        self.send_header("Retry-After", "0")
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        script.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> Script:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self.script

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


class TinyVlm:
    """The tiny VLM served as a chat-completions model, as vLLM serves a real one: images from base64
    data URLs, the first answer token from the model's next-token distribution (greedy at temperature
    0, else `n` samples seeded by `seed`), `logprobs` with `top_logprobs` (or none at all, as some
    servers do, with `logprobs=False`). With `yes_or_no`, the answer is held to the yes and no tokens,
    as vLLM's guided choice holds it, which keeps their odds. Concurrent requests are batched into one
    forward pass."""

    def __init__(self, logprobs: bool = True, yes_or_no: bool = False, window_s: float = 0.003, max_batch: int = 32):
        import torch

        from act2i_utils.evaluate import VqaJudge

        self.judge = VqaJudge("tiny:vlm", "cpu")
        self.tokenizer = self.judge.processor.tokenizer
        self.logprobs, self.yes_or_no, self.window_s, self.max_batch = logprobs, yes_or_no, window_s, max_batch
        from act2i_utils.evaluate.questions import NO_VARIANTS, YES_VARIANTS

        answers = set(YES_VARIANTS + NO_VARIANTS)
        self.yes_no_mask = torch.tensor([self.token(i) in answers for i in range(len(self.tokenizer))],
                                        dtype=torch.float32)
        self.batches: list[int] = []  # the size of every forward pass
        self.answers: list[str] = []  # every answer given, in order
        self.pending: queue.Queue = queue.Queue()
        threading.Thread(target=self._work, daemon=True).start()

    @staticmethod
    def parse(body: dict):
        from PIL import Image

        parts = body["messages"][-1]["content"]
        url = next(p["image_url"]["url"] for p in parts if p["type"] == "image_url")
        text = next(p["text"] for p in parts if p["type"] == "text")
        image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB")
        return image, text

    def distribution(self, image, question):
        done = Future()
        self.pending.put((image, question, done))
        return done.result(timeout=60)

    def _work(self):
        while True:
            batch = [self.pending.get()]
            deadline = time.perf_counter() + self.window_s
            while len(batch) < self.max_batch:
                try:
                    batch.append(self.pending.get(timeout=max(deadline - time.perf_counter(), 0)))
                except queue.Empty:
                    break
            try:
                probs = self.judge.next_token_probabilities([b[0] for b in batch], [b[1] for b in batch])
                self.batches.append(len(batch))
                for (_, _, done), p in zip(batch, probs):
                    done.set_result(p)
            except Exception as err:  # noqa: BLE001 - hand the failure to the waiting request
                for _, _, done in batch:
                    done.set_exception(err)

    def token(self, i: int) -> str:
        return self.tokenizer.decode([int(i)])

    def entry(self, probs, i: int) -> dict:
        return {"token": self.token(i), "logprob": max(math.log(max(float(probs[i]), 1e-300)), -9999.0)}

    def __call__(self, body: dict) -> dict:
        import torch

        probs = self.distribution(*self.parse(body))
        if self.yes_or_no:
            probs = probs * self.yes_no_mask / (probs * self.yes_no_mask).sum()
        n, temperature = body.get("n", 1), body.get("temperature", 1.0)
        if temperature == 0:
            picks = [int(probs.argmax())] * n
        else:
            generator = torch.Generator().manual_seed(body.get("seed", 0))
            weights = probs.double() ** (1.0 / temperature)
            picks = torch.multinomial(weights / weights.sum(), n, replacement=True, generator=generator).tolist()
        choices = []
        for index, pick in enumerate(picks):
            logprobs = None
            if self.logprobs and body.get("logprobs"):
                top = probs.topk(min(body.get("top_logprobs", 0), len(probs))).indices.tolist()
                logprobs = {"content": [{**self.entry(probs, pick), "top_logprobs": [self.entry(probs, i) for i in top]}]}
            self.answers.append(self.token(pick))
            choices.append({"index": index, "message": {"role": "assistant", "content": self.token(pick)},
                            "logprobs": logprobs, "finish_reason": "length"})
        return {"object": "chat.completion", "model": body["model"], "choices": choices}


@pytest.fixture
def server():
    with ChatServer() as script:
        yield script


def backend(url, **kwargs):
    settings = dict(temperature=0.7, top_p=0.9, max_new_tokens=64, concurrency=4, timeout_s=2.0, max_retries=3)
    settings.update(kwargs)
    b = OpenAIBackend("llama-test", base_url=url, **settings)
    b.backoff_s = 0.01
    return b


@pytest.fixture(scope="module")
def table():
    return build_benchmark(seed=0).head(6)


def test_rewrites_through_the_server(server, table):
    out = enrich(table, backend(server.url), dimensions=["temporal", "spatial"], progress=False)
    rows = out[out["variant"] != "base"]
    assert len(rows) == 12 and (rows["flags"] == "").all()
    assert (rows["text"] == rows["id"].map(table.set_index("id")["base_prompt"]) + ", at dawn").all()
    body = server.bodies[0]
    assert body["model"] == "llama-test" and body["temperature"] == 0.7 and body["top_p"] == 0.9
    assert body["max_tokens"] == 64 and isinstance(body["seed"], int)
    from act2i_utils.enrich.dimensions import DIMENSIONS

    system, user = body["messages"]
    assert system["role"] == "system" and system["content"] in (DIMENSIONS["temporal"], DIMENSIONS["spatial"])
    assert user["role"] == "user" and user["content"].startswith("Prompt: a ")


def test_429_and_500_are_retried(server, table):
    server.statuses = [429, 500, 503]
    out = enrich(table.head(1), backend(server.url, concurrency=1), dimensions=["temporal"], progress=False)
    assert out.iloc[-1]["text"].endswith(", at dawn") and len(server.bodies) == 4


def test_persistent_5xx_gives_up_with_a_sentence(server, table):
    server.statuses = [500] * 10
    with pytest.raises(EnrichError, match=r"kept answering HTTP 500 after 3 tries"):
        enrich(table.head(1), backend(server.url, concurrency=1, max_retries=2), dimensions=["temporal"], progress=False)


def test_slow_reply_past_the_timeout(server, table):
    server.delay = 0.6
    with pytest.raises(EnrichError, match=r"gave no answer within 0.2 s after 2 tries; raise enrich.timeout_s"):
        enrich(table.head(1), backend(server.url, timeout_s=0.2, max_retries=1), dimensions=["temporal"], progress=False)


def test_wrong_key(server, table, monkeypatch):
    server.key = "right"
    monkeypatch.setenv("MY_KEY", "wrong")
    with pytest.raises(EnrichError, match=r"refused the API key \(401\); set a valid key in the environment variable MY_KEY"):
        enrich(table.head(1), backend(server.url, api_key_env="MY_KEY"), dimensions=["temporal"], progress=False)
    monkeypatch.setenv("MY_KEY", "right")
    out = enrich(table.head(1), backend(server.url, api_key_env="MY_KEY"), dimensions=["temporal"], progress=False)
    assert out.iloc[-1]["flags"] == ""


def test_refused_connection():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again when the block ends: nothing listens there
    with pytest.raises(EnrichError, match=rf"Could not reach the OpenAI-compatible server at http://127.0.0.1:{port}/v1"):
        enrich(build_benchmark(seed=0).head(1), backend(f"http://127.0.0.1:{port}/v1", max_retries=1),
               dimensions=["temporal"], progress=False)
