"""The analyse stage on a small real run of every stage, with a simulated human study."""

import hashlib
import math
import re
import shutil

import nbformat
import numpy as np
import pandas as pd
import papermill as pm
import pytest

from act2i_utils import analysis, annotate, evaluate, generate
from act2i_utils.analysis import figures as fg
from act2i_utils.analysis import stats
from act2i_utils.annotate import storage, study
from act2i_utils.benchmark import build_benchmark
from act2i_utils.enrich import enrich
from act2i_utils.enrich.kb import KnowledgeBaseBackend
from act2i_utils.pipeline import NOTEBOOKS, kernel_name
from act2i_utils.runs import open_run
from act2i_utils.schema import SCORES

VARIANTS = ["base", "spatial", "temporal"]
COUNTS = {"images", "prompts", "pairs", "prompt_rows", "a_wins", "b_wins"}  # columns holding an n
P_VALUES = {"p_value", "p_holm"}  # test results: they come with the pairs and prompts they were computed on
DESCRIPTIVE = {"prompt_lengths", "pos_profile", "raters", "agents_not_found"}  # descriptions, each with its n


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    root = tmp_path_factory.mktemp("analysis") / "small"
    run = open_run(root, "smoke", {
        "generate": {"models": [{"model": "tiny-sd3"}, {"model": "tiny-flux"}], "variants": VARIANTS, "seeds": [1, 2]},
        "evaluate": {"metrics": ["clipscore", "vqa"]}, "analyze": {"n_bootstrap": 200},
    })
    bench = build_benchmark(seed=0, n_per_action=1)
    bench.to_parquet(run.benchmark_path)
    enrich(bench.head(4), KnowledgeBaseBackend(), dimensions=["spatial", "temporal"], progress=False).to_parquet(run.prompts_path)
    generate.run(run, progress=False)
    evaluate.run(run, progress=False)
    judge_only = analysis.run(run)  # before any person has judged
    for name in ("ann", "ben", "cat"):
        study.add_annotator(run.root, name, overlap=3)
    with storage.connect(run.annotations_db_path) as conn:  # simulated people: a fixed rule, some tags
        for name, image_id, variant in conn.execute(
                "SELECT a.annotator, a.image_id, i.variant FROM assignments a JOIN images i USING (image_id)").fetchall():
            coin = hashlib.sha256(f"{name}{image_id}".encode()).digest()[0] / 255
            accept = coin < {"base": 0.3, "spatial": 0.5, "temporal": 0.7}[variant]
            tags = "" if accept else ("missing agent" if coin > 0.85 else "wrong action")
            conn.execute("INSERT INTO answers (annotator, image_id, label, tags, seconds) VALUES (?, ?, ?, ?, 3)",
                         (name, image_id, "accept" if accept else "reject", tags))
    return run, judge_only, analysis.run(run)


def test_without_people_the_judge_stands_in(analysed):
    _, judge_only, _ = analysed
    assert judge_only.acceptance.source == "judge" and "vqa >= " in judge_only.acceptance.description
    assert any("VQA judge" in note for note in judge_only.notes)
    assert any("Metric validity skipped" in note for note in judge_only.notes)


def test_with_people_every_paper_figure_is_made(analysed):
    run, _, results = analysed
    assert results.acceptance.source == "human"
    assert "majority of 3 votes per image (3 annotators)" in results.acceptance.description
    names = set(results.figures)
    expected = {"acceptance", "gain_per_dimension", "wordclouds", "metric_validity",
                "winrate_variants_tiny-sd3", "winrate_variants_tiny-flux", "winrate_models_base", "winrate_models_temporal",
                "failure_modes_tiny-sd3", "qualitative_tiny-sd3", "qualitative_tiny-flux"}
    expected |= {f"{kind}_{m}" for kind in ("heatmap", "gainmap") for m in ("tiny-sd3", "tiny-flux")}
    assert expected <= names
    for name in expected:
        png = run.figures / f"{name}.png"
        assert png.stat().st_size > 2000 and png.with_suffix(".pdf").is_file()


