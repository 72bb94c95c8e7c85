"""The analyze stage: acceptance with intervals, gains, breakdowns, paired tests, a GEE model,
metric validity, failure modes, prompt linguistics, the paper's figures and a one-page report.

Reads the run's benchmark, prompts, manifest and scores, and the human answers through
`annotate.answers` (the live study database). Writes `tables/*.csv`, `figures/*.png|pdf` and
`report.html`, all inside the run directory (a run writes nowhere else).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..annotate import answers as human_answers
from ..errors import InputError
from ..fileio import atomic_path
from ..manifest import configured_images, read_manifest
from ..schema import PROMPTS, SCORES
from . import figures as fg
from . import linguistics, stats


@dataclass
class Results:
    """Everything the stage computed, for the notebook to show."""

    acceptance: stats.Acceptance
    rates: pd.DataFrame
    gains: pd.DataFrame
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, Path] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    report: Path | None = None


def load_acceptance(run) -> tuple[stats.Acceptance, pd.DataFrame, pd.DataFrame]:
    """(acceptance, human answers, scores) following `analyze.acceptance_source`."""
    cfg = run.config.analyze
    answers = human_answers(run)
    scores_path = run.scores_path
    scores = SCORES.read(scores_path) if scores_path.is_file() else SCORES.empty()
    if cfg.acceptance_source == "human" or (cfg.acceptance_source == "auto" and len(answers)):
        if answers.empty:
            raise InputError(f"{run.root} has no human annotations; run `act2i annotate` first or set analyze.acceptance_source: judge.")
        return stats.from_annotations(answers), answers, scores
    if scores.empty:
        raise InputError(f"{scores_path} does not exist or is empty; run the evaluate stage (notebook 04) first.")
    try:
        return stats.from_judge(scores, cfg.judge_metric, cfg.judge_threshold, cfg.judge_quantile), answers, scores
    except ValueError as err:
        raise InputError(f"{scores_path}: {err}.") from None


def run(run, progress: bool = True) -> Results:
    """Analyse the run; see the module docstring for what it writes."""
    cfg = run.config.analyze
    bench = pd.read_parquet(run.require(run.benchmark_path))
    with run.stage("analyze"):
        acc, answers, scores = load_acceptance(run)
        notes: list[str] = []
        acc = _configured_only(run, acc, notes)
        variants = list(dict.fromkeys(["base", *run.config.generate.variants, *acc.table["variant"]]))
        order = {v: i for i, v in enumerate(variants)}  # tables and figures follow the profile's variant order
        acc = dataclasses.replace(acc, table=acc.table.sort_values("variant", key=lambda s: s.map(order), kind="stable",
                                                                  ignore_index=True))
        rates, gains = stats.acceptance_rates(acc.table, variants, cfg.n_bootstrap, cfg.confidence, cfg.seed)
        results = Results(acc, rates, gains, notes=notes)
        source = acc.description
        if run.random_weights:
            results.notes.append("These numbers come from random-weight models (smoke profile): they test the pipeline, not a model.")
        _tables(results, run, bench, acc, answers, scores)
        _figures(results, run, bench, acc, source)
        _write(results, run, source)
        results.report = write_report(run, results)
    return results


def _configured_only(run, acc: stats.Acceptance, notes: list[str]) -> stats.Acceptance:
    """Acceptance of exactly the images the current config names; a note says how many were set aside."""
    images, _ = configured_images(run)
    if images.empty:
        return acc
    keep = acc.table.merge(images[["model", "variant", "id", "seed"]], how="inner")
    dropped = len(acc.table) - len(keep)
    if not dropped:
        return acc
    notes.append(f"{dropped} judged images are not named by the run's current config and are left out.")
    return dataclasses.replace(acc, table=keep)


def _tables(results: Results, run, bench, acc, answers, scores) -> None:
    cfg = run.config.analyze
    t = results.tables
    t["acceptance"], t["gains"] = results.rates, results.gains
    for label in stats.LABEL_COLUMNS:
        t[f"breakdown_{label}"] = stats.breakdown(acc.table, bench, label)
    t["paired_variants"] = stats.paired(acc.table, "variant")
    if acc.table["model"].nunique() > 1:
        t["paired_models"] = stats.paired(acc.table, "model")
    t["gee_odds_ratios"], note = stats.gee_odds_ratios(acc.table, cfg.confidence)
    results.notes.append(note)
    if len(answers) and len(scores):
        human = acc.table if acc.source == "human" else stats.from_annotations(answers).table  # votes counted once
        t["metric_validity"] = stats.metric_validity(scores, human)
    else:
        results.notes.append("Metric validity skipped: it needs both human annotations and automatic scores.")
    if len(answers) and answers["tags"].fillna("").str.len().gt(0).any():
        t["failure_modes"] = stats.failures_from_tags(answers)
        results.notes.append("Failure modes from the annotators' tags.")
    elif len(scores):
        t["failure_modes"] = stats.failures_from_vqa(scores, 0.5, cfg.judge_quantile)
        results.notes.append("Failure modes from the VQA judge's decomposed questions (no tags from people).")
    if "failure_modes" in t and len(t["failure_modes"]):
        order = {v: i for i, v in enumerate(dict.fromkeys(acc.table["variant"]))}
        t["failure_modes"] = t["failure_modes"].sort_values("variant", key=lambda s: s.map(order), kind="stable", ignore_index=True)
        t["failure_shift"] = stats.failure_shift(t["failure_modes"])
    if run.prompts_path.is_file():
        prompts = PROMPTS.read(run.prompts_path)
        prompts = prompts[prompts["sample"] == 0]
        t["prompt_lengths"] = linguistics.length_table(prompts)
        t["pos_profile"], note = linguistics.pos_profile(prompts)
        results.notes.append(note)
        results.tables["_added_words"] = prompts  # kept for the word clouds, not written


def _figures(results: Results, run, bench, acc, source: str) -> None:
    t, out = results.tables, run.figures
    stamp = run.random_weights

    def save(name: str, fig) -> None:
        results.figures[name] = fg.save_figure(fig, out / name, random_weights=stamp)[0]

    save("acceptance", fg.acceptance_bars(results.rates, source))
    if len(results.gains):
        save("gain_per_dimension", fg.gain_bars(results.gains, source))
    for model in acc.table["model"].unique():
        slug = model.replace("/", "_")
        for label in ("emotional_valence", "spatial_topology", "temporal_extent", "rarity_label"):
            save(f"heatmap_{slug}_{label}", fg.label_heatmap(t[f"breakdown_{label}"], model, source))
            if len(results.gains):
                save(f"gainmap_{slug}_{label}", fg.label_heatmap(t[f"breakdown_{label}"], model, source, value="relative_gain"))
        matrix = stats.win_matrix(t["paired_variants"], "model", model)
        if len(matrix) > 1:
            save(f"winrate_variants_{slug}", fg.win_heatmap(matrix, f"{model}: variant against variant", source))
        if "failure_modes" in t and len(t["failure_modes"]) and model in set(t["failure_modes"]["model"]):
            save(f"failure_modes_{slug}", fg.failure_bars(t["failure_modes"], model, source))
    if "paired_models" in t:
        for variant in dict.fromkeys(acc.table["variant"]):
            matrix = stats.win_matrix(t["paired_models"], "variant", variant)
            if len(matrix) > 1:
                save(f"winrate_models_{variant}", fg.win_heatmap(matrix, f"model against model ({variant})", source))
    if "_added_words" in t:
        save("wordclouds", fg.word_clouds(linguistics.added_words(t.pop("_added_words"))))
    if "metric_validity" in t and len(t["metric_validity"]):
        save("metric_validity", fg.validity_bars(t["metric_validity"]))
    _qualitative(results, run, save)


def _qualitative(results: Results, run, save) -> None:
    """One grid per model: four prompts as rows, the variants in the profile's order as columns."""
    manifest = read_manifest(run.root)
    if manifest.empty:
        return
    for entry in run.config.generate.models:
        label = entry.label
        part = manifest[manifest["model"] == label]
        if part.empty:
            continue
        ids = list(dict.fromkeys(part["id"]))[:4]
        seed = sorted(part["seed"].unique())[0]
        variants = [v for v in run.config.generate.variants if v in set(part["variant"])]
        fig = fg.qualitative_grid(manifest, run.root, model=label, seed=seed, ids=ids, variants=variants)
        save(f"qualitative_{label.replace('/', '_')}", fig)


def _write(results: Results, run, source: str) -> None:
    run.tables.mkdir(parents=True, exist_ok=True)
    for name, table in results.tables.items():
        with atomic_path(run.tables / f"{name}.csv") as tmp:
            table.assign(source=source).to_csv(tmp, index=False)


def write_report(run, results: Results) -> Path:
    from .report import render

    path = run.report_path
    with atomic_path(path) as tmp:
        tmp.write_text(render(run, results), encoding="utf-8")
    return path
