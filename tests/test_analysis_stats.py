"""Statistics against independent computations on hand-built tables (scipy, statsmodels, by hand)."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from act2i_utils.analysis import linguistics, stats


def table(rates: dict, n_prompts: int = 100, n_seeds: int = 1, model: str = "m", rng=None) -> pd.DataFrame:
    """Images of one model: for each variant, the first round(rate * n) prompts accepted (all seeds)."""
    rows = []
    for variant, rate in rates.items():
        accepted = int(round(rate * n_prompts))
        order = rng.permutation(n_prompts) if rng is not None else np.arange(n_prompts)
        for rank, p in enumerate(order):
            for s in range(n_seeds):
                rows.append({"model": model, "variant": variant, "id": f"p{p:03d}", "seed": s, "accepted": int(rank < accepted)})
    return pd.DataFrame(rows)


def test_the_papers_headline_48_to_83_is_a_72_9_percent_gain():
    acc = table({"base": 0.48, "temporal": 0.83}, rng=np.random.default_rng(0))
    rates, gains = stats.acceptance_rates(acc, ["base", "temporal"], n_boot=1000)
    assert rates.set_index("variant").loc["base", "acceptance"] == pytest.approx(0.48)
    assert rates.set_index("variant").loc["temporal", "acceptance"] == pytest.approx(0.83)
    row = gains.iloc[0]
    assert row.absolute_gain == pytest.approx(0.35)
    assert row.relative_gain == pytest.approx(0.35 / 0.48) and round(100 * row.relative_gain, 1) == 72.9
    assert row.relative_ci_low < row.relative_gain < row.relative_ci_high
    assert row.absolute_ci_low < 0.35 < row.absolute_ci_high and row.absolute_ci_low > 0


def test_point_estimates_equal_plain_means_with_missing_images():
    rng = np.random.default_rng(1)
    acc = table({"base": 0.3, "spatial": 0.5}, n_prompts=40, n_seeds=3, rng=rng)
    acc["accepted"] = rng.integers(0, 2, len(acc))
    acc = acc.drop(index=[3, 50, 51])  # a few images never made
    rates, _ = stats.acceptance_rates(acc, ["base", "spatial"], n_boot=200)
    expected = acc.groupby("variant")["accepted"].mean()
    for row in rates.itertuples():
        assert row.acceptance == pytest.approx(expected[row.variant])


def test_bootstrap_resamples_prompts_then_seeds():
    # Prompt-level clustering: seeds of a prompt agree. A naive image bootstrap would be too narrow.
    rng = np.random.default_rng(2)
    rows = []
    for p in range(30):
        value = int(rng.random() < 0.5)
        rows += [{"model": "m", "variant": "base", "id": str(p), "seed": s, "accepted": value} for s in range(4)]
    rates, _ = stats.acceptance_rates(pd.DataFrame(rows), ["base"], n_boot=4000)
    width = rates.iloc[0].ci_high - rates.iloc[0].ci_low
    p = rates.iloc[0].acceptance
    clustered = 2 * 1.96 * np.sqrt(p * (1 - p) / 30)  # 30 independent units, not 120
    assert width == pytest.approx(clustered, rel=0.25)


def test_intervals_cover_the_truth_in_a_simulation():
    rng = np.random.default_rng(3)
    truth, covered = 0.4, 0
    for sim in range(120):
        prompt_p = np.clip(truth + rng.normal(0, 0.15, 50), 0, 1)  # prompts differ in difficulty
        rows = [{"model": "m", "variant": "base", "id": str(p), "seed": s, "accepted": int(rng.random() < prompt_p[p])}
                for p in range(50) for s in range(3)]
        rates, _ = stats.acceptance_rates(pd.DataFrame(rows), ["base"], n_boot=400, seed=sim)
        covered += rates.iloc[0].ci_low <= truth <= rates.iloc[0].ci_high
    assert covered / 120 >= 0.88  # nominal 95 %


def test_mcnemar_and_holm_against_scipy_and_by_hand():
    rng = np.random.default_rng(4)
    acc = table({"base": 0.4, "spatial": 0.45, "temporal": 0.7}, n_prompts=80, rng=rng)
    pairs = stats.paired(acc, "variant").set_index(["a", "b"])
    wide = acc.pivot_table(index=["id", "seed"], columns="variant", values="accepted")
    raw = []
    for (a, b), row in pairs.iterrows():
        wins = int(((wide[a] == 1) & (wide[b] == 0)).sum())
        losses = int(((wide[a] == 0) & (wide[b] == 1)).sum())
        assert (row.a_wins, row.b_wins) == (wins, losses)
        if wins + losses < 25:
            expected = sps.binomtest(wins, wins + losses, 0.5).pvalue
        else:
            expected = sps.chi2.sf((abs(wins - losses) - 1) ** 2 / (wins + losses), 1)
        assert row.mcnemar_p == pytest.approx(expected, rel=1e-9)
        assert row.win_rate_a == pytest.approx(wins / (wins + losses))
        raw.append(row.mcnemar_p)
    order = np.argsort(raw)
    holm = np.empty(len(raw))
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(raw) - rank) * raw[i]))
        holm[i] = running
    assert np.allclose(pairs["p_holm"].to_numpy(), holm)


def test_win_matrix_is_antisymmetric():
    acc = table({"base": 0.2, "temporal": 0.6}, n_prompts=50, rng=np.random.default_rng(5))
    matrix = stats.win_matrix(stats.paired(acc, "variant"), "model", "m")
    assert matrix.loc["base", "temporal"] + matrix.loc["temporal", "base"] == pytest.approx(1.0)
    assert np.isnan(matrix.loc["base", "base"])


def test_gee_odds_ratio_equals_the_empirical_one_for_a_saturated_model():
    acc = table({"base": 0.3, "temporal": 0.6}, n_prompts=200, rng=np.random.default_rng(6))
    ors, note = stats.gee_odds_ratios(acc)
    row = ors.set_index("term").loc["variant = temporal"]
    assert row.odds_ratio == pytest.approx((0.6 / 0.4) / (0.3 / 0.7), rel=1e-4)
    assert row.ci_low > 1 and "200 prompt clusters" in note
    empty, note = stats.gee_odds_ratios(table({"base": 0.0, "temporal": 0.0}, n_prompts=10))
    assert empty.empty and "same outcome" in note


def test_metric_validity_against_scipy():
    rng = np.random.default_rng(7)
    n = 60
    human = pd.DataFrame({"model": "m", "variant": "base", "id": [f"p{i}" for i in range(n)], "seed": 0})
    human["accept_share"] = rng.choice([0.0, 1 / 3, 2 / 3, 1.0], n)
    human["accepted"] = (human["accept_share"] > 0.5).astype(int)
    scores = human[["model", "variant", "id", "seed"]].assign(metric="clipscore", value=human["accept_share"] * 10 + rng.normal(0, 3, n))
    row = stats.metric_validity(scores, human).iloc[0]
    pos, neg = scores["value"][human["accepted"] == 1], scores["value"][human["accepted"] == 0]
    assert row.auroc == pytest.approx(sps.mannwhitneyu(pos, neg).statistic / (len(pos) * len(neg)))
    assert row.spearman == pytest.approx(sps.spearmanr(scores["value"], human["accept_share"]).statistic)
    assert row.kendall == pytest.approx(sps.kendalltau(scores["value"], human["accept_share"]).statistic)
    best = max((2 * ((scores["value"] >= t) & (human["accepted"] == 1)).sum()
                / ((scores["value"] >= t).sum() + human["accepted"].sum()), t) for t in scores["value"])
    assert (row.best_f1, row.best_f1_threshold) == pytest.approx(best)


def test_acceptance_sources():
    answers = pd.DataFrame({
        "annotator": ["a", "b", "c", "a", "b"], "id": ["p1", "p1", "p1", "p2", "p2"], "model": "m", "variant": "base",
        "seed": 0, "label": ["accept", "accept", "reject", "accept", "reject"], "tags": ""})
    human = stats.from_annotations(answers)
    assert human.table.set_index("id")["accepted"].to_dict() == {"p1": 1, "p2": 0}  # a tie counts as a rejection
    assert "majority of 3 annotator(s)" in human.description
    scores = pd.DataFrame({"model": "m", "variant": "base", "id": ["p1", "p2", "p3", "p4"], "seed": 0, "metric": "vqa",
                           "value": [0.1, 0.6, 0.4, 0.9]})
    judged = stats.from_judge(scores, "vqa", 0.5)
    assert judged.table["accepted"].tolist() == [0, 1, 0, 1] and "vqa >= 0.5" in judged.description
    quantile = stats.from_judge(scores, "vqa", 0.5, quantile=0.5)
    assert quantile.table["accepted"].sum() == 2 and "50% quantile" in quantile.description
    with pytest.raises(ValueError, match="no metric 'clipscore'"):
        stats.from_judge(scores, "clipscore", 0.5)


def test_failure_modes_from_tags_and_from_vqa():
    answers = pd.DataFrame({"annotator": ["a", "b", "a"], "id": ["p1", "p1", "p2"], "model": "m", "variant": "base",
                            "seed": 0, "label": "reject", "tags": ["missing agent", "role reversal,missing agent", ""]})
    modes = stats.failures_from_tags(answers).set_index("mode")["share"]
    assert modes["missing agent"] == 0.5 and modes["role reversal"] == 0.5 and modes["agents fused"] == 0.0
    rows = []
    for i, (a1, a2, act, rev) in enumerate([(0.9, 0.9, 0.8, 0.1), (0.9, 0.2, 0.5, 0.5), (0.9, 0.9, 0.1, 0.6), (0.8, 0.9, 0.2, 0.1)]):
        for metric, value in zip(["vqa_agent1", "vqa_agent2", "vqa_action", "vqa_reversed"], [a1, a2, act, rev]):
            rows.append({"model": "m", "variant": "base", "id": f"p{i}", "seed": 0, "metric": metric, "value": value})
    vqa = stats.failures_from_vqa(pd.DataFrame(rows)).set_index("mode")["share"]
    assert vqa["missing agent"] == 0.25 and vqa["wrong action"] == 0.5 and vqa["role reversal"] == 0.25


def test_breakdown_by_label():
    acc = table({"base": 0.5, "temporal": 1.0}, n_prompts=4)
    bench = pd.DataFrame({"id": [f"p{i:03d}" for i in range(4)], "temporal_extent": ["instantaneous", "instantaneous", "extended", "extended"]})
    out = stats.breakdown(acc, bench, "temporal_extent").set_index(["value", "variant"])
    assert out.loc[("instantaneous", "base"), "acceptance"] == 1.0 and out.loc[("extended", "base"), "acceptance"] == 0.0
    assert out.loc[("instantaneous", "temporal"), "relative_gain"] == 0.0
    assert np.isnan(out.loc[("extended", "temporal"), "relative_gain"])  # no base acceptance to compare with


def test_linguistics_by_hand():
    prompts = pd.DataFrame({"id": ["a", "a", "b", "b"], "variant": ["base", "temporal", "base", "temporal"],
                            "text": ["a wolf chasing a deer", "A wolf chasing a deer, mid-leap, dust flying",
                                     "a cat", "a cat, frozen mid-leap"]})
    lengths = linguistics.length_table(prompts).set_index("variant")
    assert lengths.loc["base", "mean_words"] == 3.5 and lengths.loc["temporal", "mean_words"] == 6.0
    assert lengths.loc["base", "type_token_ratio"] == pytest.approx(5 / 7)
    added = linguistics.added_words(prompts)["temporal"]
    assert added == {"mid-leap": 2, "dust": 1, "flying": 1, "frozen": 1}
    table_, note = linguistics.pos_profile(prompts)
    assert (table_.empty and "spaCy" in note) or set(table_["variant"]) == {"base", "temporal"}
