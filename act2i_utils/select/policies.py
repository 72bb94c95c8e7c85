"""Selection policies: which rewrite (and image) a judge picks for each prompt. Pure functions on tables.

The input is a candidates table (`schema.SELECT_CANDIDATES`): one row per candidate image (model,
id, variant, dimension, sample, seed, value), where `variant` names a *configuration*: a variant of
the profile (`base`, `temporal`, ...) or a rewrite sample of one (`temporal.s1`, see
`sample_variant`), and `value` is the selection judge's value (higher is better; a missing value
ranks below every other). Each policy returns one row per (model, id): the configuration it chose,
its score, the runner-up and every candidate's score, and the seeds it looked at.

| policy | chooses | from | honest for the selection judge |
|---|---|---|---|
| `best_of_all` | one image | every configuration x seed | never: the winner's own score chose it (winner's curse) |
| `best_dimension` | a configuration (dimension or rewrite sample) | its mean over the selection seeds | on held-out seeds |
| `per_label` | a dimension per label value (emotional valence, spatial topology or temporal extent) | the other folds' prompts (cross-fitting) | always: no prompt's own outcome chooses for it |

Ties go to the earlier configuration in `order` (the profile's variant order, `base` first), then
the earlier seed: the same tables always give the same choices.
"""

from __future__ import annotations

import hashlib
import json
import math
import re

import numpy as np
import pandas as pd

SAMPLE_VARIANT = re.compile(r"^(?P<dimension>.+)\.s(?P<sample>[1-9][0-9]*)$")
PROMPT = ["model", "id"]


def sample_variant(dimension: str, sample: int) -> str:
    """The manifest variant of rewrite sample `sample` of a dimension: `temporal.s1` (sample 0 is `temporal`)."""
    return dimension if sample == 0 else f"{dimension}.s{sample}"


def parse_variant(variant: str) -> tuple[str, int]:
    """(dimension, sample) of a candidate variant: `temporal.s2` -> ("temporal", 2), `base` -> ("base", 0)."""
    match = SAMPLE_VARIANT.match(variant)
    return (match["dimension"], int(match["sample"])) if match else (variant, 0)


def is_sample_variant(variant: str) -> bool:
    return SAMPLE_VARIANT.match(variant) is not None


def _ranked(scores: dict[str, float], order: list[str]) -> list[str]:
    """Configurations best first; a missing score ranks last; ties keep `order`."""
    position = {v: i for i, v in enumerate(order)}

    def key(v):
        s = scores[v]
        return (0 if s == s else 1, -(s if s == s else 0.0), position.get(v, len(order)), v)

    return sorted(scores, key=key)


def _order(cands: pd.DataFrame, order: list[str] | None) -> list[str]:
    return list(order) if order else list(dict.fromkeys(cands["variant"]))


def _json(scores: dict) -> str:
    return json.dumps({k: (None if v != v else round(float(v), 6)) for k, v in scores.items()})


def _choice(model, prompt_id, policy, scores: dict[str, float], order: list[str], seeds: list[int], **extra) -> dict:
    position = {v: i for i, v in enumerate(order)}
    scores = {v: scores[v] for v in sorted(scores, key=lambda v: (position.get(v, len(order)), v))}
    ranked = _ranked(scores, order)
    best = ranked[0]
    runner = ranked[1] if len(ranked) > 1 else None
    return {"model": model, "id": prompt_id, "policy": policy, "chosen_variant": best, "score": scores[best],
            "runner_up": None if runner is None else f"{runner} ({scores[runner]:.4g})",
            "candidates": _json(scores), "seeds_seen": json.dumps([int(s) for s in seeds]), **extra}


def best_of_all(cands: pd.DataFrame, seeds: list[int], order: list[str] | None = None) -> pd.DataFrame:
    """Per prompt, the one image with the highest value among every configuration on `seeds`.

    Returns model, id, policy, chosen_variant, chosen_seed, score, runner_up, candidates (each
    configuration's best value, JSON) and seeds_seen.
    """
    order = _order(cands, order)
    seed_pos = {s: i for i, s in enumerate(seeds)}
    part = cands[cands["seed"].isin(seeds)]
    rows = []
    for (model, pid), group in part.groupby(PROMPT, sort=False):
        best_per_config = {}
        for variant in [v for v in order if v in set(group["variant"])]:
            mine = group[group["variant"] == variant]
            values = mine["value"].astype(float).to_numpy()
            pick = _first_best(values, [seed_pos[s] for s in mine["seed"]])
            best_per_config[variant] = (values[pick], int(mine["seed"].iloc[pick]))
        scores = {v: s for v, (s, _) in best_per_config.items()}
        row = _choice(model, pid, "best_of_all", scores, order, seeds)
        row["chosen_seed"] = best_per_config[row["chosen_variant"]][1]
        rows.append(row)
    return pd.DataFrame(rows)


