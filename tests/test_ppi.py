"""Prediction-powered human acceptance: checked against ppi_py, and by simulation with a known truth."""

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from act2i_utils.analysis.ppi import cluster_sums, covariance, estimate, ppi_acceptance, ppi_gains

PROMPTS, SEEDS = 125, 4


def population_mean(mu: float, sd: float) -> float:
    """The acceptance over the population of prompts (the estimand), by numerical integration."""
    z = np.linspace(-8, 8, 4001)
    w = np.exp(-z**2 / 2)
    return float((expit(mu + sd * z) * w).sum() / w.sum())


def simulate(rng, mu=-0.4, sd=1.0, judge="informative", label_share=0.2):
    """One study: prompts with random effects, 4 seeds each, a judge on all, people on a share."""
    prompt = np.repeat(np.arange(PROMPTS), SEEDS)
    p = expit(mu + sd * rng.standard_normal(PROMPTS))[prompt]
    y = (rng.random(len(p)) < p).astype(float)
    if judge == "informative":
        f = np.clip(0.15 + 0.7 * y + rng.normal(0, 0.15, len(y)), 0, 1)
    else:
        f = rng.random(len(y))
    labelled = rng.random(len(y)) < label_share
    return prompt, y, f, labelled


def interval(prompt, y, f, labelled, lam=None, z=1.959964, people_only=False):
    pi = np.full(len(y), labelled.mean())
    theta, psi, _ = estimate(cluster_sums(prompt, labelled, y, f, pi), 0.0 if people_only else lam)
    se = np.sqrt(covariance(psi))
    return theta - z * se, theta + z * se


def coverage(n_sims, judge, sd, seed=0):
    rng = np.random.default_rng(seed)
    truth = population_mean(-0.4, sd)
    hits, widths, human_widths = 0, [], []
    for _ in range(n_sims):
        prompt, y, f, labelled = simulate(rng, sd=sd, judge=judge)
        low, high = interval(prompt, y, f, labelled)
        hits += low <= truth <= high
        widths.append(high - low)
        h_low, h_high = interval(prompt, y, f, labelled, people_only=True)
        human_widths.append(h_high - h_low)
    return hits / n_sims, float(np.mean(widths) / np.mean(human_widths))


@pytest.mark.parametrize("judge", ["informative", "noise"])
def test_coverage_fast(judge):
    cover, ratio = coverage(600, judge, sd=1.0)
    assert 0.92 <= cover <= 0.98
    if judge == "informative":
        assert ratio < 0.8  # clearly narrower than the people alone on the same labels (measured: 0.6)
    else:
        assert ratio < 1.03  # a useless judge costs at most a few percent (measured: 1.00)


@pytest.mark.slow
@pytest.mark.parametrize("sd", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("judge", ["informative", "noise"])
def test_coverage_slow(judge, sd):
    cover, ratio = coverage(3000, judge, sd=sd, seed=1)
    assert 0.93 <= cover <= 0.97, (cover, ratio)


def test_matches_ppi_py_for_independent_images():
    """One image per prompt and lambda = 1: the classical PPI interval of Angelopoulos et al. (2023)."""
    ppi_py = pytest.importorskip("ppi_py")
    rng = np.random.default_rng(3)
    n, big = 300, 30000
    y = (rng.random(n) < 0.4).astype(float)
    f_lab = np.clip(0.2 + 0.6 * y + rng.normal(0, 0.1, n), 0, 1)
    f_unl = np.clip(0.2 + 0.6 * (rng.random(big) < 0.4) + rng.normal(0, 0.1, big), 0, 1)
    low, high = ppi_py.ppi_mean_ci(y, f_lab, f_unl, alpha=0.05, lam=1.0)
    prompt = np.arange(n + big)
    labelled = np.r_[np.ones(n, bool), np.zeros(big, bool)]
    ours = interval(prompt, np.r_[y, np.zeros(big)], np.r_[f_lab, f_unl], labelled, lam=1.0)
    # the same estimator up to the unlabelled mean taken over all images: equal to about 1e-3
    assert ours[0] == pytest.approx(float(np.ravel(low)[0]), abs=3e-3)
    assert ours[1] == pytest.approx(float(np.ravel(high)[0]), abs=3e-3)


def tables(rng, label_share=0.2):
    rows, labels = [], []
    for variant, mu in (("base", -0.4), ("temporal", 0.5)):
        prompt, y, f, labelled = simulate(rng, mu=mu, label_share=label_share)
        for i, (c, yy, ff, ll) in enumerate(zip(prompt, y, f, labelled)):
            key = {"model": "m", "variant": variant, "id": f"p{c:03d}", "seed": i % SEEDS}
            rows.append({**key, "value": ff})
            if ll:
                labels.append({**key, "accepted": yy})
    return pd.DataFrame(labels), pd.DataFrame(rows)


def test_public_function_and_gains():
    human, judge = tables(np.random.default_rng(5))
    out = ppi_acceptance(human, judge).set_index("variant")
    assert list(out.columns[:7]) == ["model", "acceptance", "ci_low", "ci_high", "n_human", "n_judge", "lambda"]
    assert (out["n_judge"] == PROMPTS * SEEDS).all() and (out["n_human"] == human.groupby("variant").size()).all()
    assert (out["ci_high"] - out["ci_low"] < out["human_only_ci_high"] - out["human_only_ci_low"]).all()
    gains = ppi_gains(human, judge).set_index("variant")
    truth = population_mean(0.5, 1.0) / population_mean(-0.4, 1.0) - 1
    assert gains.loc["temporal", "relative_ci_low"] < truth < gains.loc["temporal", "relative_ci_high"]


def test_gain_interval_coverage_fast():
    rng = np.random.default_rng(7)
    truth = population_mean(0.5, 1.0) / population_mean(-0.4, 1.0) - 1
    hits = 0
    for _ in range(60):
        human, judge = tables(rng)
        g = ppi_gains(human, judge).iloc[0]
        hits += g.relative_ci_low <= truth <= g.relative_ci_high
    assert hits >= 52  # about 95 % of 60 (binomial 2.5 % quantile: 53)
