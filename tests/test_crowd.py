"""The human study at the paper's scale (issue 26): crowd workers from a study link, consent,
instructions, batches with gold checks, exclusions, per-rater exports, kill -9 restarts, a load test,
the analysis counting only the good raters, and one worker in Chromium."""

import dataclasses
import os
import shutil
import sqlite3

import pandas as pd
import pytest
from starlette.testclient import TestClient

from act2i_utils import analysis, generate
from act2i_utils.annotate import crowd, storage, study
from act2i_utils.annotate.app import create_app
from act2i_utils.benchmark import build_benchmark
from act2i_utils.enrich import enrich
from act2i_utils.enrich.kb import KnowledgeBaseBackend
from act2i_utils.errors import InputError
from act2i_utils.runs import RunPaths, open_run
from crowd_sim import CSRF, Server, Worker, percentile, run_study

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
VARIANTS = ["base", "temporal"]


def make_gold(run, folder, n: int = 6) -> None:
    """Gold images from the run's own images: half shown with their prompt (accept), half attention
    checks shown with a prompt they plainly do not depict (reject)."""
    manifest = pd.read_parquet(run.manifest_path)
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["id,image,prompt,expected,kind"]
    for i, rec in enumerate(manifest.head(n).to_dict("records")):
        shutil.copyfile(run.root / rec["path"], folder / f"gold{i}.png")
        attention = i % 2 == 1
        prompt = "a red double-decker bus parked on a city street" if attention else rec["prompt"]
        rows.append(f"check{i},gold{i}.png,{prompt},{'reject' if attention else 'accept'},"
                    f"{'attention' if attention else 'gold'}")
    (folder / "gold.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def crowd_run(tmp_path_factory):
    """12 study images (3 prompts x 2 variants x 2 seeds) and 6 gold images; batches of 8 with 4 gold."""
    base = tmp_path_factory.mktemp("crowd")
    root = base / "run"
    run = open_run(root, "smoke", {
        "generate": {"seeds": [42, 7], "variants": VARIANTS},
        "annotate": {"overlap": 25, "batch_size": 8, "gold_rate": 0.5, "gold_file": str(base / "gold" / "gold.csv"),
                     "max_gold_errors": 1, "min_seconds": 2.0, "completion_url":
                     "https://app.prolific.com/submissions/complete?cc={code}"},
        "analyze": {"acceptance_source": "human", "n_bootstrap": 100},
    })
    bench = build_benchmark(seed=0, n_per_action=1)
    bench.to_parquet(run.benchmark_path)
    enrich(bench.head(3), KnowledgeBaseBackend(), dimensions=["temporal"], progress=False).to_parquet(run.prompts_path)
    generate.run(run, progress=False)
    make_gold(run, base / "gold")
    return run


def fresh(run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run.root, copy, ignore=shutil.ignore_patterns("annotations.sqlite*", "annotation_*"))
    return open_run(copy)


def gold_answers(db) -> dict[str, str]:
    """What a careful worker knows about each gold image: prompt|image id -> the right answer."""
    with storage.connect(db, write=False) as conn:
        return {f"{r['prompt']}|{r['image_id']}": r["gold"]
                for r in conn.execute("SELECT prompt, image_id, gold FROM images WHERE gold IS NOT NULL")}


def workers_of(n: int, careless: int, prefix: str = "5f3c9a") -> list[Worker]:
    workers = [Worker(f"{prefix}{i:018d}", careless=i < careless) for i in range(n)]
    workers[careless].gold_slip = workers[careless + 1].gold_slip = True  # one wrong gold answer: still in
    return workers


def check_nothing_lost(run, workers: list[Worker]) -> None:
    with sqlite3.connect(run.annotations_db_path) as conn:
        live = conn.execute("SELECT annotator, image_id FROM answers WHERE undone = 0").fetchall()
        assigned = set(conn.execute("SELECT annotator, image_id FROM assignments "
                                    "WHERE annotator IN (SELECT name FROM workers)").fetchall())
        names = dict(conn.execute("SELECT image_id, image_id FROM images").fetchall())
    assert len(live) == len(set(live)), "an answer was stored twice"
    assert set(live) == assigned, "every assigned image answered exactly once, none lost"
    by_worker: dict[str, set] = {}
    for annotator, image_id in live:
        by_worker.setdefault(annotator, set()).add(image_id)
    confirmed = {image for w in workers for image in w.answered}
    assert confirmed <= {i for images in by_worker.values() for i in images} and confirmed <= set(names)


def test_a_simulated_crowd_study_with_restarts(crowd_run, tmp_path):
    """50 workers, 10 careless, two kill -9 restarts: careless ones excluded by the gold rule, every
    completion code returned, nothing lost or doubled, the analysis counting only the good raters."""
    run = fresh(crowd_run, tmp_path)
    workers = workers_of(50, 10)
    with Server(run.root) as server:
        db = run.annotations_db_path
        done = run_study(server, workers, gold_answers(db), restarts=2, think=(0.05, 0.2)).workers
        banner = server.stop()
    with storage.connect(db, write=False) as conn:
        code = crowd.completion_code(conn, crowd.settings(run))
    assert all(w.code == code for w in done) and code in banner
    check_nothing_lost(run, done)
    assert sum(w.errors for w in done) > 0  # the restarts were felt

    raters = study.raters(run)
    names = {w.pid: crowd.worker_name(_salt(db), "prolific", w.pid) for w in done}
    careless = {names[w.pid] for w in done if w.careless}
    assert set(raters.loc[raters["excluded"], "annotator"]) == careless  # the gold rule, exactly
    assert set(raters.loc[raters["fast"], "annotator"]) == careless
    slips = raters[raters["annotator"].isin({names[w.pid] for w in done if w.gold_slip})]
    assert (slips["gold_errors"] == 1).all() and not slips["excluded"].any()

    # raw participant ids are never stored or exported
    exported = study.export(run.root)
    for path in [db, *exported]:
        blob = path.read_bytes()
        assert not any(w.pid.encode() in blob for w in done), path.name
    ratings = pd.read_parquet(run.ratings_path)
    assert len(ratings) == 50 * 8 and set(ratings.loc[ratings["excluded"], "annotator"]) == careless
    assert ratings["gold_correct"].notna().sum() == 50 * 4

    # batches: every worker sees each model x variant stratum equally often (at most one apart)
    strata = ratings[ratings["model"] != crowd.GOLD_MODEL].groupby(["annotator", "variant"]).size().unstack(fill_value=0)
    assert (strata.max() - strata.min()).max() <= 1

    results = analysis.run(run)
    table = results.acceptance.table
    good = ratings[~ratings["excluded"] & (ratings["model"] != crowd.GOLD_MODEL)]
    per_image = good.groupby(["model", "variant", "id", "seed"]).size().rename("n").reset_index()
    merged = table.merge(per_image, on=["model", "variant", "id", "seed"])
    assert len(merged) == len(table) and (merged["annotators"] == merged["n"]).all()  # only the good raters count
    assert any("10 are excluded by the gold rule" in n for n in results.notes)
    report = run.report_path.read_text(encoding="utf-8")
    assert "The raters behind the human acceptance (50)" in report


@pytest.mark.slow
def test_two_hundred_workers_five_kill_restarts_and_p95_latency(crowd_run, tmp_path):
    """The load test: 200 workers answering at once against one server on 2 cores, five kill -9
    restarts: nothing lost, nothing doubled, p95 answer latency under 100 ms."""
    run = fresh(crowd_run, tmp_path)
    workers = workers_of(200, 20, prefix="6a")
    with Server(run.root, overlap=100) as server:  # careful workers take 2-4 s an image, careless ones a quarter
        done = run_study(server, workers, gold_answers(run.annotations_db_path), restarts=5, think=(2.0, 4.0),
                         arrival=10.0, timeout=400)
    check_nothing_lost(run, done.workers)
    assert all(w.code for w in done.workers) and len(done.outages) == 5
    steady = done.latencies(settle=3.0)  # not the seconds after a restart, when every worker reconnects at once
    assert percentile(steady, 0.95) < 0.100, percentile(steady, 0.95)


def test_forty_workers_answer_fast_without_restarts(crowd_run, tmp_path):
    """The default run's version of the load test: 40 workers at once, p95 answer latency under 100 ms."""
    run = fresh(crowd_run, tmp_path)
    with Server(run.root, overlap=100) as server:
        done = run_study(server, workers_of(40, 4, prefix="7b"), gold_answers(run.annotations_db_path), think=(1.0, 2.0),
                         arrival=4.0)
    check_nothing_lost(run, done.workers)
    assert percentile(done.latencies(), 0.95) < 0.100, percentile(done.latencies(), 0.95)


def _salt(db) -> str:
    with storage.connect(db, write=False) as conn:
        return conn.execute("SELECT value FROM meta WHERE key = 'worker_salt'").fetchone()["value"]


# --- the study link, in process ----------------------------------------------------------------

@pytest.fixture
def app_client(crowd_run, tmp_path):
    run = fresh(crowd_run, tmp_path)
    settings = crowd.settings(run)
    study.prepare_study(run.root, settings.overlap, 0, study=settings)
    return run, settings, lambda **kw: TestClient(create_app(run.root, settings), **kw)


def consented(client) -> dict:
    page = client.get("/consent")
    headers = {"X-Act2i-CSRF": CSRF.search(page.text).group(1), "Origin": str(client.base_url).rstrip("/")}
    assert client.post("/api/consent", json={}, headers=headers).status_code == 200
    return headers


def test_a_returning_worker_resumes_the_same_batch_and_two_tabs_cannot_double_it(app_client):
    run, settings, client_for = app_client
    one = client_for(base_url="http://testserver")
    assert one.get("/study", params={"PROLIFIC_PID": "abc123"}, follow_redirects=False).headers["location"] == "/consent"
    headers = consented(one)
    first = one.get("/api/next").json()
    one.post("/api/answer", json={"image_id": first["image_id"], "label": "accept"}, headers=headers)
    # the same participant on another device: found again, consent remembered, the same batch, one answer in
    two = client_for(base_url="http://testserver")
    assert two.get("/study", params={"PROLIFIC_PID": "abc123"}, follow_redirects=False).headers["location"] == "/instructions"
    assert two.get("/api/next").json()["done"] == 1
    now = one.get("/api/next").json()
    page = two.get("/annotate")
    headers2 = {"X-Act2i-CSRF": CSRF.search(page.text).group(1), "Origin": "http://testserver"}
    assert two.post("/api/answer", json={"image_id": now["image_id"], "label": "reject"}, headers=headers2).status_code == 200
    assert one.post("/api/answer", json={"image_id": now["image_id"], "label": "accept"}, headers=headers).status_code == 409
    with sqlite3.connect(run.annotations_db_path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM workers").fetchone()[0] == 1
        assert conn.execute("SELECT COUNT(*) FROM assignments").fetchone()[0] == settings.batch_size


@pytest.mark.parametrize("query, status, text", [
    ({}, 400, "lacks your participant id"),
    ({"STUDY_ID": "x"}, 400, "PROLIFIC_PID or workerId"),
    ({"workerId": "A1", "assignmentId": "ASSIGNMENT_ID_NOT_AVAILABLE", "hitId": "H"}, 200, "This is a preview"),
    ({"PROLIFIC_PID": "x" * 500}, 400, "is not a participant id"),
])
def test_study_links_without_a_participant(app_client, query, status, text):
    _, _, client_for = app_client
    response = client_for(base_url="http://testserver").get("/study", params=query, follow_redirects=False)
    assert response.status_code == status and text in response.text


def test_mturk_and_other_platforms_get_their_own_anonymous_names(app_client):
    run, _, client_for = app_client
    for params in ({"workerId": "A2B3C4", "assignmentId": "X", "hitId": "H"}, {"PROLIFIC_PID": "A2B3C4"}):
        assert client_for(base_url="http://testserver").get("/study", params=params, follow_redirects=False).status_code == 303
    with sqlite3.connect(run.annotations_db_path) as conn:
        rows = conn.execute("SELECT name, platform FROM workers ORDER BY platform").fetchall()
    assert [p for _, p in rows] == ["mturk", "prolific"] and rows[0][0] != rows[1][0]
    assert all(name.startswith("w-") and "A2B3C4" not in name for name, _ in rows)


def test_behind_an_https_proxy_cookies_are_secure_and_links_carry_the_root_path(app_client):
    _, _, client_for = app_client
    client = client_for(base_url="https://study.example.org", root_path="/act2i")  # as uvicorn --root-path sets it
    response = client.get("/act2i/study", params={"PROLIFIC_PID": "p1"}, follow_redirects=False)
    cookie = response.headers["set-cookie"]
    assert response.headers["location"] == "/act2i/consent"
    assert "Secure" in cookie and "HttpOnly" in cookie and "Path=/act2i" in cookie
    page = client.get("/act2i/consent")
    assert "/act2i/static/study.js" in page.text and 'name="act2i-root" content="/act2i"' in page.text
    plain = client_for(base_url="http://127.0.0.1").get("/study", params={"PROLIFIC_PID": "p2"}, follow_redirects=False)
    assert "Secure" not in plain.headers["set-cookie"]


def test_a_full_study_says_so_and_a_lab_cookie_cannot_enter_it(app_client):
    run, settings, client_for = app_client
    one_each = TestClient(create_app(run.root, dataclasses.replace(settings, overlap=1)), base_url="http://testserver")
    for pid in ("one", "two", "three"):  # 12 study images, 4 in each batch, one rater each: full after three
        one_each.cookies.clear()
        one_each.get("/study", params={"PROLIFIC_PID": pid})
        consented(one_each)
    one_each.cookies.clear()
    one_each.get("/study", params={"PROLIFIC_PID": "four"})
    page = one_each.get("/consent")
    refused = one_each.post("/api/consent", json={}, headers={"X-Act2i-CSRF": CSRF.search(page.text).group(1),
                                                               "Origin": "http://testserver"})
    assert refused.status_code == 409 and "all the answers it needs" in refused.json()["error"]
    link = study.add_annotator(run.root, "lab-person", overlap=settings.overlap)
    lab = client_for(base_url="http://testserver")
    lab.get("/login", params={"token": link.split("token=")[1]})
    assert lab.get("/consent").status_code == 403


def test_study_settings_are_checked_with_one_sentence(crowd_run, tmp_path):
    run = fresh(crowd_run, tmp_path)
    bad = open_run(run.root, overrides={"annotate": {"consent_file": str(tmp_path / "nope.txt")}}, reconfigure=True)
    with pytest.raises(InputError, match=r"annotate.consent_file names .*nope.txt, which is not a file"):
        crowd.settings(bad)
    bad = open_run(run.root, overrides={"annotate": {"gold_file": None, "consent_file": "configs/study/consent.txt"}},
                   reconfigure=True)
    with pytest.raises(InputError, match="annotate.gold_rate is 0.5 but annotate.gold_file is not set"):
        crowd.settings(bad)
    csv = tmp_path / "gold.csv"
    csv.write_text("image,prompt,expected\nnothere.png,a cat,accept\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"gold.csv: row 1 names the image nothere.png, which is not a file"):
        crowd.read_gold(csv)
    csv.write_text("image,prompt,expected\n", encoding="utf-8")
    with pytest.raises(InputError, match="has no rows"):
        crowd.read_gold(csv)
    shutil.copyfile(next((run.root / "images").rglob("*.png")), tmp_path / "a.png")
    csv.write_text("image,prompt,expected\na.png,a cat,maybe\n", encoding="utf-8")
    with pytest.raises(InputError, match="row 1 has expected 'maybe'; write accept or reject"):
        crowd.read_gold(csv)


def test_lab_mode_ignores_crowd_workers_and_gold(app_client):
    run, _, client_for = app_client
    client = client_for(base_url="http://testserver")
    client.get("/study", params={"PROLIFIC_PID": "w1"})
    consented(client)
    study.add_annotator(run.root, "ann", overlap=25)
    with sqlite3.connect(run.annotations_db_path) as conn:
        lab = conn.execute("SELECT COUNT(*) FROM assignments WHERE annotator = 'ann'").fetchone()[0]
        gold = conn.execute("SELECT COUNT(*) FROM assignments a JOIN images i USING (image_id) "
                            "WHERE a.annotator = 'ann' AND i.gold IS NOT NULL").fetchone()[0]
    assert lab == 12 and gold == 0  # every study image (one lab annotator), no gold


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="Debian's chromium is not installed (make test installs it)")
def test_one_worker_from_the_study_link_to_the_completion_code_in_chromium(crowd_run, tmp_path):
    from playwright.sync_api import sync_playwright

    run = fresh(crowd_run, tmp_path)
    with Server(run.root) as server, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        page = browser.new_page()
        page.goto(f"{server.base}/study?PROLIFIC_PID=60a1b2c3d4e5f60718293a4b&STUDY_ID=s&SESSION_ID=x")
        assert page.url.endswith("/consent") and "Consent to take part" in page.inner_text("#consent-text")
        page.click("#agree")
        page.wait_for_url("**/instructions")
        assert "Example 1" in page.content() and "Example 2" in page.content()
        page.click("#start")
        page.wait_for_url("**/annotate")
        gold = gold_answers(run.annotations_db_path)
        for n in range(8):
            page.wait_for_function(f"document.getElementById('count').textContent.startsWith('{n} /')")
            page.wait_for_function("document.getElementById('image').complete && document.getElementById('image').naturalWidth > 0")
            image_id = page.get_attribute("#image", "src").rsplit("/", 1)[1]
            expected = gold.get(f"{page.inner_text('#prompt')}|{image_id}", "accept")
            page.keyboard.press("a" if expected == "accept" else "r")
        page.wait_for_function("!document.getElementById('completion').hidden")
        with storage.connect(run.annotations_db_path, write=False) as conn:
            code = crowd.completion_code(conn, crowd.settings(run))
        assert page.inner_text("#completion-code") == code
        assert page.get_attribute("#completion-link", "href") == f"https://app.prolific.com/submissions/complete?cc={code}"
        browser.close()
    assert study.raters(run)["excluded"].sum() == 0
