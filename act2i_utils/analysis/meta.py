"""Judges measured against people (meta-evaluation): how well each automatic metric predicts the
human verdict, with prompt-clustered bootstrap intervals.

For every judge metric on the images people judged:

- `auroc`: the chance an accepted image outscores a rejected one;
- `accuracy`, `f1`: of "accept when the metric reaches a threshold", the threshold chosen by
  cross-validation over prompts (5 folds, each prompt's images together; never on the data it is
  scored on);
- `kendall`: Kendall's tau-b between the metric and the share of accept votes per image;
- `pairwise_accuracy`: over all pairs of prompts (each prompt x model x variant averaged over its
  seeds), the share ranked as people rank them, with tie calibration (Deutsch et al. 2023, as
  GenAI-Bench reports it): a metric difference within epsilon counts as a tie, epsilon chosen to
  maximise the accuracy, so a metric gets credit for tying what people tie.

Overall, and per value of each prompt label and per variant. Intervals resample prompts (the
statistical unit), the same draws for every metric, so the ranking can be compared.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import kendalltau

from ..schema import KEY
from .stats import auroc

LABELS = ("rarity_label", "emotional_valence", "spatial_topology", "temporal_extent")
MEASURES = ("auroc", "accuracy", "f1", "kendall", "pairwise_accuracy")


def best_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The threshold (accept when score >= it) with the best F1 on these data."""
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    tp = np.cumsum(y)
    predicted = np.arange(1, len(s) + 1)
    last = np.r_[s[1:] != s[:-1], True]  # a threshold takes every image tied with it
    f1 = np.where(last, 2 * tp / (predicted + y.sum()), -1.0)
    return float(s[int(np.argmax(f1))]) if len(s) else float("nan")


def cross_validated_predictions(scores: np.ndarray, labels: np.ndarray, groups: np.ndarray, folds: int = 5,
                                seed: int = 0) -> np.ndarray:
    """Accept/reject per image, each from a threshold chosen on the other prompts' images."""
    unique = np.unique(groups)
    fold_of = dict(zip(unique, np.random.default_rng(seed).permutation(len(unique)) % folds))
    fold = np.array([fold_of[g] for g in groups])
    predicted = np.zeros(len(scores), int)
    for k in range(folds):
        test = fold == k
        if test.any() and (~test).any():
            predicted[test] = scores[test] >= best_threshold(scores[~test], labels[~test])
    return predicted


def pairwise_accuracy(metric: np.ndarray, human: np.ndarray) -> float:
    """Pairwise ranking accuracy with tie calibration over all pairs of items."""
    i, j = np.triu_indices(len(metric), k=1)
    dm, dh = metric[i] - metric[j], np.sign(human[i] - human[j])
    if len(dm) == 0:
        return float("nan")
    order = np.argsort(np.abs(dm), kind="stable")
    gap, sign_m, sign_h = np.abs(dm)[order], np.sign(dm)[order], dh[order]
    tied_h = sign_h == 0
    # epsilon = gap[k]: pairs 0..k are metric ties (right when people tie too), the rest ranked by sign
    ties_right = np.cumsum(tied_h)
    ranked_right = (sign_m == sign_h) & ~tied_h
    ranked_right_after = ranked_right.sum() - np.cumsum(ranked_right)
    last = np.r_[gap[1:] != gap[:-1], True]
    correct = np.where(last, ties_right + ranked_right_after, -1)
    best = max(int(correct.max()), int(ranked_right.sum()))  # epsilon below every gap: no metric tie
    return best / len(dm)


def _measures(part: pd.DataFrame, predicted: np.ndarray) -> dict:
    y = part["accepted"].to_numpy(int)
    tp = int(((predicted == 1) & (y == 1)).sum())
    f1 = 2 * tp / (predicted.sum() + y.sum()) if predicted.sum() + y.sum() else float("nan")
    prompts = part.groupby(["model", "variant", "id"])[["value", "accept_share"]].mean()
    return {
        "auroc": auroc(part["value"].to_numpy(), y),
        "accuracy": float((predicted == y).mean()),
        "f1": f1,
        "kendall": float(kendalltau(part["value"], part["accept_share"]).statistic) if part["value"].nunique() > 1 else np.nan,
        "pairwise_accuracy": pairwise_accuracy(prompts["value"].to_numpy(), prompts["accept_share"].to_numpy()),
    }


def _table(scores: pd.DataFrame, human: pd.DataFrame) -> pd.DataFrame:
    people = human[KEY + ["accepted"] + (["accept_share"] if "accept_share" in human else [])]
    if "accept_share" not in people:
        people = people.assign(accept_share=people["accepted"].astype(float))
    return scores[KEY + ["metric", "value"]].merge(people, on=KEY).dropna(subset=["value"])


