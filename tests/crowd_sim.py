"""A simulated crowd study against the real server: `act2i annotate serve --study` started on
127.0.0.1, workers who arrive through the study link, consent, judge their batch over HTTP as a
browser would (image, answer, next) and collect the completion code; a controller that kills the
server with SIGKILL and starts it again meanwhile. Used by tests/test_crowd.py."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

CSRF = re.compile(r'name="act2i-csrf" content="([^"]+)"')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`act2i annotate serve --study` in a subprocess, which `kill()` ends with SIGKILL and `start()` restarts."""

    def __init__(self, run_root: Path, port: int | None = None, overlap: int | None = None, extra: tuple = ()):
        self.run_root, self.port = run_root, port or free_port()
        self.args = [sys.executable, "-m", "act2i_utils.cli", "annotate", "serve", "--study", "--run", str(run_root),
                     "--port", str(self.port), *(("--overlap", str(overlap)) if overlap else ()), *extra]
        self.proc: subprocess.Popen | None = None
        self.base = f"http://127.0.0.1:{self.port}"
        self.banner = ""

    def start(self, timeout: float = 60) -> None:
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(self.base + "/", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {self.proc.communicate()[1][-3000:]}")
            time.sleep(0.1)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> str:
        """Stop (SIGKILL) and return what the server printed."""
        self.kill()
        out = self.proc.stdout.read() if self.proc and self.proc.stdout else ""
        return out

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.kill()


@dataclass
class Worker:
    """One simulated participant: careful (right on gold, answers by the image's truth) or careless
    (clicks Accept on everything, fast)."""

    pid: str
    careless: bool = False
    gold_slip: bool = False  # a careful worker who gets one gold image wrong (stays in: max_gold_errors 1)
    code: str | None = None
    answered: list[str] = field(default_factory=list)
    latencies: list[tuple[float, float]] = field(default_factory=list)  # (when it was sent, seconds to the answer)
    errors: int = 0


def truth(prompt: str, image_id: str) -> str:
    """What a careful worker answers about a study image: a fixed coin per image."""
    return "accept" if hashlib.sha256(image_id.encode()).digest()[0] < 150 else "reject"


async def work(client: httpx.AsyncClient, worker: Worker, gold: dict[str, str], think: tuple[float, float],
               deadline: float) -> None:
    """Everything a worker does, retrying through server restarts until `deadline` (monotonic)."""
    rng = random.Random(worker.pid)

    async def call(method: str, url: str, **kw) -> httpx.Response:
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{worker.pid}: out of time at {method} {url}")
            try:
                return await client.request(method, url, **kw)
            except httpx.TransportError:
                worker.errors += 1
                await asyncio.sleep(rng.uniform(0.2, 1.0))  # as people would, not all at once

    page = await call("GET", "/study", params={"PROLIFIC_PID": worker.pid, "STUDY_ID": "study-1",
                                                "SESSION_ID": f"s-{worker.pid}"}, follow_redirects=True)
    assert page.status_code == 200, page.text
    if "/consent" in str(page.url):
        headers = {"X-Act2i-CSRF": CSRF.search(page.text).group(1)}
        consented = await call("POST", "/api/consent", json={}, headers=headers)
        assert consented.status_code == 200, consented.text
        await call("GET", "/instructions")
    page = await call("GET", "/annotate")
    headers = {"X-Act2i-CSRF": CSRF.search(page.text).group(1)}
    state = (await call("GET", "/api/next")).json()
    slip = None  # the gold image a slipping worker gets wrong, every time it is asked (also after a restart)
    while not state["finished"]:
        image = await call("GET", f"/img/{state['image_id']}")
        assert image.status_code == 200
        await asyncio.sleep(rng.uniform(*think) / (4 if worker.careless else 1))
        expected = gold.get(state["prompt"] + "|" + state["image_id"])
        if worker.careless:
            label = "accept"
        elif expected is not None:
            label = expected
            if worker.gold_slip and slip in (None, state["image_id"]):
                label, slip = ("reject" if expected == "accept" else "accept"), state["image_id"]
        else:
            label = truth(state["prompt"], state["image_id"])
        body = {"image_id": state["image_id"], "label": label, "seconds": 0.5 if worker.careless else 4.0}
        started = time.perf_counter()
        try:
            response = await client.post("/api/answer", json=body, headers=headers)
        except httpx.TransportError:  # the server died mid-answer: the answer may or may not have landed
            worker.errors += 1
            await asyncio.sleep(rng.uniform(0.2, 1.0))
            state = (await call("GET", "/api/next")).json()
            continue
        if response.status_code == 200:
            worker.latencies.append((time.monotonic(), time.perf_counter() - started))
            worker.answered.append(state["image_id"])
            state = response.json()
        elif response.status_code == 409:  # it had landed before the restart: carry on
            state = (await call("GET", "/api/next")).json()
        else:
            raise AssertionError(f"{worker.pid}: {response.status_code} {response.text}")
    worker.code = state.get("completion", {}).get("code")


@dataclass
class Study:
    """What a simulated study did: its workers, and when the server was down (kill to ready again)."""

    workers: list[Worker]
    outages: list[tuple[float, float]]
    loop_lag: list[float] = field(default_factory=list)  # how late the simulator's own event loop woke (seconds)

    def latencies(self, settle: float = 0.0) -> list[float]:
        """Answer latencies, leaving out answers sent within `settle` seconds after the server came back
        (every waiting worker reconnects at once then)."""
        return [t for w in self.workers for sent, t in w.latencies
                if not any(down <= sent <= up + settle for down, up in self.outages)]


async def study(server: Server, workers: list[Worker], gold: dict[str, str], *, think=(0.05, 0.15),
                restarts: int = 0, timeout: float = 240.0, arrival: float = 2.0) -> Study:
    """All workers at once (arriving over `arrival` seconds) while the server is killed `restarts` times."""
    deadline = time.monotonic() + timeout
    outages: list[tuple[float, float]] = []
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)

    async def one(worker: Worker, delay: float) -> None:
        await asyncio.sleep(delay)
        async with httpx.AsyncClient(base_url=server.base, headers={"Origin": server.base}, timeout=30,
                                     limits=limits) as client:
            await work(client, worker, gold, think, deadline)

    async def chaos() -> None:
        for _ in range(restarts):
            await asyncio.sleep(max(arrival, 1.0) / 2)
            down = time.monotonic()
            server.kill()
            await asyncio.to_thread(server.start)
            outages.append((down, time.monotonic()))

    lag: list[float] = []
    running = True

    async def heartbeat() -> None:  # the load generator shares the machine: how late its own loop runs
        while running:
            before = time.perf_counter()
            await asyncio.sleep(0.01)
            lag.append(time.perf_counter() - before - 0.01)

    beat = asyncio.create_task(heartbeat())
    tasks = [one(w, arrival * i / max(len(workers), 1)) for i, w in enumerate(workers)]
    await asyncio.gather(chaos(), *tasks)
    running = False
    await beat
    return Study(workers, outages, lag)


def run_study(server: Server, workers: list[Worker], gold: dict[str, str], **kw) -> Study:
    return asyncio.run(study(server, workers, gold, **kw))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@contextlib.contextmanager
def serving(run_root: Path, **kw):
    server = Server(run_root, **kw)
    server.start()
    try:
        yield server
    finally:
        server.kill()
