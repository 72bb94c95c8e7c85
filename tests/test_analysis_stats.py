"""Statistics against independent computations on hand-built tables (scipy, statsmodels, by hand).

The simulations of coverage and of the paired test's error rate are in test_analysis_coverage.py.
"""

from itertools import product

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from scipy.special import expit

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


def random_effects(probabilities: dict, n_prompts: int = 125, n_seeds: int = 4, sd: float = 1.0, seed: int = 0) -> pd.DataFrame:
    """Images whose seeds vary within a prompt: logit p = logit(rate) + a prompt effect shared by the variants."""
    rng = np.random.default_rng(seed)
    effect = rng.normal(0, sd, n_prompts)
    rows = []
    for variant, rate in probabilities.items():
        p = expit(np.log(rate / (1 - rate)) + effect)
        accepted = rng.random((n_prompts, n_seeds)) < p[:, None]
        rows += [{"model": "m", "variant": variant, "id": f"p{k:03d}", "seed": s, "accepted": int(accepted[k, s])}
                 for k in range(n_prompts) for s in range(n_seeds)]
    return pd.DataFrame(rows)


def prompt_means(acc: pd.DataFrame) -> pd.DataFrame:
    return acc.pivot_table(index="id", columns="variant", values="accepted")


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
    assert (rates["images"] == 100).all() and (rates["prompts"] == 100).all() and row.prompts == 100


def test_point_estimates_equal_plain_means_with_missing_images():
    rng = np.random.default_rng(1)
    acc = table({"base": 0.3, "spatial": 0.5}, n_prompts=40, n_seeds=3, rng=rng)
    acc["accepted"] = rng.integers(0, 2, len(acc))
    acc = acc.drop(index=[3, 50, 51])  # a few images never made
    rates, _ = stats.acceptance_rates(acc, ["base", "spatial"], n_boot=200)
    expected = acc.groupby("variant")["accepted"].mean()
    for row in rates.itertuples():
        assert row.acceptance == pytest.approx(expected[row.variant])
        assert row.images == (acc["variant"] == row.variant).sum()


def test_rate_and_gain_intervals_equal_scipys_paired_bca_bootstrap_over_prompts():
    # seeds disagree within prompts: the one case where resampling seeds again would widen the interval
    acc = random_effects({"base": 0.4, "temporal": 0.7}, sd=1.0, seed=2)
    rates, gains = stats.acceptance_rates(acc, ["base", "temporal"], n_boot=9999, seed=3)
    means = prompt_means(acc)
    rates = rates.set_index("variant")
    for variant in ("base", "temporal"):
        ref = sps.bootstrap((means[variant].to_numpy(),), np.mean, method="BCa", n_resamples=9999, random_state=4)
        ci = ref.confidence_interval
        assert (rates.loc[variant, "ci_low"], rates.loc[variant, "ci_high"]) == pytest.approx((ci.low, ci.high), abs=0.006)
    pair = (means["base"].to_numpy(), means["temporal"].to_numpy())
    relative = sps.bootstrap(pair, lambda b, t, axis=-1: t.mean(axis=axis) / b.mean(axis=axis) - 1, paired=True,
                             method="BCa", n_resamples=9999, random_state=4).confidence_interval
    absolute = sps.bootstrap(pair, lambda b, t, axis=-1: t.mean(axis=axis) - b.mean(axis=axis), paired=True,
                             method="BCa", n_resamples=9999, random_state=4).confidence_interval
    row = gains.iloc[0]
    assert (row.relative_ci_low, row.relative_ci_high) == pytest.approx((relative.low, relative.high), abs=0.02)
    assert (row.absolute_ci_low, row.absolute_ci_high) == pytest.approx((absolute.low, absolute.high), abs=0.006)
    assert row.ci_method == stats.CI_BOOTSTRAP and row.relative_ci_note == ""


