"""Which images people should judge: `act2i annotate plan --budget N --run R`.

People are the expensive part; a judge scores every image. With prediction-powered inference
(`analysis.ppi`) the interval of each model x variant shrinks most when the labels go where the
judge is unsure, since there the judge's error (what the labels correct) varies most. The plan:

- splits the budget evenly over the model x variant cells (every comparison that matters gets
  its share), and within a cell over the prompt-label strata in proportion to their size;
- inside a stratum, gives each image a chance proportional to sqrt(f (1 - f)) + a floor, f the
  judge's value (Neyman allocation for a judge that is calibrated), and draws each image
  independently with that chance (Poisson sampling, seeded).

The chances are written with the plan (`annotation_plan.parquet`), and the analysis weights each
label by 1 / chance, so the estimate stays unbiased whatever the judge.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import InputError
from ..schema import ANNOTATION_PLAN, KEY, SCORES, load_benchmark

FLOOR = 0.1  # every image keeps a chance: a judge sure and wrong is still caught


def plan_images(judge: pd.DataFrame, labels: pd.Series | None, budget: int, seed: int = 0) -> pd.DataFrame:
    """The plan for `judge` (model, variant, id, seed, value in [0, 1]) and a budget of labels.

    `labels` maps a prompt id to its stratum (e.g. its rarity label); None puts all in one.
    """
    if budget <= 0:
        raise InputError(f"The annotation budget must be a positive number of images, got {budget}.")
    table = judge[KEY + ["value"]].copy()
    table["stratum"] = table["id"].map(labels).fillna("(none)") if labels is not None else "(all)"
    cells = table.groupby(["model", "variant"], sort=False)
    per_cell = budget / cells.ngroups
    weight = np.sqrt(table["value"].clip(0, 1) * (1 - table["value"].clip(0, 1))) + FLOOR
    table["inclusion_prob"] = 0.0
    for _, cell in cells:
        for _, stratum in cell.groupby("stratum", sort=False):
            wanted = per_cell * len(stratum) / len(cell)
            table.loc[stratum.index, "inclusion_prob"] = _chances(weight[stratum.index].to_numpy(), wanted)
    rng = np.random.default_rng(seed)
    table["selected"] = rng.random(len(table)) < table["inclusion_prob"]
    return ANNOTATION_PLAN.validate(table.drop(columns="value"), "annotation plan")


def _chances(weights: np.ndarray, wanted: float) -> np.ndarray:
    """Chances proportional to `weights` summing to `wanted`, none above 1 (the excess redistributed)."""
    chances = np.zeros_like(weights)
    free = np.ones(len(weights), bool)
    while free.any():
        left = wanted - chances[~free].sum()
        chances[free] = weights[free] * left / weights[free].sum()
        over = free & (chances > 1)
        if not over.any():
            break
        chances[over] = 1.0
        free &= ~over
    return np.clip(chances, 0, 1)


def plan(run, budget: int, metric: str | None = None, stratify: str = "rarity_label", seed: int | None = None) -> pd.DataFrame:
    """Write the run's annotation plan from its judge (`analyze.judge_metric` unless `metric`)."""
    from ..manifest import configured_images

    metric = metric or run.config.analyze.judge_metric
    scores = SCORES.read(run.require(run.scores_path))
    images, _ = configured_images(run)
    judge = scores[scores["metric"] == metric].merge(images[KEY], on=KEY)
    if judge.empty:
        raise InputError(f"{run.scores_path} has no '{metric}' values for the run's images; run the evaluate stage "
                         "with that metric, or give another with --metric.")
    bench = load_benchmark(run.require(run.benchmark_path))
    labels = bench.set_index("id")[stratify] if stratify and stratify in bench else None
    out = plan_images(judge, labels, budget, run.config.annotate.seed if seed is None else seed)
    return ANNOTATION_PLAN.write(run.annotation_plan_path, out)