def test_tables_say_their_source_and_random_weights_and_hold_the_numbers(analysed):
    run, _, results = analysed
    assert run.random_weights
    for name in ("acceptance", "gains", "paired_variants", "paired_models", "gee_odds_ratios", "metric_validity",
                 "failure_modes", "failure_shift", "prompt_lengths", "breakdown_action"):
        table = pd.read_csv(run.tables / f"{name}.csv")
        assert (table["source"] == results.acceptance.description).all(), name
        assert table["random_weights"].all(), name
    rates = results.rates.set_index(["model", "variant"])
    human = annotate.answers(run)
    votes = human.assign(v=(human["label"] == "accept").astype(float)).groupby(["model", "variant", "id", "seed"])["v"].mean()
    expected = (votes > 0.5).groupby(level=["model", "variant"]).mean()
    for key, value in expected.items():
        assert rates.loc[key, "acceptance"] == pytest.approx(value)
    assert set(results.tables["metric_validity"]["metric"]) >= {"clipscore", "vqa"}
    assert set(results.tables["failure_modes"]["mode"]) >= {"missing agent", "wrong action"}


def interval_of(table: pd.DataFrame, column: str):
    """The (low, high) columns holding `column`'s interval, or None."""
    columns = list(table.columns)
    for stem in (column, column.removesuffix("_gain")):
        if f"{stem}_ci_low" in columns and f"{stem}_ci_high" in columns:
            return f"{stem}_ci_low", f"{stem}_ci_high"
    if "ci_low" in columns and columns.index("ci_low") == columns.index(column) + 1 and "ci_high" in columns:
        return "ci_low", "ci_high"  # the table's main estimate, just before its interval
    return None


def test_every_number_in_every_table_has_an_interval_or_its_n(analysed):
    run, _, _ = analysed
    paths = sorted(run.tables.glob("*.csv"))
    assert len(paths) >= 14
    for path in paths:
        table = pd.read_csv(path)
        if table.empty:
            continue
        numbers = [c for c in table.columns if pd.api.types.is_numeric_dtype(table[c]) and not pd.api.types.is_bool_dtype(table[c])]
        assert COUNTS & set(table.columns), f"{path.name}: no count column"
        if path.stem in DESCRIPTIVE:
            continue
        for column in numbers:
            if column in COUNTS or column in P_VALUES or column.endswith(("ci_low", "ci_high", "_note")):
                continue  # a note column with no note reads back from CSV as an empty number column
            pair = interval_of(table, column)
            assert pair, f"{path.name}: {column} has no interval"
            finite = np.isfinite(table[column])
            for limit in pair:
                assert table.loc[finite, limit].notna().all(), f"{path.name}: {column} lacks {limit} where it has a value"


NUMBER = re.compile(r"^[+-]?\d+(\.\d+)?%?$")


def test_report_is_one_page_where_every_number_has_an_interval_or_is_a_count(analysed):
    from bs4 import BeautifulSoup

    run, _, results = analysed
    html = results.report.read_text()
    assert results.report == run.report_path
    assert "Random-weight models (smoke profile)" in html and "Acceptance and gains" in html
    assert "relative gain (95% CI)" in html and "&quot;environment&quot;" in html
    assert html.count("data:image/png;base64,") == len(list(run.figures.glob("*.png")))  # every figure of the run
    soup = BeautifulSoup(html, "html.parser")
    tables = soup.find_all("table")
    assert len(tables) >= 5
    for table in tables:
        header = [th.get_text(strip=True) for th in table.find("thead").find_all("th")]
        if "descriptive" in table.get("class", []):  # the whole prompt set described: its n, no sampling interval
            assert "prompts" in header or "images" in header  # the prompt set, or each rater's images
            continue
        for row in table.find("tbody").find_all("tr"):
            for name, cell in zip(header, row.find_all(["td", "th"])):
                text = cell.get_text(strip=True)
                if name in ("p", "p (Holm)"):
                    assert text != "0.000" and (text.startswith("< ") or text == "n/a" or float(text) >= 0.001), text
                elif NUMBER.match(text):
                    assert name in ("images", "prompts", "pairs", "prompt rows"), f"{name}: {text} without an interval"


