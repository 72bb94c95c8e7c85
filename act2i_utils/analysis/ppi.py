"""Human acceptance from few human labels and a judge on every image: prediction-powered inference.

People label a subset of images; a judge scores all of them. The estimate of a model x variant's
acceptance is the judge's mean over every image, corrected by how far the judge is off on the
labelled ones (Angelopoulos et al. 2023), with the correction's weight lambda tuned to shrink
the interval (PPI++, Angelopoulos, Duchi and Zrnic 2023):

    theta = lambda * mean over all images of f  +  weighted mean over the labelled images of (Y - lambda f)

with weights 1 / pi_j: pi_j is image j's chance of being chosen (n/N for a uniform sample, the
plan's inclusion probability for `act2i annotate plan`), Y_j the people's verdict, f_j the judge's
value in [0, 1]. The estimate is consistent for any lambda and any judge; at lambda = 0 it is the
people's own (weighted) mean, so a useless judge costs little width (lambda goes to 0).

The statistical unit is the prompt: the variance is a cluster-robust (ratio-estimator) sandwich
over prompts, so the seeds of one prompt are not counted as independent, and the variants of one
prompt are paired for the gains. `ppi_py` (the authors' package) is the reference in the tests for
the case it covers (independent images); it has no clustering, so this module is act2i's own.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import norm

from ..schema import KEY

COLUMNS = ["model", "variant", "acceptance", "ci_low", "ci_high", "n_human", "n_judge", "lambda", "human_only_ci_low",
           "human_only_ci_high"]


def cluster_sums(clusters: np.ndarray, labelled: np.ndarray, accepted: np.ndarray, value: np.ndarray,
                 pi: np.ndarray) -> np.ndarray:
    """Per prompt (cluster codes 0..C-1), as rows of a (5, C) array: sum S Y / pi, sum S f / pi,
    sum S / pi over the labelled images, and sum f and the number of images over all of them."""
    weights = np.where(labelled, 1.0 / np.where(labelled, pi, 1.0), 0.0)
    y = np.where(labelled, accepted, 0.0)
    size = clusters.max() + 1
    return np.vstack([np.bincount(clusters, weights * y, minlength=size),
                      np.bincount(clusters, weights * value, minlength=size),
                      np.bincount(clusters, weights, minlength=size),
                      np.bincount(clusters, value, minlength=size),
                      np.bincount(clusters, minlength=size).astype(float)])


def estimate(sums: np.ndarray, lam: float | None = None) -> tuple[float, np.ndarray, float]:
    """(estimate, per-prompt influence, lambda) of

        theta = lambda * mean_all(f) + weighted mean over the labelled of (Y - lambda f)

    (at lambda = 0, the people's own weighted mean). The influence values give the cluster-robust
    variance; lambda, when not given, is the one that minimises it, clipped to [0, 1] (PPI++)."""
    a, e, d, f, m = sums
    u = (a - d * a.sum() / d.sum()) / d.sum()
    v = (f - m * f.sum() / m.sum()) / m.sum() - (e - d * e.sum() / d.sum()) / d.sum()
    if lam is None:
        lam = float(np.clip(-(u * v).sum() / (v * v).sum(), 0.0, 1.0)) if (v * v).sum() > 0 else 0.0
    theta = lam * f.sum() / m.sum() + (a.sum() - lam * e.sum()) / d.sum()
    return float(theta), u + lam * v, lam


def covariance(psi: np.ndarray, other: np.ndarray | None = None) -> float:
    """Cluster-robust (co)variance of estimators from their per-prompt influence values."""
    c = len(psi)
    if c < 2:
        return float("nan")
    return float(c / (c - 1) * (psi * (psi if other is None else other)).sum())


def _cluster_parts(part: pd.DataFrame) -> tuple[np.ndarray, list]:
    codes, ids = pd.factorize(part["id"], sort=True)
    sums = cluster_sums(codes, part["labelled"].to_numpy(), part["accepted"].to_numpy(dtype=float),
                        part["value"].to_numpy(dtype=float), part["pi"].to_numpy(dtype=float))
    return sums, list(ids)


def _prepare(human: pd.DataFrame, judge: pd.DataFrame) -> pd.DataFrame:
    """One row per judged image: its judge value, whether people labelled it, their verdict, and pi."""
    data = judge[KEY + ["value"]].merge(human[KEY + ["accepted"] + (["inclusion_prob"] if "inclusion_prob" in human else [])],
                                        on=KEY, how="left")
    data["labelled"] = data["accepted"].notna()
    if data["value"].isna().any():
        raise ValueError("the judge has no value for some images; PPI needs the judge on every image")
    if "inclusion_prob" in data:
        pi = data["inclusion_prob"]
    else:  # a uniform sample within each model x variant
        share = data.groupby(["model", "variant"])["labelled"].transform("mean")
        pi = share.where(share > 0, np.nan)
    data["pi"] = pi.astype(float)
    return data


def ppi_acceptance(human: pd.DataFrame, judge: pd.DataFrame, confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Acceptance per model and variant from human labels on a subset and a judge on every image.

    Args:
        human: model, variant, id, seed, accepted (0/1) for the labelled images; an optional
            `inclusion_prob` column gives each one's chance of having been chosen (uniform otherwise).
        judge: model, variant, id, seed, value (in [0, 1]) for every image.
        seed: unused (the estimate is closed-form); kept so every interval function takes one.

    Returns:
        One row per model and variant: acceptance, ci_low, ci_high, n_human, n_judge, lambda, and
        the interval from the human labels alone (lambda = 0) for comparison.
    """
    z = norm.ppf(1 - (1 - confidence) / 2)
    data = _prepare(human, judge)
    rows = []
    for (model, variant), part in data.groupby(["model", "variant"], sort=False):
        n_human = int(part["labelled"].sum())
        row = {"model": model, "variant": variant, "n_human": n_human, "n_judge": len(part)}
        if n_human == 0:
            rows.append({**row, "acceptance": np.nan, "ci_low": np.nan, "ci_high": np.nan, "lambda": np.nan,
                         "human_only_ci_low": np.nan, "human_only_ci_high": np.nan})
            continue
        sums, _ = _cluster_parts(part)
        theta, psi, lam = estimate(sums)
        se = np.sqrt(covariance(psi))
        base, base_psi, _ = estimate(sums, 0.0)
        base_se = np.sqrt(covariance(base_psi))
        rows.append({**row, "acceptance": theta, "ci_low": max(theta - z * se, 0.0), "ci_high": min(theta + z * se, 1.0),
                     "lambda": lam, "human_only_ci_low": max(base - z * base_se, 0.0),
                     "human_only_ci_high": min(base + z * base_se, 1.0)})
    return pd.DataFrame(rows, columns=COLUMNS)


def ppi_gains(human: pd.DataFrame, judge: pd.DataFrame, confidence: float = 0.95, base: str = "base") -> pd.DataFrame:
    """Relative gain of each variant over `base` per model, paired on prompts (delta method on the ratio)."""
    z = norm.ppf(1 - (1 - confidence) / 2)
    data = _prepare(human, judge)
    rows = []
    for model, part in data.groupby("model", sort=False):
        fits = {}
        for variant, sub in part.groupby("variant", sort=False):
            if sub["labelled"].any():
                sums, ids = _cluster_parts(sub)
                theta, psi, _ = estimate(sums)
                fits[variant] = (theta, pd.Series(psi, index=ids), len(sub))
        if base not in fits:
            continue
        tb, pb, nb = fits[base]
        for variant, (tv, pv, nv) in fits.items():
            if variant == base:
                continue
            ids = pb.index.intersection(pv.index)
            var_b, var_v = covariance(pb[ids].to_numpy()), covariance(pv[ids].to_numpy())
            cov = covariance(pv[ids].to_numpy(), pb[ids].to_numpy())
            gain = tv / tb - 1 if tb > 0 else np.nan
            se = np.sqrt(max(var_v / tb**2 + tv**2 * var_b / tb**4 - 2 * tv * cov / tb**3, 0.0)) if tb > 0 else np.nan
            se_abs = np.sqrt(max(var_v + var_b - 2 * cov, 0.0))
            rows.append({"model": model, "variant": variant, "base_acceptance": tb,
                         "base_acceptance_ci_low": tb - z * np.sqrt(var_b), "base_acceptance_ci_high": tb + z * np.sqrt(var_b),
                         "acceptance": tv, "acceptance_ci_low": tv - z * np.sqrt(var_v),
                         "acceptance_ci_high": tv + z * np.sqrt(var_v), "absolute_gain": tv - tb,
                         "absolute_ci_low": tv - tb - z * se_abs, "absolute_ci_high": tv - tb + z * se_abs,
                         "relative_gain": gain, "relative_ci_low": gain - z * se, "relative_ci_high": gain + z * se,
                         "ci_method": "prediction-powered (PPI++, prompt-clustered, delta method)",
                         "relative_ci_note": "", "images": nv + nb, "prompts": len(ids)})
    return pd.DataFrame(rows)
