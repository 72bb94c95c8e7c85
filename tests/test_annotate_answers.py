"""`annotate.answers`: the study's current answers straight from the live database, the same rows
`export` writes, never a stale export; the Label Studio exchange without the web server; and the
study's inputs and outputs made safe: annotator names and links, overlap changes, spreadsheet
formulas in the CSV export, one image size, malformed Label Studio files."""

import csv
import io
import json
import subprocess
import sys

import pandas as pd
import pytest

from act2i_utils import annotate
from act2i_utils.annotate import blind, labelstudio, storage, study
from act2i_utils.benchmark import build_benchmark
from act2i_utils.errors import InputError
from act2i_utils.runs import RunPaths
from act2i_utils.schema import ANNOTATIONS


@pytest.fixture
def study_run(tmp_path) -> RunPaths:
    """Six images (three prompts x two variants), all one small picture, and two annotators."""
    from PIL import Image

    from act2i_utils.runs import open_run

    # a run whose config names these images (the study serves only what the config names)
    paths = open_run(tmp_path / "run", "smoke", {"generate": {"models": [{"model": "tiny:sd3", "name": "m"}],
                                                               "variants": ["base", "temporal"], "seeds": [0]}})
    paths.images.mkdir(parents=True)
    bench = build_benchmark(seed=0, n_per_action=1).head(3)
    bench.to_parquet(paths.benchmark_path)
    Image.new("RGB", (8, 8), "gray").save(paths.images / "one.png")
    rows = [{"model": "m", "variant": v, "id": i, "seed": 0, "prompt": p, "path": "images/one.png"}
            for v in ("base", "temporal") for i, p in zip(bench["id"], bench["base_prompt"])]
    pd.DataFrame(rows).to_parquet(paths.manifest_path)
    for name in ("ann", "ben"):
        study.add_annotator(paths.root, name, overlap=2)
    return paths


def answer(paths: RunPaths, annotator: str, count: int) -> None:
    with storage.connect(paths.annotations_db_path) as conn:
        todo = [r[0] for r in conn.execute(
            "SELECT image_id FROM assignments a WHERE annotator = ? AND NOT EXISTS (SELECT 1 FROM answers s "
            "WHERE s.annotator = a.annotator AND s.image_id = a.image_id AND s.undone = 0) ORDER BY position",
            (annotator,))]
        for image_id in todo[:count]:
            conn.execute("INSERT INTO answers (annotator, image_id, label, tags, seconds) VALUES (?, ?, 'reject', "
                         "'wrong action', 2)", (annotator, image_id))


def test_no_study_means_no_answers(tmp_path):
    table = annotate.answers(tmp_path)
    assert table.empty and list(table.columns) == ANNOTATIONS.columns


def test_answers_come_from_the_live_database_and_match_the_export(study_run):
    answer(study_run, "ann", 3)
    answer(study_run, "ben", 2)
    live = annotate.answers(study_run)
    assert list(live.columns) == ANNOTATIONS.columns and len(live) == 5
    assert set(live["id"]) <= set(pd.read_parquet(study_run.benchmark_path)["id"])
    assert annotate.answers(study_run.root).equals(live)  # a run root works as well as a RunPaths

    parquet, csv = study.export(study_run.root)[:2]
    assert parquet == study_run.annotations_path and csv == study_run.annotations_csv_path
    pd.testing.assert_frame_equal(ANNOTATIONS.read(parquet), live)
    assert pd.read_csv(csv).shape == live.shape

    answer(study_run, "ben", 1)  # after the export: answers sees it, the export does not
    assert len(annotate.answers(study_run)) == 6 and len(ANNOTATIONS.read(parquet)) == 5
    with storage.connect(study_run.annotations_db_path) as conn:  # an undo takes it back out
        conn.execute("UPDATE answers SET undone = 1 WHERE answer_id = (SELECT MAX(answer_id) FROM answers)")
    pd.testing.assert_frame_equal(annotate.answers(study_run), live)


