"""Agreement between annotators on the overlap: Fleiss' kappa and Krippendorff's alpha (nominal),
and per-annotator acceptance rates and time per image.

Own implementations, checked in the tests against statsmodels and the `krippendorff` package.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def rating_counts(answers: pd.DataFrame, categories=("accept", "reject")) -> pd.DataFrame:
    """Items x categories: how many annotators gave each label to each image."""
    counts = answers.pivot_table(index="image_id", columns="label", values="annotator", aggfunc="count", fill_value=0)
    return counts.reindex(columns=list(categories), fill_value=0)


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss' kappa for an items x categories count table with the same number of ratings per item."""
    counts = np.asarray(counts, dtype=float)
    n = counts.sum(axis=1)
    if len(counts) == 0 or not np.all(n == n[0]) or n[0] < 2:
        raise ValueError("Fleiss' kappa needs at least one item and the same number (>= 2) of ratings per item")
    n = n[0]
    p_item = ((counts ** 2).sum(axis=1) - n) / (n * (n - 1))
    p_cat = counts.sum(axis=0) / counts.sum()
    observed, expected = p_item.mean(), (p_cat ** 2).sum()
    return float("nan") if expected == 1 else float((observed - expected) / (1 - expected))


def krippendorff_alpha(units: list[list]) -> float:
    """Krippendorff's alpha (nominal) from the labels each unit received (any number per unit)."""
    pairable = [u for u in units if len(u) >= 2]
    values = sorted({v for u in pairable for v in u})
    index = {v: i for i, v in enumerate(values)}
    coincidence = np.zeros((len(values), len(values)))
    for unit in pairable:
        m = len(unit)
        tally = np.zeros(len(values))
        for v in unit:
            tally[index[v]] += 1
        coincidence += (np.outer(tally, tally) - np.diag(tally)) / (m - 1)
    n_c = coincidence.sum(axis=1)
    n = n_c.sum()
    if n <= 1:
        return float("nan")
    observed = coincidence.sum() - np.trace(coincidence)
    expected = (n_c.sum() ** 2 - (n_c ** 2).sum()) / (n - 1)
    return float("nan") if expected == 0 else float(1 - observed / expected)


def agreement(answers: pd.DataFrame) -> dict:
    """Fleiss' kappa over the images with the most common number (>= 2) of ratings, and
    Krippendorff's alpha over every image with two or more; with how many images each used."""
    counts = rating_counts(answers)
    per_item = counts.sum(axis=1)
    multi = per_item[per_item >= 2]
    result = {"images_rated_twice_or_more": int(len(multi)), "fleiss_kappa": float("nan"), "fleiss_images": 0,
              "fleiss_raters_per_image": 0, "krippendorff_alpha": float("nan")}
    if len(multi):
        raters = int(multi.mode().iloc[0])
        same = counts.loc[per_item == raters]
        result.update(fleiss_kappa=fleiss_kappa(same.to_numpy()), fleiss_images=int(len(same)), fleiss_raters_per_image=raters)
        units = answers.groupby("image_id")["label"].apply(list)
        result["krippendorff_alpha"] = krippendorff_alpha(units.tolist())
    return result


def per_annotator(answers: pd.DataFrame) -> pd.DataFrame:
    """Answers, acceptance rate and seconds per image for each annotator."""
    if answers.empty:
        return pd.DataFrame(columns=["answers", "acceptance", "mean_seconds", "median_seconds"])
    grouped = answers.groupby("annotator")
    return pd.DataFrame({
        "answers": grouped.size(),
        "acceptance": grouped["label"].apply(lambda s: float((s == "accept").mean())),
        "mean_seconds": grouped["seconds"].mean(),
        "median_seconds": grouped["seconds"].median(),
    }).round(3)
