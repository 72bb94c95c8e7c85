"""The analyze stage: acceptance with intervals, gains, breakdowns, paired tests, a GEE model,
metric validity, failure modes, prompt linguistics, the paper's figures and a one-page report.

Reads the run's benchmark, prompts (when the run has them: imported images may not), manifest and
scores, and the human answers through `annotate.answers` (the live study database). Writes
`tables/*.csv`, `figures/*.png|pdf` and `report.html`, all inside the run directory (a run writes
nowhere else). Every estimate carries a prompt-clustered interval and its counts (images, prompts,
pairs; see `stats`); every table carries its `source` (the acceptance description) and a
`random_weights` column, true when the run's models have random weights.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..annotate import answers as human_answers
from ..annotate import pair_comparisons as human_pair_comparisons
from ..annotate import raters as human_raters
from ..errors import InputError
from ..fileio import atomic_path
from ..manifest import configured_images, read_manifest
from ..schema import ANNOTATION_PLAN, KEY, PAIR_JUDGEMENTS, PAIRS, PROMPTS, SCORES, load_benchmark
from . import figures as fg
from . import linguistics, ranking, stats


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
    source = cfg.acceptance_source
    if source == "auto" and len(answers) and len(scores):
        labelled = answers[KEY].drop_duplicates().shape[0]
        judged = int((scores["metric"] == cfg.judge_metric).sum())
        source = "ppi" if judged and labelled < judged / 2 else "human"
    if source == "ppi":
        if answers.empty or scores.empty:
            raise InputError(f"{run.root}: prediction-powered acceptance needs human answers on some images and "
                             f"the judge {cfg.judge_metric} on all; run `act2i annotate` and the evaluate stage.")
        human = stats.from_annotations(answers)
        return dataclasses.replace(human, source="ppi"), answers, scores
    if source == "human" or (source == "auto" and len(answers)):
        if answers.empty:
            raise InputError(f"{run.root} has no human annotations; run `act2i annotate` first or set analyze.acceptance_source: judge.")
        return stats.from_annotations(answers), answers, scores
    if scores.empty:
        raise InputError(f"{scores_path} does not exist or is empty; run the evaluate stage (notebook 05) first.")
    try:
        return stats.from_judge(scores, cfg.judge_metric, cfg.judge_threshold, cfg.judge_quantile), answers, scores
    except ValueError as err:
        raise InputError(f"{scores_path}: {err}.") from None


def run(run, progress: bool = True) -> Results:
    """Analyse the run; see the module docstring for what it writes."""
    cfg = run.config.analyze
    bench = load_benchmark(run.require(run.benchmark_path))
    with run.stage("analyze"):
        acc, answers, scores = load_acceptance(run)
        notes: list[str] = []
        acc, answers, scores = _configured_only(run, acc, answers, scores, notes)
        acc, selection = _honest_selection(run, acc, notes)
        notes[:0] = acc.notes
        variants = list(dict.fromkeys(["base", *run.config.generate.variants, *acc.table["variant"]]))
        models = list(dict.fromkeys([m.label for m in run.config.generate.models] + list(acc.table["model"])))
        acc = dataclasses.replace(acc, table=_in_profile_order(acc.table, models, variants))
        rates, gains = stats.acceptance_rates(acc.table, variants, cfg.n_bootstrap, cfg.confidence, cfg.seed)
        if acc.source == "ppi":
            acc, rates, gains = _prediction_powered(run, acc, scores, rates, notes)
        results = Results(acc, rates, gains, notes=notes)
        source = acc.description
        if run.random_weights:
            results.notes.append("These numbers come from random-weight models (smoke profile): they test the pipeline, not a model.")
        _tables(results, run, bench, acc, answers, scores)
        _selection_tables(results, run, acc, selection)
        _figures(results, run, bench, acc, source, answers, scores)
        _pairwise(results, run)
        _write(results, run, source)
        results.report = write_report(run, results)
    return results


def _in_profile_order(table: pd.DataFrame, models: list[str], variants: list[str]) -> pd.DataFrame:
    """Rows sorted by the profile's model order, then its variant order (stable otherwise): tables and
    figures list models and variants as the profile does."""
    rank = {"model": {m: i for i, m in enumerate(models)}, "variant": {v: i for i, v in enumerate(variants)}}
    return table.sort_values(["model", "variant"], kind="stable", ignore_index=True,
                             key=lambda s: s.map(rank[s.name]).fillna(len(rank[s.name])))


def _configured_only(run, acc: stats.Acceptance, answers: pd.DataFrame, scores: pd.DataFrame, notes: list[str]):
    """Acceptance, answers and scores of exactly the images the current config names (votes are
    counted and the judge's quantile taken over those images only); a note says how many judged
    images were set aside."""
    images, _ = configured_images(run)
    if images.empty:
        return acc, answers, scores
    keys = images[KEY].drop_duplicates()
    answers = answers.merge(keys, on=KEY, how="inner") if len(answers) else answers
    scores = scores.merge(keys, on=KEY, how="inner") if len(scores) else scores
    kept = acc.table.merge(keys, on=KEY, how="inner")
    dropped = len(acc.table) - len(kept)
    if not dropped:
        return acc, answers, scores
    if kept.empty:
        raise InputError(f"{run.root}: none of the {len(acc.table)} judged images is named by the run's current config; "
                         "judge the configured images or change the config.")
    cfg = run.config.analyze
    if acc.source in ("human", "ppi"):
        acc = dataclasses.replace(stats.from_annotations(answers), source=acc.source)
    else:
        try:
            acc = stats.from_judge(scores, cfg.judge_metric, cfg.judge_threshold, cfg.judge_quantile)
        except ValueError as err:
            raise InputError(f"{run.scores_path}: {err} (among the images the current config names).") from None
    notes.append(f"{dropped} judged images are not named by the run's current config and are left out.")
    return acc, answers, scores


def _evaluator(run, acc) -> str:
    """Who judged the acceptance: people, or the judge metric (also for prediction-powered acceptance)."""
    return "human" if acc.source == "human" else run.config.analyze.judge_metric


def _honest_selection(run, acc, notes):
    """Acceptance with only the selected images that something other than their selection judge may judge."""
    if not (run.config.select.enabled and run.selection_path.is_file()):
        return acc, None
    from ..select import honest_acceptance, reportable
    from ..schema import SELECTION

    selection = SELECTION.read(run.selection_path)
    table, extra = honest_acceptance(acc.table, selection, _evaluator(run, acc))
    notes += extra + [sentence for sentence in reportable(selection, _evaluator(run, acc)).values() if sentence]
    return dataclasses.replace(acc, table=table), selection


def _selection_tables(results: Results, run, acc, selection) -> None:
    """The selected variants against base and each fixed dimension (held out), and the cost curve."""
    if selection is None:
        return
    from ..select import cost_curve, cost_curve_figure, honest_comparison, reportable
    from ..schema import SELECT_CANDIDATES

    cfg = run.config.analyze
    boot = dict(n_boot=cfg.n_bootstrap, confidence=cfg.confidence, seed=cfg.seed)
    evaluator = _evaluator(run, acc)
    allowed = [v for v, sentence in reportable(selection, evaluator).items() if sentence is None]
    if allowed:
        results.tables["selected_comparison"] = honest_comparison(acc.table, selection, evaluator, variants=allowed, **boot)
        chooser = selection["metric"].iloc[0]
        results.notes.append(f"Selected variants chosen by {chooser}, evaluated by {'people' if evaluator == 'human' else evaluator}.")
    if run.select_candidates_path.is_file():
        selection_seeds, heldout = run.config.select.seeds(run.config.generate.seeds)
        try:
            curve = cost_curve(SELECT_CANDIDATES.read(run.select_candidates_path), acc.table, evaluator=evaluator,
                               mode="heldout" if heldout else "image", selection_seeds=selection_seeds,
                               heldout_seeds=heldout, **boot)
        except InputError as err:
            results.notes.append(f"Cost curve not reported: {err}")
            return
        results.tables["selection_cost_curve"] = curve
        results.figures["selection_cost_curve"] = fg.save_figure(
            cost_curve_figure(curve, acc.description, cfg.confidence), run.figures / "selection_cost_curve",
            random_weights=run.random_weights)[0]


def _prediction_powered(run, acc, scores, human_rates, notes):
    """Headline acceptance and gains from the people's labels and the judge on every image (PPI++)."""
    from .ppi import ppi_acceptance, ppi_gains

    cfg = run.config.analyze
    judge = scores[scores["metric"] == cfg.judge_metric]
    if judge.empty or not judge["value"].between(0, 1).all():
        raise InputError(f"{run.scores_path}: analyze.judge_metric '{cfg.judge_metric}' must give every image a "
                         "probability in [0, 1] for prediction-powered acceptance (e.g. vqa or soft_tifa_gm).")
    human = acc.table[KEY + ["accepted"]]
    if run.annotation_plan_path.is_file():  # labels chosen by `annotate plan`: weight each by 1 / its chance
        plan = ANNOTATION_PLAN.read(run.annotation_plan_path)
        human = human.merge(plan[KEY + ["inclusion_prob"]], on=KEY, how="left")
    ppi = ppi_acceptance(human, judge, cfg.confidence)
    rates = ppi.rename(columns={"n_judge": "images"}).merge(
        human_rates[["model", "variant", "prompts"]], on=["model", "variant"], how="left")
    rates["ci_method"] = "prediction-powered (PPI++, prompt-clustered)"
    gains = ppi_gains(human, judge, cfg.confidence)
    description = (f"human acceptance, prediction-powered: {len(human):,} human-labelled images + "
                   f"{cfg.judge_metric} on {len(judge):,}")
    notes.append("Breakdowns, paired tests and the GEE model use the human-labelled images only; the headline "
                 "acceptance and gains combine them with the judge on every image (prediction-powered inference).")
    return dataclasses.replace(acc, description=description), rates, gains


def _tables(results: Results, run, bench, acc, answers, scores) -> None:
    cfg = run.config.analyze
    boot = dict(n_boot=cfg.n_bootstrap, confidence=cfg.confidence, seed=cfg.seed)
    t = results.tables
    t["acceptance"], t["gains"] = results.rates, results.gains
    if acc.source in ("human", "ppi"):
        _raters(results, run)
    unparsed = agents_not_found(bench, acc.table)
    if len(unparsed):
        t["agents_not_found"] = unparsed
        results.notes.append(f"The agents of {len(unparsed)} prompt(s) were not found in their text (listed in "
                             "agents_not_found with the reason): they are judged by the whole-prompt metrics only and "
                             "counted in every table.")
    for label in stats.LABEL_COLUMNS:
        t[f"breakdown_{label}"] = stats.breakdown(acc.table, bench, label, **boot)
    t["paired_variants"] = stats.paired(acc.table, "variant", **boot)
    if acc.table["model"].nunique() > 1:
        t["paired_models"] = stats.paired(acc.table, "model", **boot)
    t["gee_odds_ratios"], note = stats.gee_odds_ratios(acc.table, cfg.confidence)
    results.notes.append(note)
    if len(answers) and len(scores):
        human = acc.table if acc.source == "human" else stats.from_annotations(answers).table  # votes counted once
        t["metric_validity"] = stats.metric_validity(scores, human, **boot)
        from . import meta

        t["judge_leaderboard"] = meta.judge_leaderboard(scores, human, bench, n_boot=min(cfg.n_bootstrap, 200),
                                                        confidence=cfg.confidence, seed=cfg.seed)
    else:
        results.notes.append("Metric validity skipped: it needs both human annotations and automatic scores.")
    if len(answers) and answers["tags"].fillna("").str.len().gt(0).any():
        t["failure_modes"] = stats.failures_from_tags(answers, **boot)
        results.notes.append("Failure modes from the annotators' tags (an image shows a mode when anyone tagged it).")
    elif len(scores):
        found = [stats.failures_from_vqa(scores, 0.5, cfg.judge_quantile, **boot), stats.failures_from_geometry(scores, **boot)]
        found = [f for f in found if len(f)]
        t["failure_modes"] = pd.concat(found, ignore_index=True) if found else pd.DataFrame(columns=stats.FAILURE_COLUMNS)
        if len(t["failure_modes"]):
            results.notes.append("Failure modes from the judges (no tags from people): the VQA judge's decomposed "
                                 "questions and, where there is a detector, the agents' boxes (missing, fused, no contact).")
        else:
            results.notes.append("Failure modes skipped: no tags from people and no VQA decomposition in the scores.")
    else:
        results.notes.append("Failure modes skipped: no tags from people and no automatic scores.")
    if "failure_modes" in t and len(t["failure_modes"]):
        t["failure_modes"] = _in_profile_order(t["failure_modes"], list(dict.fromkeys(acc.table["model"])),
                                               list(dict.fromkeys(acc.table["variant"])))
        t["failure_shift"] = stats.failure_shift(t["failure_modes"])
    else:
        t.pop("failure_modes", None)
    if run.prompts_path.is_file():
        prompts = PROMPTS.read(run.prompts_path)
        prompts = prompts[prompts["sample"] == 0]
        t["prompt_lengths"] = linguistics.length_table(prompts)
        profile, note = linguistics.pos_profile(prompts)
        if len(profile):  # descriptive shares of the whole prompt set: their n is its prompts
            t["pos_profile"] = profile.merge(prompts.groupby("variant").size().rename("prompts").reset_index(),
                                             on="variant", how="left")
        results.notes.append(note)
        results.tables["_added_words"] = prompts  # kept for the word clouds, not written
    else:
        results.notes.append("Prompt linguistics and word clouds skipped: the run has no enriched prompts "
                             "(images imported from elsewhere).")


def pairwise_comparisons(run) -> dict[str, pd.DataFrame]:
    """Who compared the run's pairs -> their comparisons (pair_id, id, a, b, outcome_a): "people" (the
    study's raters who are not excluded) and each VLM judge (P(a better) as a soft outcome)."""
    if not run.pairs_path.is_file():
        return {}
    plan = PAIRS.read(run.pairs_path)
    out = {}
    people = human_pair_comparisons(run)
    if len(people):
        out["people"] = people
    if run.pair_judgements_path.is_file():
        judged = PAIR_JUDGEMENTS.read(run.pair_judgements_path)
        for judge, part in judged.groupby("judge", sort=False):
            out[f"judge {judge}"] = part.merge(plan[["pair_id", "id", "a", "b"]], on="pair_id").assign(
                outcome_a=lambda t: t["p_a"])[["pair_id", "id", "a", "b", "outcome_a"]]
    return out


def _pairwise(results: Results, run) -> None:
    """Rankings from the side-by-side comparisons (people and judges), win rates, the judges' position
    bias and their agreement with people: tables and figures."""
    compared = pairwise_comparisons(run)
    if not compared:
        return
    cfg = run.config.analyze
    boot = dict(n_boot=min(cfg.n_bootstrap, 1000), confidence=cfg.confidence, seed=cfg.seed)
    plan = PAIRS.read(run.pairs_path)
    order = [m.label for m in run.config.generate.models] if plan["by"].iloc[0] == "model" else list(run.config.generate.variants)
    systems = [s for s in order if s in set(plan["a"]) | set(plan["b"])]
    rankings, rates = [], []
    for who, table in compared.items():
        ranked, nu = ranking.rank(table, systems, **boot)
        rankings.append(ranked.assign(judged_by=who, tie_weight_note=f"Davidson tie weight nu = {nu:.3f}"))
        rates.append(ranking.win_rates(table, systems, **boot).assign(judged_by=who))
    t = results.tables
    t["ranking"] = pd.concat(rankings, ignore_index=True)
    t["pairwise_win_rates"] = pd.concat(rates, ignore_index=True)
    if run.pair_judgements_path.is_file():
        judged = PAIR_JUDGEMENTS.read(run.pair_judgements_path)
        t["position_bias"] = ranking.position_bias(judged, plan, **boot)
        if "people" in compared:
            t["pairwise_agreement"] = ranking.agreement(compared["people"], judged, plan, systems, **boot)
    results.notes.append(f"Side-by-side comparisons of {len(plan)} planned pairs ({plan['by'].iloc[0]} against "
                         f"{plan['by'].iloc[0]}), ranked by {', '.join(compared)}; a judge's P(a better) is the mean "
                         "of its two orders.")
    save = _saver(results, run)
    save("ranking", fg.ranking_points(t["ranking"], confidence=cfg.confidence))
    for who in compared:
        part = t["pairwise_win_rates"][t["pairwise_win_rates"]["judged_by"] == who]
        if part.empty:
            continue
        cells = {v: part.pivot(index="system", columns="opponent", values=v) for v in ("win_rate", "ci_low", "ci_high", "pairs")}
        slug = who.replace("judge ", "").replace(":", "_").replace("/", "_").replace(" ", "_")
        save(f"pairwise_winrate_{slug}", fg.win_heatmap(cells["win_rate"], f"side by side ({who}): row preferred to column",
                                                       who, cells["ci_low"], cells["ci_high"], cells["pairs"],
                                                       confidence=cfg.confidence, wins="share of the side-by-side "
                                                       "comparisons of one prompt where the row's image was preferred "
                                                       "(a tie counts one half)"))


def _saver(results: Results, run):
    def save(name: str, fig) -> None:
        results.figures[name] = fg.save_figure(fig, run.figures / name, random_weights=run.random_weights)[0]
    return save


def _raters(results: Results, run) -> None:
    """The raters behind the human acceptance: who was excluded by the gold rule and why, who was
    fast, and the gold accuracy of those kept (a table `raters` and a note)."""
    table = human_raters(run)
    if table.empty:
        return
    results.tables["raters"] = table
    excluded, fast = table[table["excluded"].astype(bool)], table[table["fast"].astype(bool)]
    kept = table[~table["excluded"].astype(bool)]
    note = (f"Raters: {len(table)}, of whom {len(excluded)} are excluded by the gold rule (more than "
            f"{run.config.annotate.max_gold_errors} wrong gold answers; their {int(excluded['images'].sum())} answers "
            f"are kept in the database and left out here) and {len(fast)} flagged as fast (median time per image below "
            f"{run.config.annotate.min_seconds:g} s)")
    gold = int(kept["gold_answers"].sum())
    if gold:
        right = gold - int(kept["gold_errors"].sum())
        note += f"; the kept raters answered {right} of {gold} gold images right ({right / gold:.1%})"
    results.notes.append(note + ".")


def agents_not_found(bench: pd.DataFrame, acceptance: pd.DataFrame) -> pd.DataFrame:
    """The prompts flagged agents_not_found: id, prompt, the parser's reason and their judged images."""
    flags = bench["flags"] if "flags" in bench else pd.Series([None] * len(bench))
    rows = bench[flags.eq("agents_not_found").fillna(False).to_numpy()]
    notes = rows["agents_note"] if "agents_note" in rows else pd.Series([""] * len(rows), index=rows.index)
    images = acceptance.groupby("id").size()
    return pd.DataFrame({"id": rows["id"].to_numpy(), "base_prompt": rows["base_prompt"].to_numpy(),
                         "reason": notes.fillna("").to_numpy(),
                         "images": [int(images.get(i, 0)) for i in rows["id"]]})


HEATMAP_LABELS = ("emotional_valence", "spatial_topology", "temporal_extent", "rarity_label")  # one panel each


def _failure_examples(run, save, answers, scores) -> None:
    """A few images per failure mode and model, from the people's tags or the judges' signals."""
    flags = fg.failure_flags(answers if len(answers) else None, scores if len(scores) else None, threshold=0.5,
                             quantile=run.config.analyze.judge_quantile)
    if flags is None or not len(flags):
        return
    manifest = read_manifest(run.root)
    for model in flags["model"].unique():
        save(f"failure_examples_{str(model).replace('/', '_')}", fg.failure_examples(flags, manifest, run.root, model=model))


def _figures(results: Results, run, bench, acc, source: str, answers=None, scores=None) -> None:
    t, out = results.tables, run.figures
    stamp = run.random_weights
    level = run.config.analyze.confidence

    def save(name: str, fig) -> None:
        results.figures[name] = fg.save_figure(fig, out / name, random_weights=stamp)[0]

    def wins(group_column: str, group, title: str):
        pairs = t["paired_variants" if group_column == "model" else "paired_models"]
        cells = {v: stats.win_matrix(pairs, group_column, group, v)
                 for v in ("win_rate_a", "win_rate_a_ci_low", "win_rate_a_ci_high", "pairs")}
        if len(cells["win_rate_a"]) < 2:
            return None
        return fg.win_heatmap(cells["win_rate_a"], title, source, cells["win_rate_a_ci_low"], cells["win_rate_a_ci_high"],
                              cells["pairs"], confidence=level)

    save("acceptance", fg.acceptance_bars(results.rates, source, confidence=level))
    if len(results.gains):
        save("gain_per_dimension", fg.gain_bars(results.gains, source, confidence=level))
    for model in acc.table["model"].unique():
        slug = model.replace("/", "_")
        breakdowns = [t[f"breakdown_{label}"] for label in HEATMAP_LABELS]
        save(f"heatmap_{slug}", fg.label_heatmaps(breakdowns, model, source, confidence=level))
        if len(results.gains):
            save(f"gainmap_{slug}", fg.label_heatmaps(breakdowns, model, source, value="relative_gain", confidence=level))
        figure = wins("model", model, f"{model}: variant against variant")
        if figure is not None:
            save(f"winrate_variants_{slug}", figure)
        if "failure_modes" in t and model in set(t["failure_modes"]["model"]):
            save(f"failure_modes_{slug}", fg.failure_bars(t["failure_modes"], model, source, confidence=level))
    if "paired_models" in t:
        for variant in dict.fromkeys(acc.table["variant"]):
            figure = wins("variant", variant, f"model against model ({fg.variant_title(variant)})")
            if figure is not None:
                save(f"winrate_models_{variant}", figure)
    if "_added_words" in t:
        save("wordclouds", fg.word_clouds(linguistics.added_words(t.pop("_added_words"))))
    if "metric_validity" in t and len(t["metric_validity"]):
        save("metric_validity", fg.validity_bars(t["metric_validity"], confidence=level, source=source))
    if "prompt_lengths" in t:
        save("prompt_lengths", fg.length_bars(t["prompt_lengths"], "enriched prompts of this run", t.get("pos_profile")))
    _failure_examples(run, save, answers, scores)
    if "judge_leaderboard" in t and len(t["judge_leaderboard"]):
        from .meta import leaderboard_figure

        save("judge_leaderboard", leaderboard_figure(t["judge_leaderboard"], "against " + source))
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
    """Every table as CSV, each row saying where its acceptance came from and whether the models had random weights."""
    run.tables.mkdir(parents=True, exist_ok=True)
    random_weights = bool(run.random_weights)
    for name, table in results.tables.items():
        with atomic_path(run.tables / f"{name}.csv") as tmp:
            table.assign(source=source, random_weights=random_weights).to_csv(tmp, index=False)


def write_report(run, results: Results) -> Path:
    from .report import render

    path = run.report_path
    with atomic_path(path) as tmp:
        tmp.write_text(render(run, results), encoding="utf-8")
    return path
