"""Statistics of acceptance: the source, bootstrap intervals, gains, breakdowns, paired tests,
a GEE logistic model, and the validity of automatic metrics against people.

Every function takes tidy tables (one row per image: model, variant, id, seed, accepted) and
returns tidy tables; none does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd

from ..schema import ACCEPTANCE, KEY


# --- where acceptance comes from ------------------------------------------------------------


@dataclass(frozen=True)
class Acceptance:
    """One row per image with `accepted` (0/1), and a sentence saying where it came from."""

    table: pd.DataFrame
    source: str  # "human" or "judge"
    description: str  # shown on every table and figure


def image_votes(answers: pd.DataFrame) -> pd.DataFrame:
    """The people's answers per image (the one place votes are counted): share of accept votes,
    number of votes, the failure tags anyone gave (comma-joined, sorted) and the comments."""
    votes = answers.assign(vote=(answers["label"] == "accept").astype(float),
                           tags=answers.get("tags", ""), comment=answers.get("comment", ""))
    return votes.groupby(KEY, sort=False).agg(
        accept_share=("vote", "mean"), annotators=("vote", "size"),
        tags=("tags", lambda ts: ",".join(sorted({t for x in ts for t in str(x).split(",") if t}))),
        comments=("comment", lambda cs: " | ".join(c for c in cs if c)),
    ).reset_index()


def from_annotations(answers: pd.DataFrame) -> Acceptance:
    """Majority vote of the annotators per image (a tie counts as a rejection)."""
    table = image_votes(answers)[KEY + ["accept_share", "annotators"]]
    table["accepted"] = (table["accept_share"] > 0.5).astype(int)
    n = answers["annotator"].nunique()
    table = ACCEPTANCE.validate(table[KEY + ["accepted", "accept_share", "annotators"]], "human answers")
    return Acceptance(table, "human", f"human acceptance: majority of {n} annotator(s), {len(table)} images")


def from_judge(scores: pd.DataFrame, metric: str, threshold: float, quantile: float | None = None) -> Acceptance:
    """Accept an image when the judge's value reaches the threshold (or the given quantile of its values)."""
    part = scores[scores["metric"] == metric]
    if part.empty:
        known = ", ".join(sorted(scores["metric"].unique())) or "none"
        raise ValueError(f"the scores have no metric '{metric}' (they have {known}); set analyze.judge_metric to one of them")
    if quantile is not None:
        threshold = float(part["value"].quantile(quantile))
        rule = f"{metric} >= {threshold:.4g} (its {quantile:.0%} quantile)"
    else:
        rule = f"{metric} >= {threshold:g}"
    table = part[KEY].copy()
    table["accepted"] = (part["value"].to_numpy() >= threshold).astype(int)
    table = ACCEPTANCE.validate(table.reset_index(drop=True), f"judge {metric}")
    return Acceptance(table, "judge", f"automatic acceptance: {rule}, {len(table)} images")


# --- bootstrap over prompts, then seeds within prompts ----------------------------------------


def _cube(acc: pd.DataFrame, model: str, variants: list[str]) -> tuple[np.ndarray, list[str]]:
    """variants x prompts x seeds array of 0/1 (NaN where an image is missing)."""
    part = acc[acc["model"] == model]
    ids = sorted(part["id"].unique())
    seeds = sorted(part["seed"].unique())
    cube = np.full((len(variants), len(ids), len(seeds)), np.nan)
    vi = {v: i for i, v in enumerate(variants)}
    ii = {p: i for i, p in enumerate(ids)}
    si = {s: i for i, s in enumerate(seeds)}
    for row in part.itertuples():
        if row.variant in vi:
            cube[vi[row.variant], ii[row.id], si[row.seed]] = row.accepted
    return cube, ids


