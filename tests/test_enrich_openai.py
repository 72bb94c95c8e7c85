"""The openai backend against a real chat-completions server on 127.0.0.1, scripted by the test."""

import json
import socket
import threading
import time
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
        self.bodies: list[dict] = []
        self.lock = threading.Lock()


@pytest.fixture
def server():
    script = Script()

    class Handler(BaseHTTPRequestHandler):
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
            if status != 200:
                payload = {"error": {"message": f"scripted {status}"}}
            else:
                prompt = body["messages"][-1]["content"].removeprefix("Prompt: ")
                payload = {"choices": [{"message": {"role": "assistant",
                                                    "content": f"Here is the rewritten prompt:\n\n\"{prompt}, at dawn\""}}]}
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

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    script.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    yield script
    httpd.shutdown()
    httpd.server_close()


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
