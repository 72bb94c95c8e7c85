"""The analysis figures and `report.html`.

Figures (synthetic tables, no run): the paper's variant order and colours everywhere, a title on
every figure, tick labels that never run together, heatmap cell text that contrasts with its cell,
gain and win-rate scales symmetric around no effect and sized to the data, n in every cell, and
error bars that are exactly the table's intervals (never seaborn's). The report (a small imported
run analysed by the real stage): opened from another folder in Chromium with the network cut, no
console errors, every image decoded, every figure file of the run shown with a caption, the
analyze stage finished in its provenance.
"""

from __future__ import annotations

import hashlib
import itertools
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from act2i_utils.analysis import figures as fg
from act2i_utils.analysis import report, stats

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PAPER_ORDER = ["Original", "Spatial", "Emotional", "Temporal"]
SHUFFLED = ["base", "emotional", "temporal", "spatial"]  # a profile may list its variants in any order


# --- synthetic tables ---------------------------------------------------------------------------


def acceptance_table(models=("model-a", "model-b"), variants=SHUFFLED, prompts=8, seeds=(1, 2)) -> pd.DataFrame:
    """One row per image; enrichment helps, temporal most; deterministic."""
    lift = {"base": 0.25, "spatial": 0.4, "emotional": 0.35, "temporal": 0.6}
    rows = []
    for model, variant, i, seed in itertools.product(models, variants, range(prompts), seeds):
        coin = hashlib.sha256(f"{model}{variant}{i}{seed}".encode()).digest()[0] / 255
        rows.append({"model": model, "variant": variant, "id": f"p{i}", "seed": seed, "accepted": int(coin < lift[variant])})
    return pd.DataFrame(rows)


