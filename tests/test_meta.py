"""Judges measured against people: each measure against an independent computation, and the
threshold chosen without the data it is scored on."""

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy.stats import kendalltau
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from act2i_utils.analysis.meta import cross_validated_predictions, judge_leaderboard, pairwise_accuracy


def constructed(rng, prompts=40, seeds=3, variants=("base", "temporal")):
    rows, people = [], []
    for v in variants:
        for p in range(prompts):
            for s in range(seeds):
                share = rng.choice([0, 0.5, 1.0], p=[0.4, 0.2, 0.4])
                key = {"model": "m", "variant": v, "id": f"p{p:02d}", "seed": s}
                people.append({**key, "accepted": int(share > 0.5), "accept_share": share})
                rows.append({**key, "metric": "good", "value": share + rng.normal(0, 0.3)})
                rows.append({**key, "metric": "noise", "value": rng.random()})
    bench = pd.DataFrame({"id": [f"p{p:02d}" for p in range(prompts)], "rarity_label": ["common", "rare"] * (prompts // 2)})
    return pd.DataFrame(rows), pd.DataFrame(people), bench


def brute_pairwise(metric, human):
    pairs = list(itertools.combinations(range(len(metric)), 2))
    best = 0
    for eps in [-1.0] + sorted({abs(metric[i] - metric[j]) for i, j in pairs}):
        right = 0
        for i, j in pairs:
            dm = 0 if abs(metric[i] - metric[j]) <= eps else np.sign(metric[i] - metric[j])
            right += dm == np.sign(human[i] - human[j])
        best = max(best, right)
    return best / len(pairs)


def test_pairwise_accuracy_with_tie_calibration_by_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(5):
        metric, human = rng.normal(size=25).round(1), rng.choice([0, 0.5, 1], 25)
        assert pairwise_accuracy(metric, human) == pytest.approx(brute_pairwise(metric, human))


def test_measures_equal_scikit_learn_and_scipy():
    scores, people, bench = constructed(np.random.default_rng(1))
    table = judge_leaderboard(scores, people, bench, n_boot=50)
    row = table[(table["metric"] == "good") & (table["slice"] == "all")].iloc[0]
    merged = scores[scores["metric"] == "good"].merge(people, on=["model", "variant", "id", "seed"]).reset_index(drop=True)
    assert row.auroc == pytest.approx(roc_auc_score(merged["accepted"], merged["value"]))
    assert row.kendall == pytest.approx(kendalltau(merged["value"], merged["accept_share"]).statistic)
    predicted = cross_validated_predictions(merged["value"].to_numpy(), merged["accepted"].to_numpy(), merged["id"].to_numpy())
    assert row.accuracy == pytest.approx(accuracy_score(merged["accepted"], predicted))
    assert row.f1 == pytest.approx(f1_score(merged["accepted"], predicted))
    assert row.auroc_ci_low < row.auroc < row.auroc_ci_high
    good, noise = (table[(table["slice"] == "all") & (table["metric"] == m)].iloc[0] for m in ("good", "noise"))
    assert table["metric"].iloc[0] == "good" and good.pairwise_accuracy > noise.pairwise_accuracy  # ranked first
    assert abs(noise.auroc - 0.5) < 0.1 and noise.auroc_ci_low < 0.5 < noise.auroc_ci_high
    assert {"variant", "rarity_label"} <= set(table["slice"])


def test_the_threshold_never_sees_its_own_prompt():
    rng = np.random.default_rng(2)
    scores, groups = rng.random(200), np.repeat(np.arange(40), 5)
    labels = (rng.random(200) < scores).astype(int)
    before = cross_validated_predictions(scores, labels, groups)
    leaked = labels.copy()
    leaked[groups == 7] = 1 - leaked[groups == 7]  # change one prompt's outcomes
    after = cross_validated_predictions(scores, leaked, groups)
    assert (before[groups == 7] == after[groups == 7]).all()