def _resample(cube: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap means per variant: prompts drawn with replacement, then seeds within each drawn prompt.
    The same draw is used for every variant, so differences between variants are paired."""
    _, n_prompts, n_seeds = cube.shape
    prompts = rng.integers(0, n_prompts, size=(n_boot, n_prompts))
    seeds = rng.integers(0, n_seeds, size=(n_boot, n_prompts, n_seeds))
    draws = cube[:, prompts[:, :, None], seeds]  # variants x boot x prompts x seeds
    return np.nanmean(draws.reshape(cube.shape[0], n_boot, -1), axis=2)


def acceptance_rates(acc: pd.DataFrame, variants: list[str], n_boot: int = 2000, confidence: float = 0.95,
                     seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Acceptance per model and variant with bootstrap intervals, and each variant's gain over `base`.

    Returns (rates, gains). Gains are absolute (acc_v - acc_base) and relative
    ((acc_v - acc_base) / acc_base, the paper's "+72 %"), with paired bootstrap intervals.
    """
    lo, hi = (1 - confidence) / 2, 1 - (1 - confidence) / 2
    rates, gains = [], []
    for model in acc["model"].unique():
        present = [v for v in variants if v in set(acc.loc[acc["model"] == model, "variant"])]
        cube, ids = _cube(acc, model, present)
        rng = np.random.default_rng(seed)
        boot = _resample(cube, n_boot, rng)
        point = np.nanmean(cube.reshape(len(present), -1), axis=1)
        for i, variant in enumerate(present):
            rates.append({"model": model, "variant": variant, "acceptance": point[i],
                          "ci_low": np.nanquantile(boot[i], lo), "ci_high": np.nanquantile(boot[i], hi),
                          "images": int(np.isfinite(cube[i]).sum()), "prompts": len(ids)})
        if "base" not in present:
            continue
        b = present.index("base")
        with np.errstate(divide="ignore", invalid="ignore"):
            for i, variant in enumerate(present):
                if i == b:
                    continue
                absolute = boot[i] - boot[b]
                relative = np.where(boot[b] > 0, absolute / boot[b], np.nan)
                rel_point = (point[i] - point[b]) / point[b] if point[b] > 0 else np.nan
                gains.append({
                    "model": model, "variant": variant, "base_acceptance": point[b], "acceptance": point[i],
                    "absolute_gain": point[i] - point[b],
                    "absolute_ci_low": np.nanquantile(absolute, lo), "absolute_ci_high": np.nanquantile(absolute, hi),
                    "relative_gain": rel_point,
                    "relative_ci_low": _quantile(relative, lo), "relative_ci_high": _quantile(relative, hi),
                })
    return pd.DataFrame(rates), pd.DataFrame(gains)


def _quantile(values: np.ndarray, q: float) -> float:
    finite = values[np.isfinite(values)]
    return float(np.quantile(finite, q)) if len(finite) else float("nan")


# --- breakdowns by label ----------------------------------------------------------------------


LABEL_COLUMNS = ["emotional_valence", "spatial_topology", "temporal_extent", "rarity_label", "action"]


def breakdown(acc: pd.DataFrame, bench: pd.DataFrame, label: str) -> pd.DataFrame:
    """Acceptance per model, label value and variant, with the relative gain over base."""
    merged = acc.merge(bench[["id", label]], on="id", how="left")
    merged[label] = merged[label].fillna("(none)")
    table = merged.groupby(["model", label, "variant"], sort=False).agg(
        acceptance=("accepted", "mean"), images=("accepted", "size")).reset_index()
    base = table[table["variant"] == "base"].set_index(["model", label])["acceptance"]
    keys = list(zip(table["model"], table[label]))
    base_values = np.array([base.get(k, np.nan) for k in keys])
    with np.errstate(divide="ignore", invalid="ignore"):
        table["relative_gain"] = np.where(base_values > 0, (table["acceptance"] - base_values) / base_values, np.nan)
    return table.rename(columns={label: "value"}).assign(label=label)


# --- paired comparisons ----------------------------------------------------------------------


def paired(acc: pd.DataFrame, by: str) -> pd.DataFrame:
    """For every pair of `by` values (variants within a model, or models within a variant):
    wins, losses, win rate and McNemar's test on the same (prompt, seed), Holm-corrected."""
    from statsmodels.stats.contingency_tables import mcnemar
    from statsmodels.stats.multitest import multipletests

    within = "model" if by == "variant" else "variant"
    rows = []
    for group, part in acc.groupby(within, sort=False):
        wide = part.pivot_table(index=["id", "seed"], columns=by, values="accepted")
        for a, b in combinations(list(dict.fromkeys(part[by])), 2):
            both = wide[[a, b]].dropna()
            wins = int(((both[a] == 1) & (both[b] == 0)).sum())
            losses = int(((both[a] == 0) & (both[b] == 1)).sum())
            agree_yes = int(((both[a] == 1) & (both[b] == 1)).sum())
            agree_no = int(((both[a] == 0) & (both[b] == 0)).sum())
            exact = wins + losses < 25
            test = mcnemar([[agree_yes, wins], [losses, agree_no]], exact=exact, correction=True)
            rows.append({within: group, "a": a, "b": b, "pairs": len(both), "a_wins": wins, "b_wins": losses,
                         "win_rate_a": wins / (wins + losses) if wins + losses else np.nan,
                         "mcnemar_p": float(test.pvalue), "test": "exact binomial" if exact else "chi-square"})
    table = pd.DataFrame(rows)
    if len(table):
        table["p_holm"] = multipletests(table["mcnemar_p"], method="holm")[1]
        table["significant"] = table["p_holm"] < 0.05
    return table


def win_matrix(pairs: pd.DataFrame, group_column: str, group) -> pd.DataFrame:
    """Square matrix: row beats column in this share of the discordant pairs."""
    part = pairs[pairs[group_column] == group]
    names = list(dict.fromkeys(list(part["a"]) + list(part["b"])))
    matrix = pd.DataFrame(np.nan, index=names, columns=names)
    for row in part.itertuples():
        matrix.loc[row.a, row.b] = row.win_rate_a
        matrix.loc[row.b, row.a] = 1 - row.win_rate_a if np.isfinite(row.win_rate_a) else np.nan
    return matrix


def gee_odds_ratios(acc: pd.DataFrame, confidence: float = 0.95) -> tuple[pd.DataFrame, str]:
    """Logistic GEE of acceptance on variant (vs base) and model, prompts as clusters
    (exchangeable correlation); odds ratios with intervals, and a note on what was fitted."""
    import statsmodels.api as sm
    import statsmodels.formula.api as smf

    data = acc.copy()
    data["variant"] = pd.Categorical(data["variant"], categories=list(dict.fromkeys(["base", *data["variant"]])))
    terms = ["C(variant)"] if data["variant"].nunique() > 1 else []
    if data["model"].nunique() > 1:
        terms.append("C(model)")
    if not terms:
        return pd.DataFrame(), "GEE skipped: one model and one variant, nothing to compare."
    if data["accepted"].nunique() < 2:
        return pd.DataFrame(), "GEE skipped: every image has the same outcome."
    model = smf.gee(f"accepted ~ {' + '.join(terms)}", groups="id", data=data, family=sm.families.Binomial(),
                    cov_struct=sm.cov_struct.Exchangeable())
    try:
        fit = model.fit()
    except Exception as err:  # noqa: BLE001 - separation and similar degeneracies
        return pd.DataFrame(), f"GEE did not converge ({type(err).__name__}: {err})."
    ci = fit.conf_int(alpha=1 - confidence)
    table = pd.DataFrame({"term": fit.params.index, "odds_ratio": np.exp(fit.params.values),
                          "ci_low": np.exp(ci[0].values), "ci_high": np.exp(ci[1].values), "p_value": fit.pvalues.values})
    table = table[table["term"] != "Intercept"].reset_index(drop=True)
    table["term"] = table["term"].str.replace(r"C\((\w+)\)\[T\.(.+)\]", r"\1 = \2", regex=True)
    return table, f"GEE logistic model, {data['id'].nunique()} prompt clusters, exchangeable correlation; reference: base variant"


# --- metric validity --------------------------------------------------------------------------


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve: the chance a random accepted image outscores a random rejected one."""
    from scipy.stats import rankdata

    scores, labels = np.asarray(scores, float), np.asarray(labels, int)
    pos, neg = labels.sum(), len(labels) - labels.sum()
    if pos == 0 or neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[labels == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


def best_f1(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(threshold, F1) maximising F1 when accepting scores >= threshold."""
    scores, labels = np.asarray(scores, float), np.asarray(labels, int)
    best = (float("nan"), 0.0)
    for t in np.unique(scores):
        predicted = scores >= t
        tp = int((predicted & (labels == 1)).sum())
        if tp == 0:
            continue
        precision, recall = tp / predicted.sum(), tp / labels.sum()
        f1 = 2 * precision * recall / (precision + recall)
        if f1 > best[1]:
            best = (float(t), float(f1))
    return best


def metric_validity(scores: pd.DataFrame, human: pd.DataFrame) -> pd.DataFrame:
    """How well each automatic metric agrees with human acceptance, per image and per prompt."""
    from scipy.stats import kendalltau, spearmanr

    rows = []
    for metric, part in scores.groupby("metric", sort=False):
        merged = part.merge(human[KEY + ["accepted", "accept_share"]], on=KEY)
        if len(merged) < 3 or merged["value"].nunique() < 2:
            continue
        prompt = merged.groupby(["model", "variant", "id"]).agg(value=("value", "mean"), share=("accept_share", "mean"))
        threshold, f1 = best_f1(merged["value"], merged["accepted"])
        rows.append({
            "metric": metric, "images": len(merged),
            "auroc": auroc(merged["value"], merged["accepted"]),
            "spearman": spearmanr(merged["value"], merged["accept_share"]).statistic,
            "kendall": kendalltau(merged["value"], merged["accept_share"]).statistic,
            "best_f1": f1, "best_f1_threshold": threshold,
            "prompt_auroc": auroc(prompt["value"], (prompt["share"] > 0.5).astype(int)),
            "prompt_spearman": spearmanr(prompt["value"], prompt["share"]).statistic,
            "prompt_kendall": kendalltau(prompt["value"], prompt["share"]).statistic,
        })
    return pd.DataFrame(rows)


# --- failure modes ----------------------------------------------------------------------------

FAILURE_MODES = ("missing agent", "agents fused", "role reversal", "wrong action", "wrong context", "incomplete action")


def failures_from_tags(answers: pd.DataFrame) -> pd.DataFrame:
    """Share of images per model and variant where annotators tagged each failure mode (any annotator)."""
    rows = []
    for (model, variant), part in image_votes(answers).groupby(["model", "variant"], sort=False):
        per_image = part["tags"].str.split(",").apply(set)
        for mode in FAILURE_MODES:
            rows.append({"model": model, "variant": variant, "mode": mode,
                         "share": float(np.mean([mode in tags for tags in per_image])), "images": len(per_image)})
    return pd.DataFrame(rows)


def failures_from_vqa(scores: pd.DataFrame, threshold: float = 0.5, quantile: float | None = None) -> pd.DataFrame:
    """Failure modes read from the VQA decomposition: a missing agent (either agent question below the
    threshold), a wrong action (agents there, action question below), a role reversal (the reversed
    question above the stated one, with both agents there)."""
    vqa = scores[scores["metric"].isin(["vqa_agent1", "vqa_agent2", "vqa_action", "vqa_reversed"])]
    if vqa.empty:
        return pd.DataFrame(columns=["model", "variant", "mode", "share", "images"])
    wide = vqa.pivot_table(index=KEY, columns="metric", values="value").reset_index()
    cut = {m: (float(wide[m].quantile(quantile)) if quantile is not None else threshold)
           for m in ("vqa_agent1", "vqa_agent2", "vqa_action")}
    agents = (wide["vqa_agent1"] >= cut["vqa_agent1"]) & (wide["vqa_agent2"] >= cut["vqa_agent2"])
    wide["missing agent"] = ~agents
    wide["wrong action"] = agents & (wide["vqa_action"] < cut["vqa_action"])
    wide["role reversal"] = agents & (wide["vqa_reversed"] > wide["vqa_action"])
    rows = []
    for (model, variant), part in wide.groupby(["model", "variant"], sort=False):
        for mode in ("missing agent", "wrong action", "role reversal"):
            rows.append({"model": model, "variant": variant, "mode": mode, "share": float(part[mode].mean()),
                         "images": len(part)})
    return pd.DataFrame(rows)


def failure_shift(failures: pd.DataFrame) -> pd.DataFrame:
    """How each variant changes each failure mode's share relative to base (percentage points)."""
    base = failures[failures["variant"] == "base"].set_index(["model", "mode"])["share"]
    shifted = failures[failures["variant"] != "base"].copy()
    shifted["change_vs_base"] = [row.share - base.get((row.model, row.mode), np.nan) for row in shifted.itertuples()]
    return shifted