def benchmark_labels(prompts=8) -> pd.DataFrame:
    return pd.DataFrame({"id": [f"p{i}" for i in range(prompts)],
                         "emotional_valence": ["aggressive", "affiliative"] * (prompts // 2),
                         "rarity_label": ["common"] * (prompts // 2) + ["rare"] * (prompts // 2)})


@pytest.fixture(scope="module")
def tables():
    acc = acceptance_table()
    rates, gains = stats.acceptance_rates(acc, ["base", "spatial", "emotional", "temporal"], n_boot=60)
    bench = benchmark_labels()
    breakdowns = [stats.breakdown(acc, bench, label, n_boot=40) for label in ("emotional_valence", "rarity_label")]
    return {"acc": acc, "rates": rates, "gains": gains, "breakdowns": breakdowns,
            "paired_variants": stats.paired(acc, "variant", n_boot=40), "paired_models": stats.paired(acc, "model", n_boot=40)}


def wins(pairs: pd.DataFrame, column: str, group):
    return [stats.win_matrix(pairs, column, group, v) for v in ("win_rate_a", "win_rate_a_ci_low", "win_rate_a_ci_high", "pairs")]


def drawn(fig):
    fig.canvas.draw()
    return fig


def tick_labels_overlap(fig) -> list[str]:
    """The x tick labels of any axes (bottom or top) that touch a neighbour: text run together."""
    renderer = drawn(fig).canvas.get_renderer()
    clashes = []
    for ax, side in itertools.product(fig.axes, ("label1", "label2")):
        labels = [getattr(tick, side) for tick in ax.xaxis.get_major_ticks()]
        boxes = sorted(((t.get_window_extent(renderer), t.get_text()) for t in labels if t.get_visible() and t.get_text()),
                       key=lambda box: box[0].x0)
        clashes += [f"{a[1]!r} / {b[1]!r}" for a, b in zip(boxes, boxes[1:]) if a[0].x1 > b[0].x0 - 1]
    return clashes


def titled(fig) -> bool:
    return bool((fig._suptitle and fig._suptitle.get_text()) or any(ax.get_title() for ax in fig.axes))


def luminance(colour) -> float:
    from seaborn.utils import relative_luminance

    return relative_luminance(colour)


def contrast(a, b) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def cell_texts(ax):
    """(text, its colour, the colour of the cell under it) for each heatmap cell of `ax`."""
    mesh = ax.collections[0]
    values = np.ma.masked_invalid(mesh.get_array().reshape(len(ax.get_yticks()), len(ax.get_xticks())))
    out = []
    for text in ax.texts:
        x, y = text.get_position()
        value = values[int(y), int(x)]
        cell = (1, 1, 1, 1) if np.ma.is_masked(value) else mesh.cmap(mesh.norm(value))
        out.append((text.get_text(), text.get_color(), cell, not np.ma.is_masked(value)))
    return out


# --- the theme ----------------------------------------------------------------------------------


def test_variants_keep_the_papers_order_and_titles():
    assert fg.variant_order(["temporal", "selected", "base", "temporal.s1", "emotional", "spatial"]) == [
        "base", "spatial", "emotional", "temporal", "temporal.s1", "selected"]
    assert [fg.variant_title(v) for v in ("base", "emotional_temporal", "temporal.s1", "selected_k2", "my_dimension")] == [
        "Original", "Emotional + Temporal", "Temporal (rewrite 2)", "Selected (k = 2)", "My dimension"]
    colours = fg.variant_colours(["temporal", "base", "extra", "other"])
    assert colours["base"] == fg.VARIANT_COLOURS["base"] and colours["temporal"] == fg.VARIANT_COLOURS["temporal"]
    assert len(set(colours.values())) == 4


def legend_titles(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_bars_are_in_the_papers_order_with_exactly_the_tables_intervals(tables):
    rates = tables["rates"]
    fig = fg.acceptance_bars(rates, "a source")
    ax = fig.axes[0]
    assert legend_titles(ax) == PAPER_ORDER and titled(fig) and not tick_labels_overlap(fig)
    colours = [fg.VARIANT_COLOURS[v].lower() for v in ("base", "spatial", "emotional", "temporal")]
    from matplotlib.colors import to_hex

    assert [to_hex(c.patches[0].get_facecolor()) for c in ax.containers[:4]] == colours
    segments = [seg for coll in ax.collections for seg in coll.get_segments() if len(seg) == 2 and seg[0][0] == seg[1][0]]
    drawn_intervals = sorted((round(s[0][1], 9), round(s[1][1], 9)) for s in segments)
    expected = sorted((round(lo, 9), round(hi, 9)) for lo, hi in zip(rates["ci_low"], rates["ci_high"]))
    assert drawn_intervals == expected  # the table's intervals, one per bar, nothing seaborn computed
    notes = " ".join(t.get_text() for t in fig.texts)
    assert "a source" in notes and "n = " in notes and "interval" in notes


def test_every_figure_has_a_title_and_readable_tick_labels(tables, tmp_path):
    long_names = tables["acc"].replace({"model": {"model-a": "stabilityai-stable-diffusion-3.5-large",
                                                  "model-b": "black-forest-labs-flux.1-dev"}})
    rates, gains = stats.acceptance_rates(long_names, ["base", "spatial", "emotional", "temporal"], n_boot=30)
    failures = stats.failure_shares(long_names.assign(**{"agents fused": long_names["accepted"] == 0,
                                                         "wrong context": long_names["accepted"] == 0}),
                                    ("agents fused", "wrong context"), n_boot=30)
    lengths = pd.DataFrame({"variant": SHUFFLED, "prompts": 8, "mean_words": [6.0, 40.0, 45.0, 38.0],
                            "type_token_ratio": 0.5, "mean_prompt_ttr": 0.8, "tokens: clip-l": [8.0, 55, 60, 52],
                            "share over 77: clip-l": [0.0, 0.1, 0.2, 0.05]})
    pos = pd.DataFrame([{"variant": v, "pos": p, "share": s} for v in SHUFFLED
                        for p, s in (("NOUN", 0.4), ("VERB", 0.2), ("ADJ", 0.4))])
    figures = [fg.acceptance_bars(rates, "s"), fg.gain_bars(gains, "s"), fg.failure_bars(failures, rates["model"][0], "s"),
               fg.label_heatmaps(tables["breakdowns"], "model-a", "s"),
               fg.label_heatmaps(tables["breakdowns"], "model-a", "s", value="relative_gain"),
               fg.win_heatmap(*wins(tables["paired_variants"], "model", "model-a")[:1], "t", "s",
                              *wins(tables["paired_variants"], "model", "model-a")[1:]),
               fg.length_bars(lengths, "s"), fg.length_bars(lengths, "s", pos=pos),
               fg.word_clouds({"temporal": {"frozen": 3, "mid-leap": 2}, "spatial": {"left": 4}})]
    for fig in figures:
        assert titled(fig), fig
        assert not tick_labels_overlap(fig), [t.get_text() for ax in fig.axes for t in ax.get_xticklabels()]
    assert [ax.get_title().split(" (")[0] for ax in figures[-1].axes] == ["Spatial", "Temporal"]


def test_heatmaps_show_n_and_an_interval_in_every_cell_in_a_colour_that_reads(tables):
    fig = fg.label_heatmaps(tables["breakdowns"], "model-a", "s")
    panels = [ax for ax in fig.axes if ax.collections and ax.texts]
    assert len(panels) == 2
    for ax in panels:
        assert [t.get_text() for t in ax.get_xticklabels()] == PAPER_ORDER
        for text, ink, cell, has_value in cell_texts(ax):
            assert "n=" in text and ("[" in text or not has_value), text
            assert contrast(ink, cell) >= 4.5, (text, ink, cell)


def test_gain_and_win_scales_are_symmetric_and_sized_to_the_data(tables):
    gains = [t.assign(relative_gain=t["relative_gain"].clip(-0.27, 0.27)) for t in tables["breakdowns"]]
    fig = fg.label_heatmaps(gains, "model-a", "s", value="relative_gain")
    low, high = next(ax for ax in fig.axes if ax.collections and ax.texts).collections[0].get_clim()
    largest = max(abs(t[(t["model"] == "model-a") & (t["variant"] != "base")]["relative_gain"]).max() for t in gains)
    assert low == -high and 100 * largest <= high <= 100 * largest + 10 and high < 100  # not fixed at +-100 %
    matrix, *rest = wins(tables["paired_variants"], "model", "model-a")
    low, high = fg.win_heatmap(matrix, "t", "s", *rest).axes[0].collections[0].get_clim()
    spread = np.nanmax(np.abs(matrix.to_numpy(dtype=float) - 0.5))
    assert low + high == pytest.approx(1.0) and high - 0.5 >= spread - 1e-9


def test_win_rates_between_models_and_variants_in_the_papers_order(tables):
    matrix, *rest = wins(tables["paired_variants"], "model", "model-a")
    ax = fg.win_heatmap(matrix, "t", "s", *rest).axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == PAPER_ORDER
    for text, ink, cell, has_value in cell_texts(ax):
        assert "n=" in text and "[" in text and contrast(ink, cell) >= 4.5
    models, *rest = wins(tables["paired_models"], "variant", "temporal")
    assert [t.get_text() for t in fg.win_heatmap(models, "t", "s", *rest).axes[0].get_yticklabels()] == ["model-a", "model-b"]


# --- images -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """A manifest of tiny PNGs, one colour per variant."""
    from PIL import Image

    root = tmp_path_factory.mktemp("images")
    acc = acceptance_table(models=("model-a",), prompts=4)
    paths = []
    for row in acc.itertuples():
        path = Path("images") / row.model / row.variant / f"{row.id}_{row.seed}.png"
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (24, 24), fg.VARIANT_COLOURS[row.variant]).save(root / path)
        paths.append(str(path))
    manifest = acc.assign(path=paths, prompt=[f"prompt {i} as {v}" for i, v in zip(acc["id"], acc["variant"])])
    return root, manifest


def test_the_qualitative_grid_puts_the_variants_in_the_papers_order(images):
    root, manifest = images
    fig = fg.qualitative_grid(manifest, root, model="model-a", seed=1, ids=["p0", "p1"], variants=SHUFFLED)
    assert [ax.get_title() for ax in fig.axes[:4]] == PAPER_ORDER and titled(fig)


def test_failure_examples_show_the_strongest_images_of_each_mode(images):
    root, manifest = images
    answers = pd.DataFrame([
        {"model": "model-a", "variant": v, "id": i, "seed": 1, "annotator": who, "label": "reject", "tags": tags}
        for v, i, tags in (("base", "p0", "agents fused"), ("temporal", "p1", "agents fused,wrong context"),
                           ("spatial", "p2", "incomplete action"), ("emotional", "p3", "role reversal"))
        for who in ("ann", "ben")] + [
        {"model": "model-a", "variant": "base", "id": "p1", "seed": 2, "annotator": "ann", "label": "reject",
         "tags": "agents fused"},
        {"model": "model-a", "variant": "base", "id": "p1", "seed": 2, "annotator": "ben", "label": "accept", "tags": ""}])
    flags = fg.failure_flags(answers)
    fused = flags[flags["mode"] == "agents fused"]
    assert list(fused["strength"]) == [1.0, 1.0, 0.5] and fused["evidence"].iloc[-1] == "tagged by 1 of 2"
    fig = fg.failure_examples(flags, manifest, root, model="model-a", per_mode=2)
    rows = [ax.get_ylabel().replace("\n", " ") for ax in fig.axes[::2] if ax.get_ylabel()]
    assert rows == ["hybridization (agents fused)", "incomplete action", "contextual misrepresentation", "role reversal"]
    assert sum(bool(ax.images) for ax in fig.axes) == 5 and titled(fig)
    assert fig.axes[0].get_title().startswith(("Original", "Temporal")) and "tagged by 2 of 2" in fig.axes[0].get_title()


def test_failure_flags_from_the_judges_follow_the_stats_rules():
    rng = np.random.default_rng(0)
    keys = acceptance_table(models=("model-a",), prompts=10)[["model", "variant", "id", "seed"]]
    scores = pd.concat([keys.assign(metric=m, value=rng.uniform(0, 1, len(keys))) for m in stats.VQA_PARTS])
    scores = pd.concat([scores, keys.assign(metric="geo_agents", value=rng.integers(0, 3, len(keys)).astype(float)),
                        keys.assign(metric="geo_iou", value=rng.uniform(0, 1, len(keys)))], ignore_index=True)
    flags = fg.failure_flags(None, scores, quantile=0.4)
    shares = pd.concat([stats.failures_from_vqa(scores, 0.5, 0.4, n_boot=10), stats.failures_from_geometry(scores, n_boot=10)])
    for row in shares.itertuples():
        flagged = flags[(flags["variant"] == row.variant) & (flags["mode"] == row.mode)]
        assert len(flagged) == round(row.share * row.images), (row.variant, row.mode)
    assert flags["strength"].is_monotonic_decreasing and set(flags["signal"]) == {
        "the VQA judge's decomposed questions", "the detector's boxes"}


def test_captions_say_what_each_figure_shows_and_its_source():
    names = ["acceptance", "gain_per_dimension", "heatmap_m", "gainmap_m", "winrate_variants_m", "winrate_models_base",
             "wordclouds", "qualitative_m", "failure_modes_m", "failure_examples_m", "metric_validity",
             "judge_leaderboard", "prompt_lengths", "benchmark_labels", "selection_cost_curve"]
    for name in names:
        text = fg.caption(name, "the people's majority")
        assert text.endswith(".") and ("_" not in name or name not in text)  # a sentence, not the file name
        assert "the people's majority" in text or "source" in text, name
    assert "m:" in fg.caption("qualitative_m", "s") and "other stage" in fg.caption("something_new", "s")


def test_final_provenance_shows_the_analyze_stage_done():
    running = {"stages": {"evaluate": {"status": "done", "ended": "x"}, "analyze": {"status": "running", "ended": None}}}
    final = report.final_provenance(running, when="2026-01-01T00:00:00")
    assert final["stages"]["analyze"] == {"status": "done", "ended": "2026-01-01T00:00:00"}
    assert running["stages"]["analyze"]["status"] == "running"  # the run's own record is not touched
    done = {"stages": {"analyze": {"status": "done", "ended": "earlier"}}}
    assert report.final_provenance(done) == done


# --- the report on a run ------------------------------------------------------------------------

MODELS = ["model-a", "model-b"]


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    """A small run of imported images, judged by people (with tags) and a VQA judge, analysed by the
    stage; notebook 01's benchmark figure and a figure of some other stage sit in its figures folder."""
    from PIL import Image

    from act2i_utils import analysis
    from act2i_utils.annotate import storage, study
    from act2i_utils.benchmark import build_benchmark, label_counts
    from act2i_utils.enrich import enrich
    from act2i_utils.enrich.kb import KnowledgeBaseBackend
    from act2i_utils.generate.stage import import_images
    from act2i_utils.runs import open_run
    from act2i_utils.schema import SCORES

    base = tmp_path_factory.mktemp("reported")
    run = open_run(base / "run", "smoke", {
        "generate": {"models": [{"model": "tiny:sd3", "name": m} for m in MODELS], "variants": SHUFFLED, "seeds": [1, 2]},
        "evaluate": {"metrics": ["clipscore", "vqa"]},
        "analyze": {"n_bootstrap": 30, "acceptance_source": "human", "judge_quantile": None}})
    bench = build_benchmark(seed=0, n_per_action=1).head(6)
    bench.to_parquet(run.benchmark_path)
    fg.save_figure(fg.label_distribution(label_counts(bench)), run.figures / "benchmark_labels", random_weights=True)
    enrich(bench, KnowledgeBaseBackend(), dimensions=SHUFFLED[1:], progress=False).to_parquet(run.prompts_path)
    (base / "incoming").mkdir()
    for variant in SHUFFLED:
        Image.new("RGB", (32, 32), fg.VARIANT_COLOURS[variant]).save(base / "incoming" / f"{variant}.png")
    keys = pd.DataFrame(list(itertools.product(MODELS, SHUFFLED, bench["id"], [1, 2])), columns=["model", "variant", "id", "seed"])
    keys.assign(file=keys["variant"] + ".png").to_csv(base / "mapping.csv", index=False)
    import_images(run, base / "incoming", base / "mapping.csv")
    rng = np.random.default_rng(0)
    SCORES.write(run.scores_path, pd.concat([keys.assign(metric=m, value=rng.uniform(0, 1, len(keys)), judge="synthetic")
                                             for m in ("clipscore", "vqa", *stats.VQA_PARTS)], ignore_index=True))
    for name in ("ann", "ben", "cat"):
        study.add_annotator(run.root, name, overlap=3)
    tags = ["agents fused", "wrong context", "incomplete action", "missing agent", "role reversal"]
    with storage.connect(run.annotations_db_path) as conn:
        for name, image_id, variant in conn.execute(
                "SELECT a.annotator, a.image_id, i.variant FROM assignments a JOIN images i USING (image_id)").fetchall():
            coin = hashlib.sha256(f"{name}{image_id}".encode()).digest()[0]
            accept = coin / 255 < {"base": 0.3, "spatial": 0.5, "emotional": 0.45, "temporal": 0.7}[variant]
            conn.execute("INSERT INTO answers (annotator, image_id, label, tags, seconds) VALUES (?, ?, ?, ?, 3)",
                         (name, image_id, "accept" if accept else "reject", "" if accept else tags[coin % len(tags)]))
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.set_title("made by another stage")
    fg.save_figure(fig, run.figures / "something_else", random_weights=True)
    return run, analysis.run(run, progress=False)


def test_the_report_has_contents_tables_and_a_caption_on_every_figure(reported):
    from bs4 import BeautifulSoup

    run, results = reported
    soup = BeautifulSoup(run.report_path.read_text(encoding="utf-8"), "html.parser")
    sections = [a["href"].lstrip("#") for a in soup.select("nav.toc a")]
    assert sections[:4] == ["acceptance", "labels", "paired", "failures"] and sections[-2:] == ["notes", "provenance"]
    assert all(soup.find(id=s) for s in sections)
    headings = {h.get_text() for h in soup.find_all(["h2", "h3"])}
    assert {"Variant against variant", "Model against model", "Prompt linguistics", "By label"} <= headings
    assert len(soup.select("#labels details table")) >= 4 and soup.select("#prompts table.descriptive")
    for figure in soup.find_all("figure"):
        text = figure.figcaption.get_text()
        assert len(text) > 60 and "Random-weight models" in text and figure["data-figure"] + ".png" not in text
    acceptance = soup.find("figure", attrs={"data-figure": "acceptance"}).figcaption.get_text()
    assert results.acceptance.description in acceptance
    stages = {row.find_all("td")[0].get_text(): row.find_all("td")[1].get_text()
              for row in soup.select("#provenance table tbody tr")}
    assert stages["analyze"] == "done" and "running" not in soup.find(id="provenance").get_text()


def offline(route, requests: list) -> None:
    """Let the page read files and data URIs, nothing from a network."""
    requests.append(route.request.url)
    if route.request.url.startswith(("file:", "data:")):
        route.continue_()
    else:
        route.abort()


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium")
def test_the_report_opens_offline_from_any_folder_with_every_figure(reported, tmp_path):
    from playwright.sync_api import sync_playwright

    run, _ = reported
    elsewhere = tmp_path / "copied" / "report.html"
    elsewhere.parent.mkdir()
    shutil.copy(run.report_path, elsewhere)  # alone: no figures folder next to it
    errors, requests = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("requestfailed", lambda r: errors.append(f"failed: {r.url}"))
            page.route("**/*", lambda route: offline(route, requests))
            page.goto(elsewhere.as_uri(), wait_until="load")
            shown = page.evaluate("""() => Array.from(document.querySelectorAll('figure')).map(f => {
                const img = f.querySelector('img');
                return [f.dataset.figure, img.complete, img.naturalWidth, f.querySelector('figcaption').innerText];
            })""")
            links = page.evaluate("() => Array.from(document.querySelectorAll('nav.toc a')).map(a => "
                                  "!!document.getElementById(a.getAttribute('href').slice(1)))")
        finally:
            browser.close()
    assert not errors, errors
    assert all(url.startswith(("file:", "data:")) for url in requests), requests
    on_disk = {p.stem for p in run.figures.glob("*.png")}
    assert {"benchmark_labels", "something_else", "acceptance", "failure_modes_model-a"} <= on_disk
    assert sorted(name for name, *_ in shown) == sorted(on_disk)
    assert all(complete and width > 0 for _, complete, width, _ in shown), shown
    assert all(caption.startswith("Figure ") for *_, caption in shown) and links and all(links)
