"""The analyse stage on a small real run of every stage, with a simulated human study."""

import hashlib

import pandas as pd
import pytest

from act2i_utils import analysis, annotate, evaluate, generate
from act2i_utils.annotate import storage, study
from act2i_utils.benchmark import build_benchmark
from act2i_utils.enrich import enrich
from act2i_utils.enrich.kb import KnowledgeBaseBackend
from act2i_utils.runs import open_run

VARIANTS = ["base", "spatial", "temporal"]


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
    assert results.acceptance.source == "human" and "majority of 3 annotator(s)" in results.acceptance.description
    names = set(results.figures)
    expected = {"acceptance", "gain_per_dimension", "wordclouds", "metric_validity",
                "winrate_variants_tiny-sd3", "winrate_variants_tiny-flux", "winrate_models_base", "winrate_models_temporal",
                "failure_modes_tiny-sd3", "qualitative_tiny-sd3", "qualitative_tiny-flux"}
    expected |= {f"{kind}_{m}_{label}" for kind in ("heatmap", "gainmap") for m in ("tiny-sd3", "tiny-flux")
                 for label in ("emotional_valence", "spatial_topology", "temporal_extent", "rarity_label")}
    assert expected <= names
    for name in expected:
        png = run.figures / f"{name}.png"
        assert png.stat().st_size > 2000 and png.with_suffix(".pdf").is_file()


def test_tables_say_their_source_and_hold_the_numbers(analysed):
    run, _, results = analysed
    for name in ("acceptance", "gains", "paired_variants", "paired_models", "gee_odds_ratios", "metric_validity",
                 "failure_modes", "failure_shift", "prompt_lengths", "breakdown_action"):
        table = pd.read_csv(run.tables / f"{name}.csv")
        assert (table["source"] == results.acceptance.description).all(), name
    rates = results.rates.set_index(["model", "variant"])
    human = annotate.answers(run)
    votes = human.assign(v=(human["label"] == "accept").astype(float)).groupby(["model", "variant", "id", "seed"])["v"].mean()
    expected = (votes > 0.5).groupby(level=["model", "variant"]).mean()
    for key, value in expected.items():
        assert rates.loc[key, "acceptance"] == pytest.approx(value)
    assert set(results.tables["metric_validity"]["metric"]) >= {"clipscore", "vqa"}
    assert set(results.tables["failure_modes"]["mode"]) >= {"missing agent", "wrong action"}


def test_report_is_one_page_with_the_headline_and_provenance(analysed):
    run, _, results = analysed
    html = results.report.read_text()
    assert results.report == run.report_path
    assert "Random-weight models (smoke profile)" in html and "Acceptance and gains" in html
    assert "relative gain (95% CI)" in html and "&quot;environment&quot;" in html
    assert html.count("data:image/png;base64,") == len(results.figures)
