"""The annotation server for real: started on 127.0.0.1 by the tests, driven over HTTP and by
Playwright in headless Chromium (Debian's `chromium`)."""

import contextlib
import io
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest
from PIL import Image

from act2i_utils import annotate, generate
from act2i_utils.annotate import app, blind, labelstudio, storage, study
from act2i_utils.benchmark import build_benchmark
from act2i_utils.enrich import enrich
from act2i_utils.enrich.kb import KnowledgeBaseBackend
from act2i_utils.errors import InputError
from act2i_utils.runs import RunPaths, open_run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SECRET_WORDS = ("tiny-sd3", "tiny_sd3", "temporal", "tiny:sd3")  # model and variant names of the fixture run


CONTRAST = """(selectors) => {  // WCAG 2 contrast ratio of each element's text against its background
  const rgb = (css) => css.match(/[\\d.]+/g).map(Number);
  const channel = (c) => (c /= 255) <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  const luminance = ([r, g, b]) => 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  const background = (el) => {
    for (; el; el = el.parentElement) {
      const c = rgb(getComputedStyle(el).backgroundColor);
      if (c.length < 4 || c[3] > 0) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  return Object.fromEntries(selectors.map((sel) => {
    const el = document.querySelector(sel);
    const [a, b] = [luminance(rgb(getComputedStyle(el).color)), luminance(background(el))];
    return [sel, (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)];
  }));
}"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serving(run_root: Path, overlap: int = 2):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "act2i_utils.cli", "annotate", "serve", "--run", str(run_root),
                             "--port", str(port), "--overlap", str(overlap)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(base + "/", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"server did not start: {proc.communicate()[1][-2000:]}")
        time.sleep(0.2)
    try:
        yield base, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("study") / "run"
    run = open_run(root, "smoke", {"generate": {"seeds": [42, 7], "variants": ["base", "temporal"]}, "annotate": {"overlap": 2}})
    bench = build_benchmark(seed=0, n_per_action=1)
    bench.to_parquet(run.benchmark_path)
    enrich(bench.head(3), KnowledgeBaseBackend(), dimensions=["temporal"], progress=False).to_parquet(run.prompts_path)
    generate.run(run, progress=False)
    return run


def fresh_copy(run, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(run.root, copy, ignore=shutil.ignore_patterns("annotations.sqlite*"))
    return copy


def token_of(link: str) -> str:
    return link.split("token=")[1]


@contextlib.contextmanager
def signed_in(base: str, link: str):
    """A client that followed a personal link, as a browser would: the login token in a cookie,
    the page's CSRF token in a header, and the page's origin."""
    with httpx.Client(base_url=base, headers={"Origin": base}, timeout=60) as client:
        assert client.get("/login", params={"token": token_of(link)}).status_code == 303
        page = client.get("/annotate")
        assert page.status_code == 200 and token_of(link) not in page.text  # the login token stays in the cookie
        client.headers["X-Act2i-CSRF"] = re.search(r'name="act2i-csrf" content="([^"]+)"', page.text).group(1)
        yield client


def post_answer(client, image_id, label="accept", **extra):
    return client.post("/api/answer", json={"image_id": image_id, "label": label, **extra})


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="Debian's chromium is not installed (make test installs it)")
def test_annotator_in_a_real_browser(small_run, tmp_path):
    from playwright.sync_api import sync_playwright

    root = fresh_copy(small_run, tmp_path)
    study.add_annotator(root, "bob", overlap=2)
    link = study.add_annotator(root, "alice", overlap=2)
    with serving(root) as (base, proc), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        context = browser.new_context()
        page = context.new_page()
        seen_urls = []
        page.on("request", lambda r: seen_urls.append(r.url))
        page.goto(link.replace("http://127.0.0.1:8765", base))
        assert page.url == f"{base}/annotate"  # the token left the address bar

        def wait_for_image(tab=page):
            tab.wait_for_function("document.getElementById('image').complete && document.getElementById('image').naturalWidth > 0")

        def wait_for_count(done, tab=page):
            tab.wait_for_function(f"document.getElementById('count').textContent.startsWith('{done} /')")

        def count():
            return page.inner_text("#count")

        wait_for_image()
        total = int(count().split(" / ")[1])
        assert count() == f"0 / {total}" and total == 12  # overlap 2, two annotators: all 12 images
        first_prompt = page.inner_text("#prompt")
        page.keyboard.press("1")
        page.keyboard.press("3")
        page.keyboard.press("c")
        page.keyboard.type("the owl has two heads")
        page.keyboard.press("Escape")
        page.keyboard.press("r")
        page.wait_for_function("document.getElementById('count').textContent.startsWith('1 /')")
        wait_for_image()
        page.keyboard.press("a")
        page.wait_for_function("document.getElementById('count').textContent.startsWith('2 /')")
        page.keyboard.press("u")  # undo the accept
        page.wait_for_function("document.getElementById('count').textContent.startsWith('1 /')")
        wait_for_image()
        page.keyboard.press("a")
        page.wait_for_function("document.getElementById('count').textContent.startsWith('2 /')")
        wait_for_image()
        before = page.inner_text("#prompt"), page.get_attribute("#image", "src")
        page.reload()
        wait_for_image()
        assert count() == f"2 / {total}" and (page.inner_text("#prompt"), page.get_attribute("#image", "src")) == before

        # Blindness: nothing the browser saw names a model or a variant.
        html = page.content() + httpx.get(f"{base}/static/app.js").text + httpx.get(f"{base}/static/style.css").text
        image = httpx.get(base + page.get_attribute("#image", "src"), cookies={"act2i_token": token_of(link)})
        assert image.status_code == 200 and image.headers["content-type"] == "image/png"
        for word in SECRET_WORDS:
            assert word not in html and not any(word in url for url in seen_urls)
            assert word.encode() not in image.content and all(word not in v for v in image.headers.values())
        assert b"act2i" not in image.content  # the PNG metadata chunk is stripped

        # The login token lives only in the HttpOnly cookie: no script on the page can read it.
        assert token_of(link) not in page.content() and page.evaluate("document.cookie") == ""

        # Accessibility: AA contrast for the buttons and the error text, a named progress bar, focus kept.
        ratios = page.evaluate(CONTRAST, ["#accept", "#reject", "#undo", "#message"])
        assert min(ratios.values()) >= 4.5, ratios
        assert page.get_attribute("#progress", "aria-label") and page.get_attribute("#progress", "aria-valuenow") == "2"
        page.click("#accept")
        wait_for_count(3)
        wait_for_image()
        assert page.evaluate("document.activeElement.id") == "question"  # the new question, read out by screen readers

        # The same link in two tabs: the stale tab's answer is refused, and the tab moves on, saying why.
        other = context.new_page()  # the same cookie: the same link in a second tab
        other.goto(f"{base}/annotate")
        wait_for_image(other)
        assert other.get_attribute("#image", "src") == page.get_attribute("#image", "src")
        page.keyboard.press("a")
        wait_for_count(4)
        wait_for_image()
        other.keyboard.press("a")
        other.wait_for_function("document.getElementById('message').textContent.includes('already answered')")
        wait_for_count(4, other)
        wait_for_image(other)
        assert other.get_attribute("#image", "src") == page.get_attribute("#image", "src")

        # The image on screen moved to someone else meanwhile (a newly added annotator): on to the next, saying why.
        moved = page.get_attribute("#image", "src").rsplit("/", 1)[1]
        with storage.connect(RunPaths(root).annotations_db_path) as conn:
            conn.execute("DELETE FROM assignments WHERE annotator = 'alice' AND image_id = ?", (moved,))
        page.keyboard.press("a")
        page.wait_for_function("document.getElementById('message').textContent.includes('no longer assigned')")
        page.wait_for_function(f"!document.getElementById('image').src.endsWith('{moved}')")
        assert count() == f"4 / {total - 1}"

        # A stopped server: a message a person understands, not "Failed to fetch".
        proc.kill()
        proc.wait()
        page.keyboard.press("a")
        page.wait_for_function("document.getElementById('message').textContent.includes('cannot reach the study server')")
        browser.close()
    answers = annotate.answers(root)
    assert answers["label"].tolist() == ["reject", "accept", "accept", "accept"] and set(answers["annotator"]) == {"alice"}
    first = answers.iloc[0]
    assert first.tags == "missing agent,role reversal" and first.comment == "the owl has two heads"
    assert first.seconds >= 0
    with storage.connect(RunPaths(root).annotations_db_path) as conn:
        shown = conn.execute("SELECT prompt FROM images WHERE image_id = ?", (first.image_id,)).fetchone()[0]
    assert shown == first_prompt  # the answer is stored against the image that was on screen


def test_tokens_origins_and_traversal_are_refused(small_run, tmp_path):
    root = fresh_copy(small_run, tmp_path)
    alice_link = study.add_annotator(root, "alice", overlap=1)
    alice = token_of(alice_link)
    bob_link = study.add_annotator(root, "bob", overlap=1)
    with serving(root, overlap=1) as (base, _), signed_in(base, alice_link) as me, signed_in(base, bob_link) as bob, \
            httpx.Client(base_url=base) as client, httpx.Client(base_url=base, cookies={"act2i_token": alice}) as cookie_only:
        mine = me.get("/api/next").json()["image_id"]
        theirs = bob.get("/api/next").json()["image_id"]
        assert client.get("/api/next").status_code == 401
        assert client.get("/api/next", headers={"X-Act2i-Token": alice}).status_code == 401  # only the cookie signs in
        assert client.get("/login", params={"token": "forged"}).status_code == 403
        assert client.get("/annotate").status_code == 401
        assert client.get(f"/img/{mine}").status_code == 401
        client.cookies.set("act2i_token", "forged")
        assert client.get("/api/next").status_code == 403
        assert me.get(f"/img/{theirs}").status_code == 404
        assert post_answer(me, theirs).status_code == 404
        answer = {"image_id": mine, "label": "accept"}
        csrf = me.headers["X-Act2i-CSRF"]
        refused = [{"X-Act2i-CSRF": csrf}, {"X-Act2i-CSRF": csrf, "Origin": "http://evil.example"},  # no or another origin
                   {"Origin": base}, {"Origin": base, "X-Act2i-CSRF": bob.headers["X-Act2i-CSRF"]}]  # no or another's CSRF
        for extra in refused:
            assert cookie_only.post("/api/answer", json=answer, headers=extra).status_code == 403, extra
        assert cookie_only.post("/api/undo", headers={"Origin": base}).status_code == 403
        for path in ("/img/../annotations.sqlite", "/img/..%2F..%2Fconfig.yaml", "/static/../storage.py",
                     "/static/..%2F..%2Fannotations.sqlite", "/img/' OR 1=1 --"):
            response = me.get(path)
            assert response.status_code == 404 and b"SQLite" not in response.content, path
        bad = [{"label": "maybe"}, {"label": "accept", "tags": ["ugly"]}, {"label": "accept", "comment": "x" * 2001},
               {"label": "accept", "seconds": -1}, {"label": "accept", "seconds": "soon"}]
        for extra in bad:
            assert post_answer(me, mine, **extra).status_code == 400, extra
        assert me.post("/api/answer", content=b"not json").status_code == 400
        image = me.get(f"/img/{mine}")
        with Image.open(io.BytesIO(image.content)) as served:  # every image at one size: sizes do not tell models apart
            assert served.size == (blind.SIZE, blind.SIZE)
        assert post_answer(me, mine).status_code == 200
        assert post_answer(me, mine).status_code == 409  # a second live answer is refused
    assert len(annotate.answers(root)) == 1


def test_malformed_and_oversized_bodies_are_refused(small_run, tmp_path):
    root = fresh_copy(small_run, tmp_path)
    link = study.add_annotator(root, "alice", overlap=1)
    with serving(root, overlap=1) as (base, _), signed_in(base, link) as me:
        mine = me.get("/api/next").json()["image_id"]
        malformed = [
            json.dumps({"image_id": [mine], "label": "accept"}).encode(),
            json.dumps({"image_id": {"id": mine}, "label": "accept"}).encode(),
            json.dumps({"image_id": mine, "label": ["accept"], "tags": [["missing agent"]]}).encode(),
            b'{"image_id": "' + mine.encode() + b'", "label": "accept", "comment": "half a pair \\ud800"}',
            b'{"image_id": "\\udfff", "label": "accept"}',
            b"[" * 30_000 + b"]" * 30_000,  # deeper than Python's parser goes, smaller than the size limit
            b'{"image_id": "' + mine.encode() + b'", "label": "accept", "seconds": NaN}',
            b"\xff\xfe not utf-8",
        ]
        for body in malformed:
            response = me.post("/api/answer", content=body, headers={"Content-Type": "application/json"})
            assert response.status_code == 400 and response.json()["error"], body[:60]
        too_big = b'{"comment": "' + b"x" * app.MAX_BODY + b'"}'
        response = me.post("/api/answer", content=too_big)
        assert response.status_code == 413 and "too large" in response.json()["error"]
        response = me.post("/api/answer", content=iter([too_big[i:i + 4096] for i in range(0, len(too_big), 4096)]))
        assert "content-length" not in response.request.headers  # streamed: counted while read, not announced
        assert response.status_code == 413 and "too large" in response.json()["error"]
        assert me.get("/api/next").json()["image_id"] == mine  # the server is fine and nothing was stored
    assert annotate.answers(root).empty


def test_a_held_write_lock_does_not_freeze_the_pages(small_run, tmp_path):
    root = fresh_copy(small_run, tmp_path)
    link = study.add_annotator(root, "alice", overlap=1)
    with serving(root, overlap=1) as (base, _), signed_in(base, link) as me, signed_in(base, link) as other_tab:
        mine = me.get("/api/next").json()["image_id"]
        blocker = sqlite3.connect(RunPaths(root).annotations_db_path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # someone else (an import, a script) is writing
        waiting = []
        writer = threading.Thread(target=lambda: waiting.append(post_answer(other_tab, mine)))
        try:
            writer.start()
            time.sleep(0.5)  # the answer now waits for the lock in the server
            started = time.monotonic()
            assert me.get("/api/next", timeout=5).json()["image_id"] == mine
            assert me.get(f"/img/{mine}", timeout=5).status_code == 200
            assert me.get("/annotate", timeout=5).status_code == 200
            assert time.monotonic() - started < 4
            assert writer.is_alive()
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        writer.join(timeout=30)
        assert waiting[0].status_code == 200 and waiting[0].json()["done"] == 1  # the waiting answer went through


def big_run(tmp_path) -> Path:
    """250 images (125 prompts x 2 variants), all the same small picture, for load tests."""
    run = open_run(tmp_path / "big", "smoke", {"annotate": {"overlap": 2}, "generate": {
        "models": [{"model": "tiny:sd3", "name": "m"}], "variants": ["base", "temporal"], "seeds": [0]}})
    bench = build_benchmark(seed=0)
    bench.to_parquet(run.benchmark_path)
    picture = run.root / "images" / "one.png"
    picture.parent.mkdir(parents=True)
    Image.new("RGB", (16, 16), "gray").save(picture)
    rows = [{"model": "m", "variant": v, "id": i, "seed": 0, "prompt": p, "path": "images/one.png"}
            for v in ("base", "temporal") for i, p in zip(bench["id"], bench["base_prompt"])]
    pd.DataFrame(rows).to_parquet(run.manifest_path)
    return run.root


def test_eight_annotators_post_500_answers_at_once(tmp_path):
    root = big_run(tmp_path)
    links = {f"a{i}": study.add_annotator(root, f"a{i}", overlap=2) for i in range(8)}
    with storage.connect(RunPaths(root).annotations_db_path) as conn:
        work = {name: [r[0] for r in conn.execute("SELECT image_id FROM assignments WHERE annotator = ?", (name,))]
                for name in links}
    assert sum(map(len, work.values())) == 500 and max(map(len, work.values())) - min(map(len, work.values())) <= 1
    statuses = []
    with serving(root) as (base, _):
        def worker(name):
            with signed_in(base, links[name]) as client:
                for image_id in work[name]:
                    statuses.append(post_answer(client, image_id, "reject", seconds=1.5).status_code)
                statuses.append(post_answer(client, work[name][0]).status_code)  # a double click

        threads = [threading.Thread(target=worker, args=(name,)) for name in links]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert statuses.count(200) == 500 and statuses.count(409) == 8
    answers = annotate.answers(root)
    assert len(answers) == 500 and not answers.duplicated(["annotator", "image_id"]).any()
    assert set(zip(answers["annotator"], answers["image_id"])) == {(n, i) for n, ids in work.items() for i in ids}


def test_killed_server_loses_nothing(small_run, tmp_path):
    root = fresh_copy(small_run, tmp_path)
    link = study.add_annotator(root, "alice", overlap=1)
    answered = []
    with serving(root, overlap=1) as (base, proc), signed_in(base, link) as client:
        for _ in range(4):
            image_id = client.get("/api/next").json()["image_id"]
            assert post_answer(client, image_id, comment=f"n{len(answered)}").status_code == 200
            answered.append(image_id)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with serving(root, overlap=1) as (base, _), signed_in(base, link) as client:
        state = client.get("/api/next").json()
        assert state["done"] == 4 and state["image_id"] not in answered
    answers = annotate.answers(root)
    assert answers["image_id"].tolist() == answered and answers["comment"].tolist() == ["n0", "n1", "n2", "n3"]


def test_export_status_and_assignment(small_run, tmp_path):
    root = fresh_copy(small_run, tmp_path)
    tokens = [token_of(study.add_annotator(root, n, overlap=2)) for n in ("ann", "ben", "cat")]
    db = RunPaths(root).annotations_db_path
    with storage.connect(db) as conn:
        per_image = [r[0] for r in conn.execute("SELECT COUNT(*) FROM assignments GROUP BY image_id")]
        loads = [r[0] for r in conn.execute("SELECT COUNT(*) FROM assignments GROUP BY annotator")]
        orders = {n: [r[0] for r in conn.execute("SELECT image_id FROM assignments WHERE annotator = ? ORDER BY position", (n,))]
                  for n in ("ann", "ben")}
        for name in ("ann", "ben", "cat"):
            for image_id in [r[0] for r in conn.execute("SELECT image_id FROM assignments WHERE annotator = ?", (name,))]:
                conn.execute("INSERT INTO answers (annotator, image_id, label, seconds) VALUES (?, ?, 'accept', 2)", (name, image_id))
    assert per_image == [2] * 12 and max(loads) - min(loads) <= 1
    assert orders["ann"] != sorted(orders["ann"])  # a shuffled, per-annotator order
    parquet, csv = study.export(root)[:2]
    table = pd.read_parquet(parquet)
    assert list(table.columns) == ["annotator", "image_id", "model", "variant", "id", "seed", "label", "tags",
                                   "comment", "seconds", "source", "created"]
    assert len(table) == 24 and pd.read_csv(csv).shape == (24, 12)
    summary, people = study.status(root)
    assert summary["fleiss_images"] == 12 and summary["fleiss_raters_per_image"] == 2
    assert set(people.index) == {"ann", "ben", "cat"} and (people["acceptance"] == 1.0).all()


def test_exposed_host_warns():
    with pytest.warns(UserWarning, match="Serving on 0.0.0.0"):
        study.check_host("0.0.0.0")
    study.check_host("127.0.0.1")


def test_label_studio_round_trip(small_run, tmp_path):
    import json

    root = fresh_copy(small_run, tmp_path)
    study.add_annotator(root, "ann", overlap=1)
    tasks_path = labelstudio.export_tasks(root, tmp_path / "ls")
    tasks = json.loads(tasks_path.read_text())
    assert len(tasks) == 12 and set(tasks[0]["data"]) == {"image", "prompt", "image_id"}
    for task in tasks:
        assert not any(word in json.dumps(task) for word in SECRET_WORDS)
        assert (tmp_path / "ls" / "images" / f"{task['data']['image_id']}.png").is_file()
    assert "<Choice value=\"Accept\"/>" in (tmp_path / "ls" / "labeling_config.xml").read_text()
    results = [dict(task, annotations=[{
        "completed_by": {"email": "eve@lab.org"}, "lead_time": 3.5,
        "result": [{"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": ["Reject"]}},
                   {"from_name": "tags", "to_name": "image", "type": "choices", "value": {"choices": ["agents fused"]}},
                   {"from_name": "comment", "to_name": "image", "type": "textarea", "value": {"text": ["merged"]}}]}])
        for task in tasks[:3]]
    (tmp_path / "export.json").write_text(json.dumps(results))
    assert labelstudio.import_results(root, tmp_path / "export.json") == 3
    assert labelstudio.import_results(root, tmp_path / "export.json") == 3  # again: replaced, not doubled
    answers = annotate.answers(root)
    assert len(answers) == 3 and set(answers["annotator"]) == {"ls:eve@lab.org"}
    assert set(answers["tags"]) == {"agents fused"} and set(answers["source"]) == {"labelstudio"}
    (tmp_path / "bad.json").write_text(json.dumps([{"id": 9, "data": {"image_id": "nope"}, "annotations": []}]))
    with pytest.raises(InputError, match="task 9 has image_id 'nope'"):
        labelstudio.import_results(root, tmp_path / "bad.json")
