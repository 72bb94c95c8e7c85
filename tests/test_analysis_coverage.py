"""Simulations: the prompt bootstrap's intervals cover the truth 95 % of the time, and the paired test
keeps its error rate, when prompts differ (the statistical unit is the prompt).

Design: 125 prompts x 4 seeds, two variants paired on the same prompts (base 40 %, temporal 70 %).
Each prompt has a random effect u ~ N(0, sd) on the logit scale, shared by both variants; the seeds
of a prompt are independent draws given u. The estimand is the population-average acceptance over
the prompt distribution, E_u[expit(a + u)], and the relative gain of those averages
(70 % / 40 % - 1 = 0.75): the intercepts a are solved so that these are exactly 40 % and 70 % for
every sd. This is what the prompt bootstrap targets (prompts as a sample from a population of
prompts like them); the average of the drawn prompts' own probabilities would be a narrower target.

The fast versions pool the three sds so that the default suite stays quick; the `slow` versions
check each sd with 4,000 simulations (a coverage of 95 % has a Monte Carlo standard error of
0.35 points there, 93-97 % is about six standard errors wide).
"""

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import brentq
from scipy.special import expit

from act2i_utils.analysis import stats

PROMPTS, SEEDS = 125, 4
NODES, WEIGHTS = np.polynomial.hermite_e.hermegauss(101)  # for E[f(u)], u ~ N(0, 1)


def intercept(mean: float, sd: float) -> float:
    """The logit intercept a with E_u[expit(a + u)] = mean for u ~ N(0, sd)."""
    return brentq(lambda a: float((WEIGHTS * expit(a + sd * NODES)).sum() / WEIGHTS.sum()) - mean, -30, 30)


def simulate(sd: float, sims: int, n_boot: int, seed: int, chunk: int = 50) -> dict:
    """Coverage and mean width of the 95 % intervals of the base rate and the relative gain."""
    rng = np.random.default_rng(seed)
    a = np.array([intercept(0.4, sd), intercept(0.7, sd)])
    truth_rate, truth_gain = 0.4, 0.7 / 0.4 - 1
    hits = np.zeros(2)
    width = np.zeros(2)
    for start in range(0, sims, chunk):
        n = min(chunk, sims - start)
        effect = rng.normal(0, sd, (n, 1, PROMPTS))
        accepted = rng.binomial(SEEDS, expit(a[None, :, None] + effect)).astype(float)  # (n, 2 variants, prompts)
        draws = stats.bootstrap_draws(PROMPTS, n_boot, rng, batch=(n,))
        out = stats.rate_intervals(accepted, np.full_like(accepted, SEEDS), draws, 0.95, base=0)
        low = np.column_stack([out["rate_low"][:, 0], out["relative_low"][:, 1]])
        high = np.column_stack([out["rate_high"][:, 0], out["relative_high"][:, 1]])
        truth = np.array([truth_rate, truth_gain])
        hits += ((low <= truth) & (truth <= high)).sum(axis=0)
        width += (high - low).sum(axis=0)
    return {"rate": hits[0] / sims, "gain": hits[1] / sims, "rate_width": width[0] / sims, "gain_width": width[1] / sims}


def test_the_intercepts_give_the_stated_population_averages():
    for sd in (0.5, 1.0):
        a = intercept(0.4, sd)
        u = np.random.default_rng(0).normal(0, sd, 400_000)
        assert expit(a + u).mean() == pytest.approx(0.4, abs=0.002)


def test_intervals_cover_the_population_average_fast():
    results = [simulate(sd, 600, 1000, seed=int(10 * sd) + 1) for sd in (0.0, 0.5, 1.0)]
    rate = np.mean([r["rate"] for r in results])
    gain = np.mean([r["gain"] for r in results])
    assert 0.93 <= rate <= 0.97 and 0.93 <= gain <= 0.97, results


@pytest.mark.slow
@pytest.mark.parametrize("sd", [0.0, 0.5, 1.0])
def test_intervals_cover_the_population_average(sd):
    result = simulate(sd, 4000, 2000, seed=int(10 * sd) + 100)
    assert 0.93 <= result["rate"] <= 0.97 and 0.93 <= result["gain"] <= 0.97, result


def simulate_null(sims: int, seed: int, effect_sd: float = 2.0, prompt_sd: float = 1.0):
    """Per-prompt wins minus losses of variant a over b when the effect differs from prompt to prompt
    (logit sd `effect_sd`) but is zero on average: logit p_a = u + e/2, logit p_b = u - e/2."""
    rng = np.random.default_rng(seed)
    u = rng.normal(0, prompt_sd, (sims, PROMPTS, 1))
    e = rng.normal(0, effect_sd, (sims, PROMPTS, 1))
    a = rng.random((sims, PROMPTS, SEEDS)) < expit(u + e / 2)
    b = rng.random((sims, PROMPTS, SEEDS)) < expit(u - e / 2)
    return a, b


def rejection_rates(a, b, alpha: float = 0.05) -> tuple[float, float]:
    """(prompt-level sign-flip test, image-level McNemar) rejection rates."""
    from statsmodels.stats.contingency_tables import mcnemar

    wins, losses = (a & ~b).sum(axis=2), (~a & b).sum(axis=2)
    prompt = np.mean([stats.sign_flip_p(w - l_) < alpha for w, l_ in zip(wins, losses)])
    image = np.mean([mcnemar([[0, w], [l_, 0]], exact=False, correction=True).pvalue < alpha
                     for w, l_ in zip(wins.sum(axis=1), losses.sum(axis=1))])
    return float(prompt), float(image)


def test_paired_test_keeps_its_error_rate_when_the_effect_varies_by_prompt_fast():
    prompt, image = rejection_rates(*simulate_null(2500, seed=1))
    assert prompt <= 0.065
    assert image > 0.08  # the same data fool a test that treats images as independent


@pytest.mark.slow
def test_paired_test_keeps_its_error_rate_when_the_effect_varies_by_prompt():
    prompt, image = rejection_rates(*simulate_null(20000, seed=2))
    assert 0.03 <= prompt <= 0.065 and image > 0.08


def test_paired_reports_the_prompt_level_test():
    a, b = simulate_null(3, seed=3)
    for sim in range(3):
        rows = [{"model": "m", "variant": v, "id": f"p{k:03d}", "seed": s, "accepted": int(x[sim, k, s])}
                for v, x in (("base", a), ("temporal", b)) for k in range(PROMPTS) for s in range(SEEDS)]
        row = stats.paired(pd.DataFrame(rows), "variant", n_boot=200).iloc[0]
        wins, losses = (a[sim] & ~b[sim]).sum(axis=1), (~a[sim] & b[sim]).sum(axis=1)
        assert row.p_value == pytest.approx(stats.sign_flip_p(wins - losses))