def test_seeds_are_not_resampled_twice():
    # No prompt effect: 125 prompts x 4 seeds are 500 independent images, and the prompt bootstrap's
    # interval has the binomial width of 500 images (resampling seeds again inflated it by about 1.3).
    acc = random_effects({"base": 0.4}, sd=0.0, seed=5)
    rates, _ = stats.acceptance_rates(acc, ["base"], n_boot=4000)
    row = rates.iloc[0]
    p = row.acceptance
    assert row.ci_high - row.ci_low == pytest.approx(2 * 1.96 * np.sqrt(p * (1 - p) / 500), rel=0.1)


def test_seeds_that_agree_count_once():
    # Seeds of a prompt all agree: 30 independent prompts, not 120 images.
    rng = np.random.default_rng(2)
    rows = []
    for p in range(30):
        value = int(rng.random() < 0.5)
        rows += [{"model": "m", "variant": "base", "id": str(p), "seed": s, "accepted": value} for s in range(4)]
    rates, _ = stats.acceptance_rates(pd.DataFrame(rows), ["base"], n_boot=4000)
    width = rates.iloc[0].ci_high - rates.iloc[0].ci_low
    p = rates.iloc[0].acceptance
    assert width == pytest.approx(2 * 1.96 * np.sqrt(p * (1 - p) / 30), rel=0.25)


def test_the_data_frame_path_equals_the_array_core():
    acc = random_effects({"base": 0.4, "temporal": 0.7}, n_prompts=60, seed=6)
    rates, gains = stats.acceptance_rates(acc, ["base", "temporal"], n_boot=500, seed=7)
    means = prompt_means(acc)
    accepted = 4 * means[["base", "temporal"]].to_numpy().T
    draws = stats.bootstrap_draws(60, 500, stats.rng_for(7, "rates", "m"))
    core = stats.rate_intervals(accepted, np.full_like(accepted, 4), draws, 0.95, base=0)
    assert rates["ci_low"].to_numpy() == pytest.approx(core["rate_low"])
    assert gains.iloc[0].relative_ci_high == pytest.approx(core["relative_high"][1])


def test_a_relative_gain_over_a_rare_base_has_an_unbounded_upper_limit():
    acc = table({"base": 0.0, "temporal": 0.7}, n_prompts=125, n_seeds=4, rng=np.random.default_rng(8))
    acc.loc[(acc["variant"] == "base") & (acc["id"] == "p000") & (acc["seed"] == 0), "accepted"] = 1  # 1 of 500
    rates, gains = stats.acceptance_rates(acc, ["base", "temporal"], n_boot=2000)
    row = gains.iloc[0]
    temporal = acc.loc[acc['variant'] == 'temporal', 'accepted'].mean()
    assert row.relative_gain == pytest.approx(temporal / (1 / 500) - 1)
    assert np.isinf(row.relative_ci_high) and np.isfinite(row.relative_ci_low)
    assert "unbounded" in row.relative_ci_note and "base acceptance is 0 in" in row.relative_ci_note
    # the base's own interval is not the bootstrap's [0 %, 0.6 %]: one prompt cannot be resampled into a rate
    base = rates.set_index("variant").loc["base"]
    assert base.ci_low == 0 and base.ci_high > 0.02 and base.ci_method == stats.CI_EXACT