def _first_best(values: np.ndarray, positions: list[int]) -> int:
    """Index of the highest value (missing ones last), the earliest position among ties."""
    best = None
    for i, (v, p) in enumerate(zip(values, positions)):
        key = (0 if v == v else 1, -(v if v == v else 0.0), p)
        if best is None or key < best[0]:
            best = (key, i)
    return best[1]


def config_means(cands: pd.DataFrame, seeds: list[int]) -> pd.DataFrame:
    """Mean value of each (model, id, configuration) over `seeds` (missing values left out; NaN if none)."""
    part = cands[cands["seed"].isin(seeds)]
    return part.groupby(PROMPT + ["variant"], sort=False)["value"].mean().rename("mean").reset_index()


def best_dimension(cands: pd.DataFrame, seeds: list[int], order: list[str] | None = None) -> pd.DataFrame:
    """Per prompt, the configuration (dimension, or rewrite sample) with the highest mean value over `seeds`.

    Returns model, id, policy, chosen_variant, score (that mean), runner_up, candidates, seeds_seen.
    """
    order = _order(cands, order)
    means = config_means(cands, seeds)
    rows = []
    for (model, pid), group in means.groupby(PROMPT, sort=False):
        scores = dict(zip(group["variant"], group["mean"].astype(float)))
        rows.append(_choice(model, pid, "best_dimension", scores, order, seeds))
    return pd.DataFrame(rows)


def folds_for(ids: list[str], n_folds: int, seed: int = 0) -> dict[str, int]:
    """Prompt id -> fold in 0..n_folds-1: ids ranked by a hash of (seed, id), dealt round-robin.

    Balanced (fold sizes differ by at most one), deterministic, and unrelated to any outcome.
    """
    ranked = sorted(dict.fromkeys(ids), key=lambda i: hashlib.sha256(f"{seed}:{i}".encode()).hexdigest())
    return {pid: n % n_folds for n, pid in enumerate(ranked)}


def dimension_means(cands: pd.DataFrame, seeds: list[int]) -> pd.DataFrame:
    """Mean value of each (model, id, dimension) over its rewrite samples and `seeds`: a dimension's
    expected value for a prompt (samples are exchangeable draws of the same rewrite instruction)."""
    part = cands[cands["seed"].isin(seeds)]
    return part.groupby(PROMPT + ["dimension"], sort=False)["value"].mean().rename("mean").reset_index()


def learn_rule(train: pd.DataFrame, labels: pd.DataFrame, columns: list[str], dimensions: list[str]) -> dict:
    """Which dimension to use for each value of a label, learned from `train` alone.

    `train`: id, dimension, mean (one model's training prompts); `labels`: id and the label columns.
    For each label column, each of its values gets the dimension with the highest mean over the
    training prompts that have that value; the column kept is the one whose rule does best on those
    same training prompts (ties: the earlier column). A value the training prompts lack, or a
    missing label, gets the best dimension overall. Returns {"column", "rule", "fallback", "fit"}.
    """
    wide = train.pivot_table(index="id", columns="dimension", values="mean", aggfunc="mean", sort=False)
    wide = wide.reindex(columns=[d for d in dimensions if d in wide.columns])
    overall = _ranked(wide.mean().to_dict(), dimensions)[0]
    lab = labels.set_index("id").reindex(wide.index)
    best = None
    for column in columns:
        values = lab[column] if column in lab else pd.Series(None, index=wide.index, dtype=object)
        rule = {}
        for value, idx in wide.groupby(values.fillna("\0").to_numpy(), sort=False).groups.items():
            if value == "\0":
                continue
            rule[value] = _ranked(wide.loc[idx].mean().to_dict(), dimensions)[0]
        picks = [rule.get(v, overall) if isinstance(v, str) else overall for v in values]
        fit = float(np.nanmean([wide.at[i, d] for i, d in zip(wide.index, picks)])) if len(picks) else float("nan")
        if best is None or fit > best["fit"]:
            best = {"column": column, "rule": rule, "fallback": overall, "fit": fit}
    return best