def test_label_studio_does_not_load_the_web_server():
    code = ("import sys, act2i_utils.annotate.labelstudio; "
            "print(sorted(m for m in sys.modules if m == 'act2i_utils.annotate.app' or m.split('.')[0] == 'starlette'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_csv_export_neutralises_spreadsheet_formulas(study_run):
    comments = ["=HYPERLINK(\"http://evil.example\",\"x\")", "+1+1", "-2", "@SUM(A1)", "\tx", "\rx", "fine = good", ""]
    with storage.connect(study_run.annotations_db_path) as conn:
        todo = [r[0] for r in conn.execute("SELECT image_id FROM assignments WHERE annotator = 'ann' ORDER BY position")]
        for image_id, comment in zip(todo, comments):
            conn.execute("INSERT INTO answers (annotator, image_id, label, comment) VALUES ('ann', ?, 'accept', ?)",
                         (image_id, comment))
    parquet, path = study.export(study_run.root)[:2]
    assert ANNOTATIONS.read(parquet)["comment"].tolist() == comments[:len(todo)]  # the parquet keeps the raw text
    with open(path, newline="", encoding="utf-8") as handle:
        cells = [row["comment"] for row in csv.DictReader(handle)]
    assert cells == ["'" + c if c[:1] in ("=", "+", "-", "@", "\t", "\r") else c for c in comments[:len(todo)]]


def test_annotator_names_and_links_are_never_changed_silently(study_run):
    root, db = study_run.root, study_run.annotations_db_path
    for blank in ("", "   ", " ann", "ann\t"):
        with pytest.raises(InputError, match="name"):
            study.add_annotator(root, blank, overlap=2)
    with storage.connect(db) as conn:
        ann_token = conn.execute("SELECT token_hash FROM annotators WHERE name = 'ann'").fetchone()[0]
        before = conn.execute("SELECT image_id FROM assignments WHERE annotator = 'ann' ORDER BY image_id").fetchall()
    with pytest.raises(InputError, match="ann already has a link.*rotate"):
        study.add_annotator(root, "ann", overlap=2)
    with storage.connect(db) as conn:
        assert conn.execute("SELECT token_hash FROM annotators WHERE name = 'ann'").fetchone()[0] == ann_token
    link = study.add_annotator(root, "ann", overlap=2, rotate=True)
    new_token = link.split("token=")[1]
    assert storage.annotator_for(db, new_token) == "ann"
    with storage.connect(db) as conn:
        assert conn.execute("SELECT token_hash FROM annotators WHERE name = 'ann'").fetchone()[0] != ann_token  # revoked
        assert conn.execute("SELECT image_id FROM assignments WHERE annotator = 'ann' ORDER BY image_id").fetchall() == before
    with pytest.raises(InputError, match="no annotator named 'zoe'"):
        study.add_annotator(root, "zoe", overlap=2, rotate=True)


def test_a_lower_overlap_is_refused_with_the_reason(study_run):
    root, db = study_run.root, study_run.annotations_db_path
    with storage.connect(db) as conn:
        before = conn.execute("SELECT annotator, image_id FROM assignments ORDER BY 1, 2").fetchall()
    for lower in (lambda: study.prepare_study(root, 1), lambda: study.add_annotator(root, "cat", overlap=1)):
        with pytest.raises(InputError, match="already gives each image 2 annotators.*--overlap 2"):
            lower()
    with storage.connect(db) as conn:
        assert conn.execute("SELECT annotator, image_id FROM assignments ORDER BY 1, 2").fetchall() == before
        assert conn.execute("SELECT COUNT(*) FROM annotators WHERE name = 'cat'").fetchone()[0] == 0
    study.add_annotator(root, "cat", overlap=3)  # a higher overlap is applied
    with storage.connect(db) as conn:
        assert {r[0] for r in conn.execute("SELECT COUNT(*) FROM assignments GROUP BY image_id")} == {3}


def test_every_blind_image_has_one_size(study_run, tmp_path):
    from PIL import Image

    tall, wide = study_run.images / "tall.png", study_run.images / "wide.png"
    Image.new("RGB", (40, 100), "red").save(tall)
    Image.new("RGB", (1024, 576), "blue").save(wide)
    for path in (tall, wide, study_run.images / "one.png"):
        with Image.open(io.BytesIO(blind.blind_png(path))) as img:
            assert img.size == (blind.SIZE, blind.SIZE)
    labelstudio.export_tasks(study_run.root, tmp_path / "ls")
    for exported in (tmp_path / "ls" / "images").glob("*.png"):
        with Image.open(exported) as img:
            assert img.size == (blind.SIZE, blind.SIZE)


def test_malformed_label_studio_files_give_one_sentence(study_run, tmp_path):
    with storage.connect(study_run.annotations_db_path) as conn:
        image_id = conn.execute("SELECT image_id FROM images LIMIT 1").fetchone()[0]
    choice = [{"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": ["Accept"]}}]
    cases = {
        "strings.json": (["task one", "task two"], r"strings.json: item 1 is a str, not a Label Studio task"),
        "data.json": ([{"id": 4, "data": "x"}], r"data.json: task 4 has no data object"),
        "ids.json": ([{"id": 5, "data": {"image_id": [image_id]}}], r"ids.json: task 5 has image_id \['"),
        "annotations.json": ([{"id": 6, "data": {"image_id": image_id}, "annotations": ["yes"]}],
                             r"annotations.json: task 6 has an annotation that is not an object"),
        "nobody.json": ([{"id": 7, "data": {"image_id": image_id}, "annotations": [{"completed_by": None, "result": choice}]}],
                        r"nobody.json: task 7 has an annotation without completed_by"),
        "result.json": ([{"id": 8, "data": {"image_id": image_id}, "annotations": [{"completed_by": 3, "result": "Accept"}]}],
                        r"result.json: task 8 has an annotation whose result is not a list"),
    }
    for name, (content, message) in cases.items():
        (tmp_path / name).write_text(json.dumps(content))
        with pytest.raises(InputError, match=message):
            labelstudio.import_results(study_run.root, tmp_path / name)
    assert annotate.answers(study_run).empty
    (tmp_path / "ok.json").write_text(json.dumps([{"id": 9, "data": {"image_id": image_id},
                                                   "annotations": [{"completed_by": 3, "result": choice}]}]))
    assert labelstudio.import_results(study_run.root, tmp_path / "ok.json") == 1
    assert annotate.answers(study_run)["annotator"].tolist() == ["ls:3"]


def test_links_and_banner_for_a_server_open_to_the_network(study_run, monkeypatch):
    monkeypatch.setattr(study, "machine_address", lambda: "192.0.2.7")
    link = study.add_annotator(study_run.root, "cat", overlap=2, host="0.0.0.0", port=9000)
    assert link.startswith("http://192.0.2.7:9000/login?token=")
    banner = study.serve_banner("0.0.0.0", 9000)
    assert "http://192.0.2.7:9000" in banner and "0.0.0.0" not in banner
    assert "plain HTTP" in banner and "not Secure" in banner
    assert study.serve_banner("127.0.0.1", 8765).startswith("act2i: serving on http://127.0.0.1:8765")
    assert "plain HTTP" not in study.serve_banner("127.0.0.1", 8765)
    assert study.add_annotator(study_run.root, "dan", overlap=2, host="::1").startswith("http://[::1]:8765/login")