def test_a_rate_of_zero_or_one_has_a_clopper_pearson_interval_over_prompts():
    acc = pd.concat([table({"base": 0.0}, n_prompts=125, n_seeds=4), table({"temporal": 1.0}, n_prompts=125, n_seeds=4)])
    rates, gains = stats.acceptance_rates(acc, ["base", "temporal"], n_boot=500)
    rates = rates.set_index("variant")
    exact = sps.binomtest(0, 125).proportion_ci(0.95, method="exact")  # the prompts are the units
    assert (rates.loc["base", "ci_low"], rates.loc["base", "ci_high"]) == pytest.approx((0.0, exact.high))
    assert rates.loc["temporal", "ci_low"] == pytest.approx(1 - exact.high) and rates.loc["temporal", "ci_high"] == 1
    row = gains.iloc[0]
    assert np.isnan(row.relative_gain) and "undefined" in row.relative_ci_note
    assert row.absolute_ci_low < 1 and row.absolute_ci_high == 1 and row.ci_method.startswith(stats.CI_BONFERRONI)
    zero = stats.acceptance_rates(table({"base": 0.0, "spatial": 0.0}, n_prompts=50), ["base", "spatial"], n_boot=200)[1]
    assert zero.iloc[0].absolute_ci_low < 0 < zero.iloc[0].absolute_ci_high  # not [0 %, 0 %]


def test_sign_flip_p_value_equals_enumerating_every_sign():
    rng = np.random.default_rng(9)
    for _ in range(5):
        d = rng.integers(-3, 4, 11)
        observed = abs(d.sum())
        sums = np.array([np.dot(signs, np.abs(d)) for signs in product((-1, 1), repeat=len(d))])
        assert stats.sign_flip_p(d) == pytest.approx(np.mean(np.abs(sums) >= observed), rel=1e-9)
    assert stats.sign_flip_p(np.zeros(5)) == 1.0


def test_sign_flip_p_value_approaches_durkalskis_clustered_mcnemar():
    rng = np.random.default_rng(10)
    d = rng.integers(-4, 5, 400) + (rng.random(400) < 0.1)
    chi2 = d.sum() ** 2 / (d ** 2).sum()  # Durkalski et al. (2003)
    assert stats.sign_flip_p(d) == pytest.approx(sps.chi2.sf(chi2, 1), abs=0.01)


def test_paired_counts_tests_prompts_and_corrects_with_holm():
    acc = random_effects({"base": 0.4, "spatial": 0.45, "temporal": 0.7}, n_prompts=80, seed=11)
    pairs = stats.paired(acc, "variant", n_boot=500).set_index(["a", "b"])
    wide = acc.pivot_table(index=["id", "seed"], columns="variant", values="accepted")
    raw = []
    for (a, b), row in pairs.iterrows():
        win = (wide[a] == 1) & (wide[b] == 0)
        loss = (wide[a] == 0) & (wide[b] == 1)
        assert (row.a_wins, row.b_wins, row.pairs, row.prompts) == (win.sum(), loss.sum(), len(wide), 80)
        per_prompt = (win.astype(int) - loss.astype(int)).groupby(level="id").sum()
        assert row.p_value == pytest.approx(stats.sign_flip_p(per_prompt.to_numpy()))
        assert row.win_rate_a == pytest.approx(win.sum() / (win.sum() + loss.sum()))
        assert row.win_rate_a_ci_low < row.win_rate_a < row.win_rate_a_ci_high
        raw.append(row.p_value)
    order = np.argsort(raw)
    holm = np.empty(len(raw))
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(raw) - rank) * raw[i]))
        holm[i] = running
    assert np.allclose(pairs["p_holm"].to_numpy(), holm)
    assert pairs.loc[("base", "temporal"), "p_value"] < 1e-6 and pairs.loc[("base", "temporal"), "significant"]


def test_win_rate_interval_equals_scipys_bootstrap_of_the_ratio_over_prompts():
    acc = random_effects({"base": 0.4, "temporal": 0.6}, seed=12)
    row = stats.paired(acc, "variant", n_boot=9999).iloc[0]
    wide = acc.pivot_table(index=["id", "seed"], columns="variant", values="accepted")
    win = ((wide["base"] == 1) & (wide["temporal"] == 0)).groupby(level="id").sum().to_numpy()
    loss = ((wide["base"] == 0) & (wide["temporal"] == 1)).groupby(level="id").sum().to_numpy()
    ref = sps.bootstrap((win, loss), lambda w, l_, axis=-1: w.sum(axis=axis) / (w.sum(axis=axis) + l_.sum(axis=axis)),
                        paired=True, method="BCa", n_resamples=9999, random_state=13).confidence_interval
    assert (row.win_rate_a_ci_low, row.win_rate_a_ci_high) == pytest.approx((ref.low, ref.high), abs=0.01)