def per_label(cands: pd.DataFrame, bench: pd.DataFrame, seeds: list[int], *, labels: list[str], n_folds: int = 5,
              seed: int = 0, order: list[str] | None = None) -> pd.DataFrame:
    """Per prompt, the dimension a per-label rule picks, the rule learned on the *other* folds' prompts.

    Cross-fitting: prompts are dealt into `n_folds` folds (`folds_for`); a prompt's rule is learned
    from the prompts of the other folds only (their values on `seeds`), so no prompt's own outcome
    takes part in its choice, and any judge may evaluate the result on any seed. One rule per model.
    Returns model, id, policy, chosen_variant (the dimension's sample-0 variant), score (the training
    prompts' mean for the chosen dimension and this label value), runner_up, candidates (the training
    means of every dimension for this prompt's label value), seeds_seen, fold and rule.
    """
    order = _order(cands, order)
    dimensions = list(dict.fromkeys(parse_variant(v)[0] for v in order))
    means = dimension_means(cands, seeds)
    label_table = bench[["id", *[c for c in labels if c in bench]]].copy()
    rows = []
    for model, group in means.groupby("model", sort=False):
        ids = list(dict.fromkeys(group["id"]))
        folds = folds_for(ids, n_folds, seed)
        if len(set(folds.values())) < 2:
            raise ValueError(f"per_label needs prompts in at least two folds; {model} has {len(ids)} prompt(s)")
        lab = label_table.set_index("id")
        for fold in sorted(set(folds.values())):
            train_ids = [i for i in ids if folds[i] != fold]
            train = group[group["id"].isin(train_ids)]
            learned = learn_rule(train, label_table[label_table["id"].isin(train_ids)], labels, dimensions)
            column, rule = learned["column"], learned["rule"]
            wide = train.pivot_table(index="id", columns="dimension", values="mean", aggfunc="mean", sort=False)
            train_labels = lab.reindex(wide.index)[column] if column in lab else pd.Series(None, index=wide.index)
            for pid in [i for i in ids if folds[i] == fold]:
                value = lab.at[pid, column] if (column in lab and pid in lab.index) else None
                value = value if isinstance(value, str) else None
                if value in rule:
                    same = wide[(train_labels == value).to_numpy()]
                    scores = same.mean().to_dict()
                    text = f"{column} = {value} -> {rule[value]}"
                else:
                    scores = wide.mean().to_dict()
                    text = f"{column} = {value or 'missing'} (not in the training prompts) -> {learned['fallback']}"
                scores = {d: float(scores.get(d, float("nan"))) for d in dimensions if d in scores}
                row = _choice(model, pid, "per_label", scores, dimensions, seeds, fold=fold,
                              rule=f"{text}; learned on the {len(train_ids)} prompts outside fold {fold}")
                row["chosen_variant"] = rule.get(value, learned["fallback"]) if value else learned["fallback"]
                row["score"] = scores.get(row["chosen_variant"], float("nan"))
                rows.append(row)
    return pd.DataFrame(rows)


def choose(policy: str, cands: pd.DataFrame, bench: pd.DataFrame, seeds: list[int], *, order: list[str],
           labels: list[str], n_folds: int, seed: int) -> pd.DataFrame:
    """Run one policy by name on the candidates' values on `seeds`."""
    if policy == "best_of_all":
        return best_of_all(cands, seeds, order)
    if policy == "best_dimension":
        return best_dimension(cands, seeds, order)
    if policy == "per_label":
        return per_label(cands, bench, seeds, labels=labels, n_folds=n_folds, seed=seed, order=order)
    raise ValueError(f"unknown selection policy '{policy}'")


# --- the expected outcome of a budget (the cost curve) ------------------------------------------


def expected_best(scores: np.ndarray, outcomes: np.ndarray, rewrites: int) -> float:
    """Expected outcome of the configuration a judge picks from the base (index 0) plus `rewrites - 1`
    others drawn uniformly without replacement, exactly (no sampling).

    `scores` rank the configurations (higher first; NaN last; ties to the lower index, so the base
    wins a tie); `outcomes` are what each choice yields. A configuration j beats the base and every
    drawn one when all of them rank below it: P(j) = C(a_j, r-2) / C(m, r-1), with a_j the others
    ranked below j and m the others in all; the base is kept with C(a_base, r-1) / C(m, r-1).
    """
    m = len(scores) - 1
    r = min(max(int(rewrites), 1), m + 1)
    keys = [(0 if s == s else 1, -(s if s == s else 0.0), i) for i, s in enumerate(scores)]
    rank = {i: n for n, i in enumerate(sorted(range(len(scores)), key=lambda i: keys[i]))}
    below = lambda j: sum(1 for i in range(1, m + 1) if i != j and rank[i] > rank[j])  # noqa: E731
    total = math.comb(m, r - 1)
    value = outcomes[0] * math.comb(below(0), r - 1) / total
    if r >= 2:
        for j in range(1, m + 1):
            if rank[j] < rank[0]:
                value += outcomes[j] * math.comb(below(j), r - 2) / total
    return float(value)