def judge_leaderboard(scores: pd.DataFrame, human: pd.DataFrame, bench: pd.DataFrame | None = None,
                      n_boot: int = 500, confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Every metric against people: one row per (metric, slice) with each measure and its interval.

    `human` has model, variant, id, seed, accepted (and accept_share when votes are shared);
    `bench` (id plus the label columns) adds the per-label slices.
    """
    data = _table(scores, human)
    if bench is not None:
        data = data.merge(bench[["id", *[c for c in LABELS if c in bench]]], on="id", how="left")
    slices = [("all", "all", None)] + [("variant", v, ("variant", v)) for v in dict.fromkeys(data["variant"])]
    slices += [(label, v, (label, v)) for label in LABELS if label in data for v in sorted(data[label].dropna().unique())]
    lo, hi = (1 - confidence) / 2, 1 - (1 - confidence) / 2
    prompts = np.array(sorted(data["id"].unique()))
    rng = np.random.default_rng(seed)
    draws = [rng.choice(prompts, len(prompts)) for _ in range(n_boot)]
    rows = []
    for metric, part in data.groupby("metric", sort=False):
        if part["value"].nunique() < 2:
            continue
        part = part.reset_index(drop=True)
        part["predicted"] = cross_validated_predictions(part["value"].to_numpy(), part["accepted"].to_numpy(int),
                                                        part["id"].to_numpy(), seed=seed)
        by_prompt = {p: idx for p, idx in part.groupby("id").indices.items()}
        for kind, value, where in slices:
            sub = part if where is None else part[part[where[0]] == where[1]]
            if len(sub) < 4 or sub["accepted"].nunique() < 2:
                continue
            point = _measures(sub, sub["predicted"].to_numpy())
            boot = []
            for draw in draws:
                idx = np.concatenate([by_prompt[p] for p in draw if p in by_prompt])
                sample = part.iloc[idx]
                sample = sample if where is None else sample[sample[where[0]] == where[1]]
                if len(sample) >= 4 and sample["accepted"].nunique() == 2:
                    boot.append(_measures(sample, sample["predicted"].to_numpy()))
            row = {"metric": metric, "slice": kind, "value": value, "images": len(sub), "prompts": sub["id"].nunique()}
            for name in MEASURES:
                values = np.array([b[name] for b in boot], float)
                values = values[np.isfinite(values)]
                row[name] = point[name]
                row[f"{name}_ci_low"] = float(np.quantile(values, lo)) if len(values) else np.nan
                row[f"{name}_ci_high"] = float(np.quantile(values, hi)) if len(values) else np.nan
            rows.append(row)
    table = pd.DataFrame(rows)
    if len(table):  # the judges in the order of their AUROC over every image (the ranking figure's order)
        overall = table[table["slice"] == "all"].set_index("metric")["auroc"]
        table = table.assign(_order=table["metric"].map(-overall)).sort_values(["_order", "slice"], kind="stable")
        table = table.drop(columns="_order").reset_index(drop=True)
    return table


def leaderboard_figure(table: pd.DataFrame, source: str, measure: str = "auroc"):
    """The judges ranked by `measure` against people, with their prompt-clustered intervals."""
    import matplotlib.pyplot as plt

    overall = table[table["slice"] == "all"].sort_values(measure)
    with plt.rc_context({"font.size": 8, "axes.spines.top": False, "axes.spines.right": False}):
        fig, ax = plt.subplots(figsize=(3.5, 0.3 * len(overall) + 1.2))
        y = np.arange(len(overall))
        err = np.vstack([overall[measure] - overall[f"{measure}_ci_low"], overall[f"{measure}_ci_high"] - overall[measure]])
        ax.errorbar(overall[measure], y, xerr=np.nan_to_num(err.clip(min=0)), fmt="o", color="#0072B2", capsize=2)
        ax.set_yticks(y, [f"{m} (n={n})" for m, n in zip(overall["metric"], overall["images"])])
        ax.axvline(0.5 if measure in ("auroc", "pairwise_accuracy") else 0, color="black", linewidth=0.6, linestyle="--")
        ax.set_xlabel(f"{measure.replace('_', ' ')} against people (95 % interval over prompts)")
        ax.set_title("Which judge agrees with people")
        fig.text(0.5, 0.0, source, ha="center", va="top", fontsize=6, color="#444444", wrap=True)
        fig.tight_layout()
    return fig