def test_win_matrix_is_antisymmetric_with_mirrored_intervals():
    acc = table({"base": 0.2, "temporal": 0.6}, n_prompts=50, rng=np.random.default_rng(5))
    pairs = stats.paired(acc, "variant", n_boot=300)
    matrix = stats.win_matrix(pairs, "model", "m")
    assert matrix.loc["base", "temporal"] + matrix.loc["temporal", "base"] == pytest.approx(1.0)
    assert np.isnan(matrix.loc["base", "base"])
    low, high = (stats.win_matrix(pairs, "model", "m", v) for v in ("win_rate_a_ci_low", "win_rate_a_ci_high"))
    assert low.loc["temporal", "base"] == pytest.approx(1 - high.loc["base", "temporal"])
    assert stats.win_matrix(pairs, "model", "m", "pairs").loc["temporal", "base"] == 50


def test_gee_odds_ratio_equals_the_empirical_one_and_statsmodels():
    import statsmodels.api as sm
    import statsmodels.formula.api as smf

    acc = table({"base": 0.3, "temporal": 0.6}, n_prompts=200, rng=np.random.default_rng(6))
    ors, note = stats.gee_odds_ratios(acc)
    row = ors.set_index("term").loc["variant = temporal"]
    assert row.odds_ratio == pytest.approx((0.6 / 0.4) / (0.3 / 0.7), rel=1e-4)
    assert row.ci_low > 1 and "200 prompt clusters" in note and (row.images, row.prompts) == (400, 200)
    fit = smf.gee("accepted ~ C(variant)", groups="id", data=acc, family=sm.families.Binomial(),
                  cov_struct=sm.cov_struct.Exchangeable()).fit()
    assert row.p_value == pytest.approx(fit.pvalues.iloc[1], rel=1e-6)
    empty, note = stats.gee_odds_ratios(table({"base": 0.0, "temporal": 0.0}, n_prompts=10))
    assert empty.empty and "same outcome" in note