def test_figures_print_intervals_in_their_cells(analysed):
    _, _, results = analysed
    t = results.tables
    breakdowns = [t[f"breakdown_{label}"] for label in ("emotional_valence", "rarity_label")]
    wins = [stats.win_matrix(t["paired_variants"], "model", "tiny-sd3", v)
            for v in ("win_rate_a", "win_rate_a_ci_low", "win_rate_a_ci_high", "pairs")]
    figures = [(fg.label_heatmaps(breakdowns, "tiny-sd3", "s"), True),
               (fg.label_heatmaps(breakdowns, "tiny-sd3", "s", value="relative_gain"), False),  # empty if base is 0 throughout
               (fg.win_heatmap(wins[0], "t", "s", *wins[1:]), True)]
    for figure, has_cells in figures:
        cells = [text.get_text() for ax in figure.axes for text in ax.texts]
        assert all(("[" in c and "]" in c) or c.startswith(("undefined", "n/a")) for c in cells), cells  # no value: no interval
        assert all("n=" in c for c in cells) and (cells or not has_cells), cells
        notes = " ".join(text.get_text() for text in figure.texts)
        assert "n = " in notes and "interval" in notes


def test_a_run_of_imported_images_without_prompts_or_vqa_runs_notebook_05(analysed, tmp_path):
    run, _, _ = analysed
    copy = tmp_path / "imported"
    shutil.copytree(run.root, copy, ignore=shutil.ignore_patterns("notebooks", "figures", "tables"))
    copied = open_run(copy, overrides={"analyze": {"judge_metric": "clipscore"}}, reconfigure=True)
    copied.prompts_path.unlink()
    copied.annotations_db_path.unlink()
    scores = SCORES.read(copied.scores_path)
    SCORES.write(copied.scores_path, scores[scores["metric"] == "clipscore"].reset_index(drop=True))
    out = tmp_path / "05.ipynb"
    pm.execute_notebook(str(NOTEBOOKS / "06_analyze.ipynb"), str(out), progress_bar=False, kernel_name=kernel_name(),
                        parameters={"run_dir": str(copy), "profile": "", "overrides": ""})
    text = "\n".join(str(o.get("text", o.get("data", ""))) for c in nbformat.read(out, as_version=4).cells
                     for o in c.get("outputs", []))
    assert "Failure modes skipped" in text and "Prompt linguistics and word clouds skipped" in text
    assert "Failure modes from the VQA judge" not in text
    figures = {p.stem for p in (copy / "figures").glob("*.png")}
    assert "acceptance" in figures and "wordclouds" not in figures and not any(f.startswith("failure_modes") for f in figures)
    assert not math.isnan(pd.read_csv(copy / "tables" / "acceptance.csv")["ci_high"].iloc[0])


def test_people_on_a_fifth_of_the_images_give_prediction_powered_acceptance(analysed, tmp_path):
    import shutil

    from act2i_utils import annotate
    from act2i_utils.runs import open_run

    run, _, _ = analysed
    copy = tmp_path / "ppi"
    shutil.copytree(run.root, copy)
    partial = open_run(copy)
    keep = annotate.answers(partial).drop_duplicates("image_id").sample(frac=0.2, random_state=0)["image_id"]
    with storage.connect(partial.annotations_db_path, write=True) as conn:
        conn.execute(f"UPDATE answers SET undone = 1 WHERE image_id NOT IN ({','.join('?' * len(keep))})", list(keep))
    results = analysis.run(partial)
    assert results.acceptance.source == "ppi" and "prediction-powered" in results.acceptance.description
    rates = results.rates.dropna(subset=["acceptance"])  # a cell without any label has no estimate
    assert {"n_human", "lambda"} <= set(rates.columns) and len(rates) and (rates["ci_low"] <= rates["ci_high"]).all()
    assert "judge_leaderboard" in results.tables and "judge_leaderboard" in results.figures
    html = results.report.read_text()
    assert "prediction-powered" in html
