"""Annotation plans: at equal budget, how much narrower are the prediction-powered intervals when
people judge the images `act2i annotate plan` chooses, against a uniform random subset?

Simulated studies (2 variants x 125 prompts x 4 seeds, a calibrated judge that is sure of some
images and unsure of others); the same studies, both designs, and how often each interval covers
the truth (the acceptance of every image).

    python benchmarks/bench_annotation_plan.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
from common import report  # noqa: E402


def main(n_studies: int = 100) -> dict:
    from act2i_utils.analysis.ppi import ppi_acceptance
    from act2i_utils.annotate.plan import plan_images
    from test_annotation_plan import study, uniform  # the tests' simulated study

    rows = []
    for budget in (100, 200, 400):
        rng = np.random.default_rng(budget)
        stats = {"planned": [], "uniform": []}
        for _ in range(n_studies):
            table = study(rng)
            truth = table.groupby("variant")["value"].mean()  # the judge is calibrated: E[accepted] = value
            labels = table.drop_duplicates("id").set_index("id")["label"]
            designs = {"planned": plan_images(table, labels, budget, seed=int(rng.integers(1 << 30))),
                       "uniform": uniform(table, budget, rng)}
            for name, chosen in designs.items():
                human = table.merge(chosen[chosen["selected"]], on=["model", "variant", "id", "seed"])
                out = ppi_acceptance(human[["model", "variant", "id", "seed", "accepted", "inclusion_prob"]], table)
                out = out.set_index("variant")
                width = (out["ci_high"] - out["ci_low"]).mean()
                cover = ((out["ci_low"] <= truth) & (truth <= out["ci_high"])).mean()
                stats[name].append((width, cover))
        planned, flat = np.array(stats["planned"]), np.array(stats["uniform"])
        rows.append({"budget": budget, "studies": n_studies, "width_planned": planned[:, 0].mean(),
                     "width_uniform": flat[:, 0].mean(), "ratio": planned[:, 0].mean() / flat[:, 0].mean(),
                     "coverage_planned": planned[:, 1].mean(), "coverage_uniform": flat[:, 1].mean()})
    return report("annotation_plan", rows, {"target": "ratio < 1: the plan's intervals are narrower at equal budget"})


if __name__ == "__main__":
    main()
