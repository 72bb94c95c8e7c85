"""Agreement statistics against statsmodels and the krippendorff package, on hand-built tables."""

import krippendorff
import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss

from act2i_utils.annotate.agreement import agreement, fleiss_kappa, krippendorff_alpha, per_annotator, rating_counts

TABLES = [
    np.array([[3, 0], [0, 3], [2, 1], [1, 2], [3, 0], [0, 3]]),
    np.array([[2, 0], [1, 1], [0, 2], [2, 0], [2, 0]]),
    np.array([[4, 1, 0], [2, 2, 1], [0, 5, 0], [1, 1, 3], [0, 0, 5]]),
]


@pytest.mark.parametrize("table", TABLES)
def test_fleiss_kappa_equals_statsmodels(table):
    assert fleiss_kappa(table) == pytest.approx(sm_fleiss(table, method="fleiss"), abs=1e-12)


def test_fleiss_kappa_needs_equal_ratings():
    with pytest.raises(ValueError, match="same number"):
        fleiss_kappa(np.array([[2, 0], [1, 2]]))


@pytest.mark.parametrize("seed", range(5))
def test_krippendorff_alpha_equals_the_package_with_missing_ratings(seed):
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 2, size=(4, 30)).astype(float)  # raters x units
    data[rng.random(data.shape) < 0.35] = np.nan
    units = [[int(v) for v in data[:, u] if not np.isnan(v)] for u in range(data.shape[1])]
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
    assert krippendorff_alpha(units) == pytest.approx(expected, abs=1e-12)


def test_perfect_and_chance_agreement():
    assert krippendorff_alpha([["accept", "accept"], ["reject", "reject"], ["accept", "accept"]]) == pytest.approx(1.0)
    assert fleiss_kappa(np.array([[2, 0], [0, 2]])) == pytest.approx(1.0)


def answers_table():
    rows = []
    labels = {"i1": ["accept", "accept", "accept"], "i2": ["reject", "reject", "accept"], "i3": ["reject", "reject", "reject"],
              "i4": ["accept", "reject"], "i5": ["accept"]}
    for image, given in labels.items():
        for who, label in zip(["ann", "ben", "cat"], given):
            rows.append({"annotator": who, "image_id": image, "label": label, "seconds": 2.0 if who == "ann" else 4.0})
    return pd.DataFrame(rows)


def test_agreement_summary_uses_the_overlap():
    answers = answers_table()
    summary = agreement(answers)
    counts = rating_counts(answers)
    three = counts[counts.sum(axis=1) == 3].to_numpy()
    assert summary["fleiss_images"] == 3 and summary["fleiss_raters_per_image"] == 3
    assert summary["fleiss_kappa"] == pytest.approx(sm_fleiss(three))
    data = answers.pivot(index="annotator", columns="image_id", values="label").replace({"accept": 1, "reject": 0})
    reliability = data.astype(float).to_numpy()
    assert summary["krippendorff_alpha"] == pytest.approx(krippendorff.alpha(reliability_data=reliability, level_of_measurement="nominal"))
    assert summary["images_rated_twice_or_more"] == 4


def test_per_annotator_rates_and_times():
    table = per_annotator(answers_table())
    assert table.loc["ann", "answers"] == 5 and table.loc["ann", "acceptance"] == pytest.approx(3 / 5)
    assert table.loc["ben", "mean_seconds"] == 4.0