def validity_data(n: int = 60, seed: int = 7):
    rng = np.random.default_rng(seed)
    human = pd.DataFrame({"model": "m", "variant": "base", "id": [f"p{i % 20}" for i in range(n)], "seed": np.arange(n) // 20})
    human["accept_share"] = rng.choice([0.0, 1 / 3, 2 / 3, 1.0], n)
    human["accepted"] = (human["accept_share"] > 0.5).astype(int)
    scores = human[["model", "variant", "id", "seed"]].assign(metric="clipscore", value=human["accept_share"] * 10 + rng.normal(0, 3, n))
    return human, scores


def test_metric_validity_against_scipy():
    human, scores = validity_data()
    row = stats.metric_validity(scores, human, n_boot=500).iloc[0]
    pos, neg = scores["value"][human["accepted"] == 1], scores["value"][human["accepted"] == 0]
    assert row.auroc == pytest.approx(sps.mannwhitneyu(pos, neg).statistic / (len(pos) * len(neg)))
    assert row.spearman == pytest.approx(sps.spearmanr(scores["value"], human["accept_share"]).statistic)
    assert row.kendall == pytest.approx(sps.kendalltau(scores["value"], human["accept_share"]).statistic)
    best = max((2 * ((scores["value"] >= t) & (human["accepted"] == 1)).sum()
                / ((scores["value"] >= t).sum() + human["accepted"].sum()), t) for t in scores["value"])
    assert (row.best_f1, row.best_f1_threshold) == pytest.approx(best)
    prompt = human.assign(value=scores["value"]).groupby(["model", "variant", "id"])[["value", "accept_share"]].mean()
    assert row.prompt_spearman == pytest.approx(sps.spearmanr(prompt["value"], prompt["accept_share"]).statistic)
    assert row.prompt_kendall == pytest.approx(sps.kendalltau(prompt["value"], prompt["accept_share"]).statistic)
    assert (row.images, row.prompts, row.prompt_rows) == (60, 20, 20)
    for name in stats.VALIDITY_STATISTICS + ("prompt_auroc", "prompt_spearman", "prompt_kendall"):
        assert getattr(row, f"{name}_ci_low") <= getattr(row, name) <= getattr(row, f"{name}_ci_high"), name


def test_every_bootstrap_draw_of_metric_validity_equals_scipy_on_the_resampled_images():
    human, scores = validity_data(n=90, seed=8)
    code = pd.Index(sorted(human["id"].unique())).get_indexer(human["id"])
    draws = stats.bootstrap_draws(20, 6, np.random.default_rng(14))
    x, share, accepted = scores["value"].to_numpy(), human["accept_share"].to_numpy(), human["accepted"].to_numpy()
    fast = stats._validity(x, accepted, share, draws, code)[1:]
    for draw, got in zip(draws, fast):
        times = draw[code].astype(int)  # every image of a drawn prompt, as often as its prompt was drawn
        xs, ys, acc = np.repeat(x, times), np.repeat(share, times), np.repeat(accepted, times)
        expected = [sps.mannwhitneyu(xs[acc == 1], xs[acc == 0]).statistic / ((acc == 1).sum() * (acc == 0).sum()),
                    sps.spearmanr(xs, ys).statistic, sps.kendalltau(xs, ys).statistic]
        assert got[:3] == pytest.approx(expected, rel=1e-9)
        f1, threshold = max((2 * ((xs >= t) & (acc == 1)).sum() / ((xs >= t).sum() + acc.sum()), -t) for t in xs[acc == 1])
        assert (got[3], got[4]) == pytest.approx((f1, -threshold))
    weights = draws[:, code]  # the direct implementation (used when the shares have many values) agrees
    assert stats.weighted_kendall(x, share, weights) == pytest.approx(fast[:, 2])
    assert stats.weighted_spearman(x, share, weights) == pytest.approx(fast[:, 1])


def test_acceptance_sources_count_votes_and_flag_ties():
    answers = pd.DataFrame({
        "annotator": ["a", "b", "c", "d", "a", "e"], "id": ["p1", "p1", "p2", "p2", "p3", "p3"], "model": "m",
        "variant": "base", "seed": 0, "label": ["accept", "accept", "accept", "reject", "accept", "reject"], "tags": ""})
    human = stats.from_annotations(answers)
    assert human.table.set_index("id")["accepted"].to_dict() == {"p1": 1, "p2": 0, "p3": 0}  # a tie counts as a rejection
    assert "majority of 2 votes per image (5 annotators), 3 images" in human.description
    assert "2 tied images count as rejections" in human.description
    note = human.notes[0]
    assert "2 of 3 images" in note and "both accept" in note and "66.7% of the 6 votes accept" in note and "33.3% of the images" in note
    odd = stats.from_annotations(answers.iloc[[0, 1, 2]].assign(annotator=["a", "b", "a"]))
    assert "majority of 1-2 votes per image (median 1.5) (2 annotators)" in odd.description and not odd.notes


def test_a_missing_judge_value_is_left_out_and_counted():
    scores = pd.DataFrame({"model": "m", "variant": "base", "id": ["p1", "p2", "p3", "p4", "p5"], "seed": 0, "metric": "vqa",
                           "value": [0.1, 0.6, 0.4, 0.9, np.nan]})
    judged = stats.from_judge(scores, "vqa", 0.5)
    assert judged.table["accepted"].tolist() == [0, 1, 0, 1] and "vqa >= 0.5" in judged.description
    assert "4 images (1 without a vqa value left out)" in judged.description and "not counted as rejections" in judged.notes[0]
    quantile = stats.from_judge(scores, "vqa", 0.5, quantile=0.5)
    assert quantile.table["accepted"].sum() == 2 and "50% quantile" in quantile.description
    with pytest.raises(ValueError, match="no metric 'clipscore'"):
        stats.from_judge(scores, "clipscore", 0.5)
    with pytest.raises(ValueError, match="every value"):
        stats.from_judge(scores.assign(value=np.nan), "vqa", 0.5)


def test_failure_modes_from_tags_and_from_vqa_with_intervals():
    answers = pd.DataFrame({"annotator": ["a", "b", "a"], "id": ["p1", "p1", "p2"], "model": "m", "variant": "base",
                            "seed": 0, "label": "reject", "tags": ["missing agent", "role reversal,missing agent", ""]})
    modes = stats.failures_from_tags(answers, n_boot=200).set_index("mode")
    assert modes.loc["missing agent", "share"] == 0.5 and modes.loc["role reversal", "share"] == 0.5
    assert modes.loc["agents fused", "share"] == 0.0 and (modes["images"] == 2).all() and (modes["prompts"] == 2).all()
    assert (modes["ci_low"] <= modes["share"]).all() and (modes["share"] <= modes["ci_high"]).all()
    assert modes.loc["agents fused", "ci_high"] > 0  # 0 of 2 is not [0 %, 0 %]
    rows = []
    for i, (a1, a2, act, rev) in enumerate([(0.9, 0.9, 0.8, 0.1), (0.9, 0.2, 0.5, 0.5), (0.9, 0.9, 0.1, 0.6), (0.8, 0.9, 0.2, 0.1)]):
        for variant, shift in (("base", 0.0), ("temporal", 0.3)):
            for metric, value in zip(stats.VQA_PARTS, [a1, a2, min(act + shift, 1), rev]):
                rows.append({"model": "m", "variant": variant, "id": f"p{i}", "seed": 0, "metric": metric, "value": value})
    vqa = stats.failures_from_vqa(pd.DataFrame(rows), n_boot=200).set_index(["variant", "mode"])
    assert vqa.loc[("base", "missing agent"), "share"] == 0.25 and vqa.loc[("base", "wrong action"), "share"] == 0.5
    assert vqa.loc[("base", "role reversal"), "share"] == 0.25
    shift = stats.failure_shift(vqa.reset_index()).set_index("mode")
    assert shift.loc["wrong action", "change_vs_base"] == pytest.approx(-0.25)
    assert shift.loc["wrong action", "change_vs_base_ci_low"] <= -0.25 <= shift.loc["wrong action", "change_vs_base_ci_high"]
    assert stats.failures_from_vqa(pd.DataFrame(rows).query("metric != 'vqa_reversed'")).empty


def test_breakdown_by_label_with_intervals():
    acc = table({"base": 0.5, "temporal": 1.0}, n_prompts=4)
    bench = pd.DataFrame({"id": [f"p{i:03d}" for i in range(4)], "temporal_extent": ["instantaneous", "instantaneous", "extended", "extended"]})
    out = stats.breakdown(acc, bench, "temporal_extent", n_boot=200).set_index(["value", "variant"])
    assert out.loc[("instantaneous", "base"), "acceptance"] == 1.0 and out.loc[("extended", "base"), "acceptance"] == 0.0
    assert out.loc[("instantaneous", "temporal"), "relative_gain"] == 0.0
    assert np.isnan(out.loc[("extended", "temporal"), "relative_gain"])  # no base acceptance to compare with
    assert (out["prompts"] == 2).all() and (out["images"] == 2).all()
    assert out.loc[("extended", "base"), "ci_high"] > 0.5  # 0 of 2 prompts says little
    assert (out["ci_low"] <= out["acceptance"]).all() and (out["acceptance"] <= out["ci_high"]).all()


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
