"""Statistics of acceptance: the source, prompt-bootstrap intervals, gains, breakdowns, paired tests,
a GEE logistic model, the validity of automatic metrics against people, and failure modes.

The statistical unit is the prompt. A prompt's images (its seeds, and the same prompt under every
variant and model) are not independent, so:

- every interval comes from a bootstrap over prompts: each draw takes as many prompts as there are,
  with replacement, and keeps every image of each drawn prompt as it is (its seeds are not
  resampled again: their variation is already part of the prompt's outcome, and resampling them a
  second time would count it twice). Variants and models are paired on the same drawn prompts.
  Intervals are BCa (bias-corrected and accelerated, jackknife over prompts, as in
  `scipy.stats.bootstrap`); they estimate the population-average acceptance over prompts like
  these, not the acceptance of these particular prompts;
- where the bootstrap cannot move (a rate of 0 % or 100 %, every prompt alike) or has little to
  move (fewer than `SPARSE_PROMPTS` prompts with an accepted, or with a rejected, image), a rate's
  interval is widened to a Clopper-Pearson interval with the prompts as the units (the largest
  design effect: at the boundary the correlation of a prompt's seeds cannot be estimated);
- a relative gain whose base acceptance is 0 in more than (1 - confidence) / 2 of the draws has an
  unbounded upper limit, and the table says so;
- paired tests take the prompt as the unit: an exact sign-flip test of the per-prompt differences
  (the clustered McNemar test of Durkalski et al. 2003, without its normal approximation),
  Holm-corrected over a table's comparisons.

Every function takes tidy tables (one row per image: model, variant, id, seed, accepted) and
returns tidy tables; every estimate comes with an interval and its counts (images, prompts). None
does I/O.
"""

from __future__ import annotations

import warnings
import zlib
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd

from ..schema import ACCEPTANCE, KEY
from .ppi import ppi_acceptance, ppi_gains  # noqa: F401 - public here too: stats.ppi_acceptance

SPARSE_PROMPTS = 5  # below this many prompts with an accepted (or a rejected) image, widen to Clopper-Pearson
CI_BOOTSTRAP = "prompt bootstrap (BCa)"
CI_EXACT = "prompt bootstrap and Clopper-Pearson over prompts"  # the union: degenerate or sparse rates
CI_BONFERRONI = "difference of the two rates' intervals (Bonferroni)"
CI_PERCENTILE = "prompt bootstrap (percentile; base acceptance 0 in some draws)"


# --- where acceptance comes from ------------------------------------------------------------


@dataclass(frozen=True)
class Acceptance:
    """One row per image with `accepted` (0/1), a sentence saying where it came from, and notes
    (ties, missing values) that every report of it must carry."""

    table: pd.DataFrame
    source: str  # "human" or "judge"
    description: str  # shown on every table and figure
    notes: tuple[str, ...] = ()


def image_votes(answers: pd.DataFrame) -> pd.DataFrame:
    """The people's answers per image (the one place votes are counted): share of accept votes,
    number of votes (`annotators`: how many people answered this image), the failure tags anyone
    gave (comma-joined, sorted) and the comments (joined with " | ")."""
    frame = answers.reset_index(drop=True)
    vote = (frame["label"] == "accept").astype(float)
    codes = frame.groupby(KEY, sort=False).ngroup().to_numpy()  # numbered in order of first appearance
    table = frame[KEY].drop_duplicates().reset_index(drop=True)
    keys = table
    table["accept_share"] = np.bincount(codes, weights=vote, minlength=len(keys)) / np.bincount(codes, minlength=len(keys))
    table["annotators"] = np.bincount(codes, minlength=len(keys))
    tags = frame.get("tags", pd.Series("", index=frame.index)).fillna("").astype(str)
    split = pd.DataFrame({"image": codes, "tag": tags.str.split(",")}).explode("tag")
    split = split[split["tag"].fillna("") != ""].drop_duplicates().sort_values(["image", "tag"])
    joined = split.groupby("image")["tag"].agg(",".join)
    table["tags"] = joined.reindex(range(len(keys)), fill_value="").to_numpy()
    comments = frame.get("comment", pd.Series("", index=frame.index)).fillna("").astype(str)
    said = pd.DataFrame({"image": codes, "comment": comments})
    said = said[said["comment"] != ""]
    table["comments"] = said.groupby("image")["comment"].agg(" | ".join).reindex(range(len(keys)), fill_value="").to_numpy()
    return table


def _votes_phrase(per_image: pd.Series) -> str:
    low, high = int(per_image.min()), int(per_image.max())
    if low == high:
        return f"{low} vote{'s' if low != 1 else ''} per image"
    return f"{low}-{high} votes per image (median {per_image.median():g})"


def from_annotations(answers: pd.DataFrame) -> Acceptance:
    """Majority vote per image: accepted when more than half of the image's votes accept. A tie
    counts as a rejection; with an even number of votes per image that makes acceptance stricter
    than a majority (with two votes, unanimity), so ties are counted and reported."""
    votes = image_votes(answers)
    table = votes[KEY + ["accept_share", "annotators"]].copy()
    table["accepted"] = (table["accept_share"] > 0.5).astype(int)
    people = answers["annotator"].nunique()
    table = ACCEPTANCE.validate(table[KEY + ["accepted", "accept_share", "annotators"]], "human answers")
    ties = int((table["accept_share"] == 0.5).sum())
    phrase = _votes_phrase(table["annotators"])
    description = (f"human acceptance: majority of {phrase} ({people} annotator{'s' if people != 1 else ''}), "
                   f"{len(table)} images")
    notes = []
    if ties:
        description += f"; {ties} tied images count as rejections"
        vote_share = float((answers["label"] == "accept").mean())
        notes.append(
            f"Ties: {ties} of {len(table)} images ({ties / len(table):.1%}) have as many accept as reject votes and "
            f"count as rejections, so acceptance is stricter than a majority"
            f"{' (with 2 votes per image it means both accept)' if phrase.startswith('2 votes') else ''}: "
            f"{vote_share:.1%} of the {len(answers)} votes accept, {table['accepted'].mean():.1%} of the images are accepted.")
    return Acceptance(table, "human", description, tuple(notes))


def from_judge(scores: pd.DataFrame, metric: str, threshold: float, quantile: float | None = None) -> Acceptance:
    """Accept an image when the judge's value reaches the threshold (or the given quantile of its values).
    Images without a value (NaN) are left out, not counted as rejections; the description says how many."""
    part = scores[scores["metric"] == metric]
    if part.empty:
        known = ", ".join(sorted(scores["metric"].unique())) or "none"
        raise ValueError(f"the scores have no metric '{metric}' (they have {known}); set analyze.judge_metric to one of them")
    missing = int(part["value"].isna().sum())
    part = part[part["value"].notna()]
    if part.empty:
        raise ValueError(f"every value of the metric '{metric}' is missing; rerun the evaluate stage or choose another analyze.judge_metric")
    if quantile is not None:
        threshold = float(part["value"].quantile(quantile))
        rule = f"{metric} >= {threshold:.4g} (its {quantile:.0%} quantile)"
    else:
        rule = f"{metric} >= {threshold:g}"
    table = part[KEY].copy()
    table["accepted"] = (part["value"].to_numpy() >= threshold).astype(int)
    table = ACCEPTANCE.validate(table.reset_index(drop=True), f"judge {metric}")
    description = f"automatic acceptance: {rule}, {len(table)} images"
    notes = ()
    if missing:
        description += f" ({missing} without a {metric} value left out)"
        notes = (f"{missing} images have no {metric} value and are left out of every table (not counted as rejections).",)
    return Acceptance(table, "judge", description, notes)


# --- the prompt bootstrap (array level) --------------------------------------------------------


def rng_for(seed: int, *keys) -> np.random.Generator:
    """A generator for one group of draws: the same (seed, keys) always gives the same draws."""
    words = [int(seed) % 2**63] + [zlib.crc32(str(k).encode()) for k in keys]
    return np.random.default_rng(np.random.SeedSequence(words))


def bootstrap_draws(n_prompts: int, n_boot: int, rng: np.random.Generator, batch: tuple = ()) -> np.ndarray:
    """(*batch, n_boot, n_prompts) multiplicities (as floats): how often each prompt is drawn in each
    bootstrap sample of `n_prompts` prompts with replacement."""
    shape = (*batch, n_boot)
    rows = int(np.prod(shape))
    picks = rng.integers(0, n_prompts, size=(rows, n_prompts))
    picks += (n_prompts * np.arange(rows))[:, None]
    counts = np.bincount(picks.ravel(), minlength=rows * n_prompts).astype(float)
    return counts.reshape(*shape, n_prompts)


def _quantiles(boot: np.ndarray, q: np.ndarray, method: str = "linear") -> np.ndarray:
    """Quantile q[..., j] of boot[..., :, j] over its non-NaN draws (+inf allowed)."""
    ordered = np.sort(boot, axis=-2)  # NaN last
    count = (~np.isnan(boot)).sum(axis=-2)
    pos = np.clip(q, 0, 1) * np.maximum(count - 1, 0)
    if method == "lower":
        pos = np.floor(pos)
    elif method == "higher":
        pos = np.ceil(pos)
    lo, hi = np.floor(pos).astype(int), np.ceil(pos).astype(int)
    a = np.take_along_axis(ordered, lo[..., None, :], axis=-2)[..., 0, :]
    b = np.take_along_axis(ordered, hi[..., None, :], axis=-2)[..., 0, :]
    with np.errstate(invalid="ignore"):
        value = np.where(a == b, a, a + (b - a) * (pos - lo))
    return np.where(count > 0, value, np.nan)


def bca_interval(point: np.ndarray, boot: np.ndarray, jack: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """BCa interval per statistic, vectorised: point (..., m), boot (..., B, m) bootstrap values
    (NaN for a draw where the statistic is undefined), jack (..., P, m) leave-one-prompt-out values.
    Same bias correction and acceleration as `scipy.stats.bootstrap(method="BCa")`; where the
    acceleration is undefined it is taken as 0 (bias-corrected percentile)."""
    from scipy.special import ndtr, ndtri

    alpha = (1 - confidence) / 2
    valid = ~np.isnan(boot)
    count = valid.sum(axis=-2)
    p = point[..., None, :]
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        z0 = ndtri(((boot < p).sum(axis=-2) + (boot <= p).sum(axis=-2)) / (2 * count))
        d = np.nanmean(jack, axis=-2, keepdims=True) - jack
        accel = np.nansum(d ** 3, axis=-2) / (6 * np.nansum(d ** 2, axis=-2) ** 1.5)
        accel = np.where(np.isfinite(accel), accel, 0.0)
        z = ndtri(alpha)
        q_low = ndtr(z0 + (z0 + z) / (1 - accel * (z0 + z)))
        q_high = ndtr(z0 + (z0 - z) / (1 - accel * (z0 - z)))
    q_low = np.where(np.isfinite(q_low), q_low, alpha)
    q_high = np.where(np.isfinite(q_high), q_high, 1 - alpha)
    return _quantiles(boot, q_low), _quantiles(boot, q_high)


def clopper_pearson(rate: np.ndarray, units: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Clopper-Pearson interval of `rate` treating `units` (prompts) as the independent trials:
    rate * units successes, not necessarily a whole number."""
    from scipy.stats import beta

    alpha = (1 - confidence) / 2
    rate, units = np.asarray(rate, float), np.asarray(units, float)
    x = rate * units
    with np.errstate(invalid="ignore", divide="ignore"):
        low = np.where(x > 0, beta.ppf(alpha, np.maximum(x, 1e-12), units - x + 1), 0.0)
        high = np.where(x < units, beta.ppf(1 - alpha, x + 1, np.maximum(units - x, 1e-12)), 1.0)
    bad = ~(units > 0)
    return np.where(bad, np.nan, low), np.where(bad, np.nan, high)


def _ratio(num: np.ndarray, den: np.ndarray, weights: np.ndarray):
    """Point, bootstrap and jackknife values of ratio statistics sum(num) / sum(den) over prompts:
    num, den (..., m, P); weights (..., B, P). Returns point (..., m), boot (..., B, m), jack (..., P, m)."""
    w = np.asarray(weights, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        top, bottom = num.sum(axis=-1), den.sum(axis=-1)
        point = top / bottom
        boot_den = w @ np.ascontiguousarray(np.swapaxes(den, -1, -2))  # (a transposed view is much slower here)
        boot = np.where(boot_den > 0, (w @ np.ascontiguousarray(np.swapaxes(num, -1, -2))) / boot_den, np.nan)
        jack_den = bottom[..., None] - den
        jack = np.where(jack_den > 0, (top[..., None] - num) / jack_den, np.nan)
    return point, boot, np.swapaxes(jack, -1, -2)


def _degenerate(boot: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return ~(np.nanmax(boot, axis=-2) > np.nanmin(boot, axis=-2))


def rate_intervals(accepted: np.ndarray, images: np.ndarray, weights: np.ndarray, confidence: float = 0.95,
                   base: int | None = 0) -> dict[str, np.ndarray]:
    """Rates of variants on the same prompts, and each variant's gain over the `base` variant, with
    prompt-bootstrap intervals. Array level, vectorised over any leading batch axes.

    accepted, images: (..., V, P) accepted images and images per variant and prompt; weights:
    (..., B, P) from `bootstrap_draws` (the same draws for every variant: the gains are paired).
    Returns arrays of shape (..., V): rate, rate_low, rate_high, rate_exact (the rate's interval
    includes the Clopper-Pearson one, see the module docstring), and, when `base` is given,
    absolute (difference), absolute_low/high, absolute_bonferroni, relative ((v - base) / base),
    relative_low/high (high is +inf when unbounded) and base_zero_share (share of draws with base 0).
    """
    accepted, images = np.asarray(accepted, float), np.asarray(images, float)
    point, boot, jack = _ratio(accepted, images, weights)
    prompts = (images > 0).sum(axis=-1)
    low, high = bca_interval(point, boot, jack, confidence)
    hit = ((accepted > 0) & (images > 0)).sum(axis=-1)
    miss = ((accepted < images) & (images > 0)).sum(axis=-1)
    exact = _degenerate(boot) | (np.minimum(hit, miss) < SPARSE_PROMPTS)
    if exact.any():
        cp_low, cp_high = clopper_pearson(point, prompts, confidence)
        low, high = np.where(exact, np.fmin(low, cp_low), low), np.where(exact, np.fmax(high, cp_high), high)
    out = {"rate": point, "rate_low": low, "rate_high": high, "rate_exact": exact}
    if base is None:
        return out
    alpha = (1 - confidence) / 2
    b = slice(base, base + 1)
    # absolute gain: paired bootstrap of the difference, or the Bonferroni difference of the two rates'
    # intervals (each at 1 - alpha) when either rate needs the exact interval or the difference cannot move
    diff_point, diff_boot, diff_jack = point - point[..., b], boot - boot[..., b], jack - jack[..., b]
    d_low, d_high = bca_interval(diff_point, diff_boot, diff_jack, confidence)
    bonferroni = exact | exact[..., b] | _degenerate(diff_boot)
    if bonferroni.any():
        wide = 1 - alpha
        w_low, w_high = bca_interval(point, boot, jack, wide)
        if exact.any():
            cpw_low, cpw_high = clopper_pearson(point, prompts, wide)
            w_low, w_high = np.where(exact, np.fmin(w_low, cpw_low), w_low), np.where(exact, np.fmax(w_high, cpw_high), w_high)
        d_low = np.where(bonferroni, w_low - w_high[..., b], d_low)
        d_high = np.where(bonferroni, w_high - w_low[..., b], d_high)
    out.update(absolute=diff_point, absolute_low=d_low, absolute_high=d_high, absolute_bonferroni=bonferroni)
    # relative gain: a draw with base 0 has an infinite gain (or an undefined one when the variant is 0 too:
    # taken as -1, the lowest possible, for the lower limit and +inf for the upper)
    bb, bj = boot[..., b], jack[..., b]
    with np.errstate(invalid="ignore", divide="ignore"):
        rel_point = np.where(point[..., b] > 0, point / point[..., b] - 1, np.nan)
        rel_boot = np.where(bb > 0, boot / bb - 1, np.where(np.isnan(bb) | np.isnan(boot), np.nan,
                                                            np.where(boot > 0, np.inf, -np.inf)))
        rel_jack = np.where(bj > 0, jack / bj - 1, np.nan)
        valid = ~np.isnan(bb)
        zero_share = ((bb == 0) & valid).sum(axis=-2) / np.maximum(valid.sum(axis=-2), 1)
    finite = np.where(np.isfinite(rel_boot), rel_boot, np.nan)
    r_low, r_high = bca_interval(rel_point, finite, rel_jack, confidence)
    lower_draws = np.where(rel_boot == -np.inf, -1.0, rel_boot)
    upper_draws = np.where(rel_boot == -np.inf, np.inf, rel_boot)
    p_low = _quantiles(lower_draws, np.full(rel_point.shape, alpha), "lower")
    p_high = np.where(zero_share > alpha, np.inf, _quantiles(upper_draws, np.full(rel_point.shape, 1 - alpha), "higher"))
    any_zero = zero_share > 0
    defined = point[..., b] > 0
    out.update(relative=rel_point,
               relative_low=np.where(defined, np.where(any_zero, p_low, r_low), np.nan),
               relative_high=np.where(defined, np.where(any_zero, p_high, r_high), np.nan),
               base_zero_share=np.broadcast_to(zero_share, rel_point.shape))
    return out


# --- acceptance rates and gains ----------------------------------------------------------------


def _counts(frame: pd.DataFrame, column: str, variants: list[str], ids: list) -> tuple[np.ndarray, np.ndarray]:
    """(V, P) sums of `column` and counts of its values per variant and prompt (NaN values left out)."""
    v = pd.Index(variants).get_indexer(frame["variant"])
    k = pd.Index(ids).get_indexer(frame["id"])
    values = frame[column].to_numpy(float)
    ok = (v >= 0) & (k >= 0) & ~np.isnan(values)
    cell = v[ok] * len(ids) + k[ok]
    size = len(variants) * len(ids)
    shape = (len(variants), len(ids))
    return (np.bincount(cell, weights=values[ok], minlength=size).reshape(shape),
            np.bincount(cell, minlength=size).astype(float).reshape(shape))


def _relative_note(defined: bool, zero_share: float, alpha: float) -> str:
    if not defined:
        return "base acceptance is 0: the relative gain is undefined"
    if zero_share > alpha:
        return (f"upper limit unbounded: base acceptance is 0 in {zero_share:.1%} of the bootstrap draws "
                f"(more than {alpha:.1%}), where the relative gain is infinite")
    return ""


def _summaries(frame: pd.DataFrame, column: str, variants: list[str], weights_for, confidence: float):
    """Rates (one dict per variant) and gains over base (one dict per other variant) of `column` in
    `frame` (one group of images: one model, or one label value of one model)."""
    have = set(frame["variant"].unique())
    present = [v for v in variants if v in have]
    ids = sorted(frame["id"].unique())
    if not present or not ids:
        return [], []
    accepted, images = _counts(frame, column, present, ids)
    base = present.index("base") if "base" in present else None
    r = rate_intervals(accepted, images, weights_for(len(ids)), confidence, base)
    prompts = (images > 0).sum(axis=1)
    rates = [{"variant": v, "estimate": r["rate"][i], "ci_low": r["rate_low"][i], "ci_high": r["rate_high"][i],
              "ci_method": CI_EXACT if r["rate_exact"][i] else CI_BOOTSTRAP,
              "images": int(images[i].sum()), "prompts": int(prompts[i])} for i, v in enumerate(present)]
    gains = []
    if base is not None:
        alpha = (1 - confidence) / 2
        for i, v in enumerate(present):
            if i == base:
                continue
            defined = bool(r["rate"][base] > 0)
            method = CI_BONFERRONI if r["absolute_bonferroni"][i] else CI_BOOTSTRAP
            if defined and r["base_zero_share"][i] > 0:
                method += "; relative gain: " + CI_PERCENTILE
            gains.append({
                "variant": v, "base": rates[base], "rate": rates[i],
                "absolute_gain": r["absolute"][i], "absolute_ci_low": r["absolute_low"][i],
                "absolute_ci_high": r["absolute_high"][i],
                "relative_gain": r["relative"][i], "relative_ci_low": r["relative_low"][i],
                "relative_ci_high": r["relative_high"][i], "ci_method": method,
                "relative_ci_note": _relative_note(defined, float(r["base_zero_share"][i]), alpha),
                "images": int(images[i].sum() + images[base].sum()),
                "prompts": int(((images[i] > 0) & (images[base] > 0)).sum()),
            })
    return rates, gains


def _draws_from(seed: int, n_boot: int, *keys):
    return lambda n: bootstrap_draws(n, n_boot, rng_for(seed, *keys))


def acceptance_rates(acc: pd.DataFrame, variants: list[str], n_boot: int = 2000, confidence: float = 0.95,
                     seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Acceptance per model and variant with prompt-bootstrap intervals, and each variant's gain over `base`.

    Returns (rates, gains). rates: acceptance, ci_low, ci_high, ci_method, images, prompts. gains:
    absolute (acc_v - acc_base) and relative ((acc_v - acc_base) / acc_base, the paper's "+72 %"),
    each with a paired interval (absolute_ci_low/high, relative_ci_low/high; relative_ci_high is
    +inf when unbounded and relative_ci_note says why), the two acceptances with their intervals,
    and the images and prompts compared.
    """
    rates, gains = [], []
    for model, part in acc.groupby("model", sort=False):
        r, g = _summaries(part, "accepted", variants, _draws_from(seed, n_boot, "rates", model), confidence)
        rates += [{"model": model, **row} for row in r]
        gains += [_gain_row(model, row) for row in g]
    rates = pd.DataFrame(rates, columns=["model", "variant", "estimate", "ci_low", "ci_high", "ci_method", "images", "prompts"])
    return rates.rename(columns={"estimate": "acceptance"}), pd.DataFrame(gains, columns=GAIN_COLUMNS)


GAIN_COLUMNS = ["model", "variant", "base_acceptance", "base_acceptance_ci_low", "base_acceptance_ci_high",
                "acceptance", "acceptance_ci_low", "acceptance_ci_high", "absolute_gain", "absolute_ci_low",
                "absolute_ci_high", "relative_gain", "relative_ci_low", "relative_ci_high", "ci_method",
                "relative_ci_note", "images", "prompts"]


def _gain_row(model, row: dict) -> dict:
    base, rate = row.pop("base"), row.pop("rate")
    return {"model": model, "variant": row.pop("variant"),
            "base_acceptance": base["estimate"], "base_acceptance_ci_low": base["ci_low"],
            "base_acceptance_ci_high": base["ci_high"], "acceptance": rate["estimate"],
            "acceptance_ci_low": rate["ci_low"], "acceptance_ci_high": rate["ci_high"], **row}


# --- breakdowns by label ----------------------------------------------------------------------


LABEL_COLUMNS = ["emotional_valence", "spatial_topology", "temporal_extent", "rarity_label", "action"]


def breakdown(acc: pd.DataFrame, bench: pd.DataFrame, label: str, n_boot: int = 2000, confidence: float = 0.95,
              seed: int = 0) -> pd.DataFrame:
    """Acceptance per model, label value and variant, with its interval, and the absolute and relative
    gain over base with theirs; each cell is bootstrapped over the prompts carrying that label value.
    With few prompts per value (an action has five) the intervals are wide, as they should be."""
    merged = acc.merge(bench[["id", label]].drop_duplicates("id"), on="id", how="left")
    merged[label] = merged[label].fillna("(none)")
    variants = list(dict.fromkeys(["base", *merged["variant"]]))
    rows = []
    for (model, value), part in merged.groupby(["model", label], sort=False):
        rates, gains = _summaries(part, "accepted", variants, _draws_from(seed, n_boot, "breakdown", model, label, value),
                                  confidence)
        by_variant = {g["variant"]: g for g in gains}
        for rate in rates:
            gain = by_variant.get(rate["variant"], {})
            rows.append({"model": model, "label": label, "value": value, "variant": rate["variant"],
                         "acceptance": rate["estimate"], "ci_low": rate["ci_low"], "ci_high": rate["ci_high"],
                         "images": rate["images"], "prompts": rate["prompts"],
                         **{k: gain.get(k, np.nan) for k in ("absolute_gain", "absolute_ci_low", "absolute_ci_high",
                                                             "relative_gain", "relative_ci_low", "relative_ci_high")},
                         "ci_method": rate["ci_method"], "relative_ci_note": gain.get("relative_ci_note", "")})
    return pd.DataFrame(rows)


# --- paired comparisons ----------------------------------------------------------------------


def sign_flip_p(differences: np.ndarray) -> float:
    """Two-sided exact p-value of sum(differences) when each prompt's difference keeps or flips its
    sign with probability 1/2 (independent prompts, no effect). For integer differences (counts of
    wins minus losses per prompt) the permutation distribution is computed exactly by convolution;
    it is the clustered McNemar test of Durkalski et al. (2003) without the normal approximation."""
    from scipy.stats import binom

    d = np.abs(np.asarray(differences, float))
    d = d[d > 0]
    if not len(d):
        return 1.0
    if not np.allclose(d, np.round(d)):
        raise ValueError("sign_flip_p needs whole-number differences (wins minus losses per prompt)")
    d = np.round(d).astype(int)
    observed = abs(int(np.round(np.sum(differences))))
    dist, low = np.ones(1), 0  # distribution of the signed sum over its support low, low + 1, ...
    for magnitude, count in zip(*np.unique(d, return_counts=True)):
        kernel = np.zeros(2 * magnitude * count + 1)
        kernel[::2 * magnitude] = binom.pmf(np.arange(count + 1), count, 0.5)
        dist, low = np.convolve(dist, kernel), low - magnitude * count
    support = low + np.arange(len(dist))
    return float(min(1.0, dist[np.abs(support) >= observed].sum()))


def paired(acc: pd.DataFrame, by: str, n_boot: int = 2000, confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """For every pair of `by` values (variants within a model, or models within a variant), on the
    images both have (same prompt and seed): wins, losses, the win rate of `a` among the discordant
    pairs with its prompt-bootstrap interval (Clopper-Pearson over prompts where it cannot move, as
    for a rate), and an exact sign-flip test over prompts of the per-prompt wins minus losses
    (`p_value`), Holm-corrected over the table (`p_holm`)."""
    from statsmodels.stats.multitest import multipletests

    within = "model" if by == "variant" else "variant"
    rows = []
    for group, part in acc.groupby(within, sort=False):
        wide = part.pivot_table(index=["id", "seed"], columns=by, values="accepted")
        names = list(dict.fromkeys(part[by]))
        ids = sorted(part["id"].unique())
        codes = pd.Index(ids).get_indexer(wide.index.get_level_values("id"))
        pair_list = list(combinations(names, 2))
        if not pair_list:
            continue
        wins, losses, both = (np.zeros((len(pair_list), len(ids))) for _ in range(3))
        for k, (a, b) in enumerate(pair_list):
            x, y = wide[a].to_numpy(), wide[b].to_numpy()
            ok = ~(np.isnan(x) | np.isnan(y))
            np.add.at(wins[k], codes[ok], (x[ok] == 1) & (y[ok] == 0))
            np.add.at(losses[k], codes[ok], (x[ok] == 0) & (y[ok] == 1))
            np.add.at(both[k], codes[ok], 1)
        r = rate_intervals(wins, wins + losses, bootstrap_draws(len(ids), n_boot, rng_for(seed, "paired", by, group)),
                           confidence, base=None)
        point, low, high = r["rate"], r["rate_low"], r["rate_high"]
        for k, (a, b) in enumerate(pair_list):
            w, l_ = int(wins[k].sum()), int(losses[k].sum())
            rows.append({within: group, "a": a, "b": b, "pairs": int(both[k].sum()), "prompts": int((both[k] > 0).sum()),
                         "a_wins": w, "b_wins": l_, "win_rate_a": point[k], "win_rate_a_ci_low": low[k],
                         "win_rate_a_ci_high": high[k], "p_value": sign_flip_p(wins[k] - losses[k]),
                         "test": "exact sign-flip over prompts (clustered McNemar)"})
    table = pd.DataFrame(rows)
    if len(table):
        table["p_holm"] = multipletests(table["p_value"], method="holm")[1]
        table["significant"] = table["p_holm"] < 0.05
    return table


def win_matrix(pairs: pd.DataFrame, group_column: str, group, value: str = "win_rate_a") -> pd.DataFrame:
    """Square matrix: the row beats the column in this share of the discordant pairs (`value`
    "win_rate_a"), or the interval's limits ("win_rate_a_ci_low", "win_rate_a_ci_high"), or the
    number of pairs compared ("pairs")."""
    mirror = {"win_rate_a": "win_rate_a", "win_rate_a_ci_low": "win_rate_a_ci_high",
              "win_rate_a_ci_high": "win_rate_a_ci_low"}
    part = pairs[pairs[group_column] == group]
    names = list(dict.fromkeys(list(part["a"]) + list(part["b"])))
    matrix = pd.DataFrame(np.nan, index=names, columns=names)
    for row in part.itertuples():
        forward = getattr(row, value)
        matrix.loc[row.a, row.b] = forward
        if value in mirror:
            other = getattr(row, mirror[value])
            matrix.loc[row.b, row.a] = 1 - other if np.isfinite(other) else np.nan
        else:
            matrix.loc[row.b, row.a] = forward
    return matrix


def gee_odds_ratios(acc: pd.DataFrame, confidence: float = 0.95) -> tuple[pd.DataFrame, str]:
    """Logistic GEE of acceptance on variant (vs base) and model, prompts as clusters
    (exchangeable correlation, robust standard errors); odds ratios with Wald intervals and
    p-values, the images and prompts fitted, and a note on what was fitted."""
    import statsmodels.api as sm
    import statsmodels.formula.api as smf

    data = acc.copy()
    data["variant"] = pd.Categorical(data["variant"], categories=list(dict.fromkeys(["base", *data["variant"]])))
    terms = ["C(variant)"] if data["variant"].nunique() > 1 else []
    if data["model"].nunique() > 1:
        terms.append("C(model)")
    if not terms:
        return pd.DataFrame(), "GEE skipped: one model and one variant, nothing to compare."
    if data["accepted"].nunique() < 2:
        return pd.DataFrame(), "GEE skipped: every image has the same outcome."
    model = smf.gee(f"accepted ~ {' + '.join(terms)}", groups="id", data=data, family=sm.families.Binomial(),
                    cov_struct=sm.cov_struct.Exchangeable())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = model.fit()
    except Exception as err:  # noqa: BLE001 - separation and similar degeneracies
        return pd.DataFrame(), f"GEE did not converge ({type(err).__name__}: {err})."
    ci = fit.conf_int(alpha=1 - confidence)
    table = pd.DataFrame({"term": fit.params.index, "odds_ratio": np.exp(fit.params.values),
                          "ci_low": np.exp(ci[0].values), "ci_high": np.exp(ci[1].values), "p_value": fit.pvalues.values})
    table = table[table["term"] != "Intercept"].reset_index(drop=True)
    table["term"] = table["term"].str.replace(r"C\((\w+)\)\[T\.(.+)\]", r"\1 = \2", regex=True)
    table["images"], table["prompts"] = len(data), data["id"].nunique()
    return table, f"GEE logistic model, {data['id'].nunique()} prompt clusters, exchangeable correlation; reference: base variant"


# --- metric validity --------------------------------------------------------------------------


def _groups(values: np.ndarray):
    """Sort order, start of each run of equal values in that order, and each sorted item's run."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    new = np.r_[True, ordered[1:] != ordered[:-1]]
    return order, np.flatnonzero(new), np.cumsum(new) - 1


def weighted_auroc(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUROC of each row of `weights` (B, n): items counted with that multiplicity (ties count one half).
    With weights of one, the usual AUROC (the Mann-Whitney U over positives times negatives)."""
    order, starts, _ = _groups(np.asarray(scores, float))
    y = np.asarray(labels, float)[order]
    w = weights[:, order]
    pos = np.add.reduceat(w * y, starts, axis=1)
    neg = np.add.reduceat(w * (1 - y), starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    with np.errstate(invalid="ignore", divide="ignore"):
        return (pos * (below + 0.5 * neg)).sum(axis=1) / (pos.sum(axis=1) * neg.sum(axis=1))


def _weighted_ranks(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Mid-ranks of each item within the sample that repeats item i weights[b, i] times."""
    order, starts, run = _groups(values)
    g = np.add.reduceat(weights[:, order], starts, axis=1)
    mid = np.cumsum(g, axis=1) - g + (g + 1) / 2
    ranks = np.empty(weights.shape, dtype=float)
    ranks[:, order] = mid[:, run]
    return ranks


def weighted_spearman(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Spearman's rho of each weighted (resampled) sample: Pearson's r of its mid-ranks."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    rx, ry = _weighted_ranks(x, weights), _weighted_ranks(y, weights)
    total = weights.sum(axis=1, keepdims=True)
    rx -= (weights * rx).sum(axis=1, keepdims=True) / total
    ry -= (weights * ry).sum(axis=1, keepdims=True) / total
    with np.errstate(invalid="ignore", divide="ignore"):
        return (weights * rx * ry).sum(axis=1) / np.sqrt((weights * rx * rx).sum(axis=1) * (weights * ry * ry).sum(axis=1))


def weighted_kendall(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Kendall's tau-b of each weighted (resampled) sample, pairs of distinct copies counted, for a `y`
    with few distinct values (human acceptance shares): O(B n K) for K values of y."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    order, starts, _ = _groups(x)
    levels, level = np.unique(y[order], return_inverse=True)
    w = weights[:, order]
    before_lower = np.zeros((len(w), len(starts)))  # weight of earlier x-runs with a lower y value
    concordance = np.zeros(len(w))
    parts = []
    for k in range(len(levels)):
        h = np.add.reduceat(w * (level == k), starts, axis=1)
        parts.append(h)
    total_before = sum(np.cumsum(h, axis=1) - h for h in parts)
    for h in parts:
        before = np.cumsum(h, axis=1) - h
        higher = total_before - before_lower - before
        concordance += (h * (before_lower - higher)).sum(axis=1)
        before_lower += before
    n = w.sum(axis=1)
    pairs = n * (n - 1) / 2
    x_runs = np.add.reduceat(w, starts, axis=1)
    tied_x = (x_runs * (x_runs - 1) / 2).sum(axis=1)
    tied_y = sum((h.sum(axis=1) * (h.sum(axis=1) - 1) / 2) for h in parts)
    with np.errstate(invalid="ignore", divide="ignore"):
        return concordance / np.sqrt((pairs - tied_x) * (pairs - tied_y))


def weighted_best_f1(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(threshold, F1) maximising F1 when accepting scores >= threshold, per row of weights: the lowest
    score of a positive item (with weight) at which F1 peaks; (NaN, 0) when there is no positive."""
    scores = np.asarray(scores, float)
    order, starts, _ = _groups(scores)
    y = np.asarray(labels, float)[order]
    w = weights[:, order]
    pos = np.add.reduceat(w * y, starts, axis=1)
    every = np.add.reduceat(w, starts, axis=1)
    tp = np.cumsum(pos[:, ::-1], axis=1)[:, ::-1]
    predicted = np.cumsum(every[:, ::-1], axis=1)[:, ::-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where((tp > 0) & (pos > 0), 2 * tp / (predicted + pos.sum(axis=1, keepdims=True)), 0.0)
    best = f1.argmax(axis=1)
    value = f1[np.arange(len(f1)), best]
    threshold = np.where(value > 0, scores[order][starts][best], np.nan)
    return threshold, value


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve: the chance a random accepted image outscores a random rejected one."""
    scores = np.asarray(scores, float)
    return float(weighted_auroc(scores, np.asarray(labels, int), np.ones((1, len(scores))))[0])


def best_f1(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(threshold, F1) maximising F1 when accepting scores >= threshold."""
    scores = np.asarray(scores, float)
    threshold, value = weighted_best_f1(scores, np.asarray(labels, int), np.ones((1, len(scores))))
    return float(threshold[0]), float(value[0])


VALIDITY_STATISTICS = ("auroc", "spearman", "kendall", "best_f1", "best_f1_threshold")


MAX_SHARE_LEVELS = 64  # above this many distinct human shares, rank statistics fall back to the direct computation


class _PromptSums:
    """Sufficient statistics of one sample (x: a metric's values, accepted: 0/1, y: the share of accept
    votes, code: each item's prompt) for the prompt bootstrap of AUROC, Spearman, Kendall tau-b and the
    best F1. A bootstrap draw repeats every item of prompt k w_k times, so the pair counts these
    statistics are made of are quadratic forms w' M w in the prompt multiplicities, with P x P
    matrices M computed once: 2,000 draws cost 2,000 small quadratic forms, not 2,000 passes over
    the items. Row r of `weights` (R, P) is one draw; a row of ones is the sample itself."""

    def __init__(self, x, accepted, y, code, n_prompts: int):
        import scipy.sparse as sparse

        self.x, self.code, self.P = np.asarray(x, float), np.asarray(code), n_prompts
        n = len(self.x)
        self.order, self.starts, run = _groups(self.x)
        self.ends = np.r_[self.starts[1:], n]
        self.group = np.empty(n, dtype=int)
        self.group[self.order] = run
        self.pos = np.asarray(accepted, float) > 0.5
        self.levels, self.level = np.unique(np.asarray(y, float), return_inverse=True)
        G, P = len(self.starts), n_prompts

        def by_prompt(mask, rows=None, n_rows=P):  # sparse (n_rows, G): items of each row in each x-group
            rows = self.code if rows is None else rows
            return sparse.csr_matrix((np.ones(int(mask.sum())), (rows[mask], self.group[mask])), shape=(n_rows, G))

        self._by_prompt = by_prompt
        every = np.ones(n, dtype=bool)
        self.n_k = np.bincount(self.code, minlength=P).astype(float)
        self.pos_k = np.bincount(self.code[self.pos], minlength=P).astype(float)
        below, equal = self._below_equal(every)
        below_neg, equal_neg = self._below_equal(~self.pos)
        # AUROC: positive i beats negative j (half on ties)
        self.auroc_matrix = by_prompt(self.pos) @ (below_neg + 0.5 * equal_neg)
        # ties in x: sizes of the x-groups; a group of one item has size w_k in a draw
        sizes = equal.sum(axis=1)
        self.single_k = equal[sizes == 1].sum(axis=0)
        self.multi_t = np.ascontiguousarray(equal[sizes > 1].T)  # (P, groups of several items)
        # best F1: candidate thresholds are the x-groups holding a positive (raising a threshold past
        # negatives only never lowers F1); items at or above each candidate, all and positive
        candidates = (equal - equal_neg).sum(axis=1) > 0
        self.thresholds = self.x[self.order][self.starts][candidates]
        self.above_t = np.ascontiguousarray((self.n_k - below[candidates]).T, dtype=np.float32)  # (P, candidates)
        self.above_pos_t = np.ascontiguousarray((self.pos_k - (below - below_neg)[candidates]).T, dtype=np.float32)
        self.few_levels = len(self.levels) <= MAX_SHARE_LEVELS
        if not self.few_levels:
            return
        K = len(self.levels)
        self.level_k = np.zeros((K, P))
        np.add.at(self.level_k, (self.level, self.code), 1)
        # Spearman: x's mid-rank of item i in a draw is sum_l w_l (below_l + equal_l / 2) + 1/2
        ranks = below + 0.5 * equal
        self.spearman = (by_prompt(every, self.level * P + self.code, K * P) @ ranks).reshape(K, P, P)
        # Kendall: pairs of a higher-share item i and a lower-share j count sign(x_i - x_j)
        self.kendall = np.zeros((P, P))
        for m in range(1, K):
            lower = self.level < m
            below_l, equal_l = self._below_equal(lower)
            total_l = np.bincount(self.code[lower], minlength=P)
            self.kendall += by_prompt(self.level == m) @ (2 * below_l + equal_l - total_l)

    def _below_equal(self, mask):
        """(G, P): items of `mask` of each prompt strictly below each x-group, and inside it."""
        n = len(self.x)
        onehot = np.zeros((n + 1, self.P), dtype=np.float32)  # counts below 2**24 are exact in float32
        sorted_mask = mask[self.order]
        onehot[1 + np.flatnonzero(sorted_mask), self.code[self.order][sorted_mask]] = 1
        cum = np.cumsum(onehot, axis=0, out=onehot)
        below = cum[self.starts].astype(float)
        return below, cum[self.ends].astype(float) - below

    def statistics(self, weights: np.ndarray) -> np.ndarray:
        """(R, 5) VALIDITY_STATISTICS, one row per row of prompt multiplicities `weights` (R, P)."""
        w = np.asarray(weights, float)

        def quad(m):
            return ((w @ m) * w).sum(axis=1)

        n = w @ self.n_k
        pos = w @ self.pos_k
        with np.errstate(invalid="ignore", divide="ignore"):
            auroc = quad(self.auroc_matrix) / (pos * (n - pos))
            multi = w @ self.multi_t
            ties2 = (w ** 2) @ self.single_k + (multi ** 2).sum(axis=1)
            ties3 = (w ** 3) @ self.single_k + (multi ** 3).sum(axis=1)
            if self.few_levels:
                t_y = w @ np.ascontiguousarray(self.level_k.T)
                mean = (n + 1) / 2
                squares = n * (n + 1) * (2 * n + 1) / 6
                rank_y = np.cumsum(t_y, axis=1) - t_y + (t_y + 1) / 2
                sxy = sum(rank_y[:, m] * (quad(self.spearman[m]) + 0.5 * t_y[:, m]) for m in range(len(self.levels)))
                vx = (squares - (ties3 - n) / 12) / n - mean ** 2
                vy = (squares - ((t_y ** 3).sum(axis=1) - n) / 12) / n - mean ** 2
                spearman = (sxy / n - mean ** 2) / np.sqrt(vx * vy)
                pairs = n * (n - 1) / 2
                kendall = quad(self.kendall) / np.sqrt((pairs - (ties2 - n) / 2) * (pairs - ((t_y ** 2).sum(axis=1) - n) / 2))
            else:
                spearman, kendall = self._direct_ranks(w)
        f1, threshold = np.zeros(len(w)), np.full(len(w), np.nan)
        w32 = w.astype(np.float32)
        step = max(1, int(4_000_000 // max(len(self.thresholds), 1)))
        for start in range(0, len(w), step):
            part = w32[start:start + step]
            if not len(self.thresholds):
                break
            tp = part @ self.above_pos_t  # positives at or above each candidate, per draw
            score = part @ self.above_t
            score += pos[start:start + step, None].astype(np.float32)
            with np.errstate(invalid="ignore", divide="ignore"):
                np.divide(tp, score, out=score)  # F1 / 2
            drawn = np.empty(tp.shape, dtype=bool)  # the candidate's own positives were drawn
            np.greater(tp[:, :-1], tp[:, 1:], out=drawn[:, :-1])
            np.greater(tp[:, -1], 0, out=drawn[:, -1])
            score *= drawn
            best = score.argmax(axis=1)
            rows = w[start:start + step]  # the chosen candidate's F1 again in double precision
            tp_best = (rows * self.above_pos_t[:, best].T).sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                value = np.where(score[np.arange(len(part)), best] > 0,
                                 2 * tp_best / ((rows * self.above_t[:, best].T).sum(axis=1) + pos[start:start + step]), 0.0)
            f1[start:start + step] = value
            threshold[start:start + step] = np.where(value > 0, self.thresholds[best], np.nan)
        return np.column_stack([auroc, spearman, kendall, f1, threshold])

    def _direct_ranks(self, w: np.ndarray):
        y = self.levels[self.level]
        out = np.empty((2, len(w)))
        step = max(1, int(2_000_000 // max(len(self.x), 1)))
        for start in range(0, len(w), step):
            items = w[start:start + step][:, self.code]
            out[0, start:start + step] = weighted_spearman(self.x, y, items)
            out[1, start:start + step] = weighted_kendall(self.x, y, items)
        return out


def _validity(value: np.ndarray, accepted: np.ndarray, share: np.ndarray, draws: np.ndarray, code: np.ndarray) -> np.ndarray:
    """(1 + B, 5) statistics of VALIDITY_STATISTICS: the sample's own, then one row per bootstrap
    draw (`draws`: (B, P) prompt multiplicities; `code`: each item's prompt)."""
    sums = _PromptSums(value, accepted, share, code, draws.shape[1])
    return sums.statistics(np.vstack([np.ones((1, draws.shape[1])), draws]))


def metric_validity(scores: pd.DataFrame, human: pd.DataFrame, n_boot: int = 2000, confidence: float = 0.95,
                    seed: int = 0) -> pd.DataFrame:
    """How well each automatic metric agrees with human acceptance, per image (AUROC against the
    majority vote; Spearman and Kendall tau-b against the share of accept votes; the best F1 and its
    threshold) and per prompt of each model and variant (images averaged). Each statistic has a
    prompt-bootstrap interval (all images of a drawn prompt, across models and variants, enter
    together; percentile intervals, as the best F1 and its threshold are maxima, not smooth
    statistics). The draws are computed exactly, from per-prompt pair counts (`_PromptSums`)."""
    alpha = (1 - confidence) / 2
    rows = []
    for metric, part in scores.groupby("metric", sort=False):
        merged = part.dropna(subset=["value"]).merge(human[KEY + ["accepted", "accept_share"]], on=KEY)
        if len(merged) < 3 or merged["value"].nunique() < 2:
            continue
        ids = sorted(merged["id"].unique())
        draws = bootstrap_draws(len(ids), n_boot, rng_for(seed, "validity", metric))
        code = pd.Index(ids).get_indexer(merged["id"])
        value, accepted, share = (merged[c].to_numpy(float) for c in ("value", "accepted", "accept_share"))
        image = _validity(value, accepted, share, draws, code)
        prompt = merged.groupby(["model", "variant", "id"]).agg(value=("value", "mean"), share=("accept_share", "mean")).reset_index()
        pcode = pd.Index(ids).get_indexer(prompt["id"])
        pvalue, pshare = prompt["value"].to_numpy(float), prompt["share"].to_numpy(float)
        at_prompt = _validity(pvalue, (pshare > 0.5).astype(float), pshare, draws, pcode)[:, :3]
        row = {"metric": metric, "images": len(merged), "prompts": len(ids), "prompt_rows": len(prompt)}
        for prefix, stats_, names in (("", image, VALIDITY_STATISTICS), ("prompt_", at_prompt, VALIDITY_STATISTICS[:3])):
            for j, name in enumerate(names):
                draws_j = stats_[1:, j]
                draws_j = draws_j[np.isfinite(draws_j)]
                low, high = (np.quantile(draws_j, [alpha, 1 - alpha]) if len(draws_j) else (np.nan, np.nan))
                row.update({f"{prefix}{name}": stats_[0, j], f"{prefix}{name}_ci_low": low, f"{prefix}{name}_ci_high": high})
        rows.append(row)
    return pd.DataFrame(rows)


# --- failure modes ----------------------------------------------------------------------------

FAILURE_MODES = ("missing agent", "agents fused", "role reversal", "wrong action", "wrong context", "incomplete action")
FAILURE_COLUMNS = ["model", "variant", "mode", "share", "ci_low", "ci_high", "images", "prompts", "change_vs_base",
                   "change_vs_base_ci_low", "change_vs_base_ci_high", "ci_method"]


def failure_shares(flags: pd.DataFrame, modes, n_boot: int = 2000, confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Share of images per model and variant showing each failure mode (`flags`: one row per image,
    one 0/1 column per mode), with prompt-bootstrap intervals, and its change against base
    (percentage points, paired on the prompts) with intervals."""
    variants = list(dict.fromkeys(["base", *flags["variant"]]))
    rows = []
    for model, part in flags.groupby("model", sort=False):
        for m, mode in enumerate(modes):
            column = part.assign(_flag=part[mode].astype(float))
            rates, gains = _summaries(column, "_flag", variants, _draws_from(seed, n_boot, "failures", model, mode), confidence)
            change = {g["variant"]: g for g in gains}
            for rate in rates:
                g = change.get(rate["variant"], {})
                rows.append({"model": model, "variant": rate["variant"], "mode": mode, "share": rate["estimate"],
                             "ci_low": rate["ci_low"], "ci_high": rate["ci_high"], "images": rate["images"],
                             "prompts": rate["prompts"], "change_vs_base": g.get("absolute_gain", np.nan),
                             "change_vs_base_ci_low": g.get("absolute_ci_low", np.nan),
                             "change_vs_base_ci_high": g.get("absolute_ci_high", np.nan),
                             "ci_method": rate["ci_method"], "_order": (variants.index(rate["variant"]), m)})
    table = pd.DataFrame(rows, columns=FAILURE_COLUMNS + ["_order"])
    table["_model"] = table["model"].map({name: i for i, name in enumerate(dict.fromkeys(flags["model"]))})
    table = table.sort_values(["_model", "_order"], kind="stable", ignore_index=True)
    return table.drop(columns=["_model", "_order"])


def failures_from_tags(answers: pd.DataFrame, n_boot: int = 2000, confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Share of images per model and variant where any annotator tagged each failure mode, with intervals."""
    votes = image_votes(answers)
    per_image = votes["tags"].str.split(",").apply(set)
    flags = votes[KEY].copy()
    for mode in FAILURE_MODES:
        flags[mode] = [mode in tags for tags in per_image]
    return failure_shares(flags, FAILURE_MODES, n_boot, confidence, seed)


VQA_PARTS = ("vqa_agent1", "vqa_agent2", "vqa_action", "vqa_reversed")


def failures_from_vqa(scores: pd.DataFrame, threshold: float = 0.5, quantile: float | None = None, n_boot: int = 2000,
                      confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Failure modes read from the VQA decomposition: a missing agent (either agent question below the
    threshold), a wrong action (agents there, action question below), a role reversal (the reversed
    question above the stated one, with both agents there); with intervals. Empty without the
    decomposition's four scores."""
    wide, _ = vqa_failure_table(scores, threshold, quantile)
    if wide is None:
        return pd.DataFrame(columns=FAILURE_COLUMNS)
    return failure_shares(wide, ("missing agent", "wrong action", "role reversal"), n_boot, confidence, seed)


def vqa_failure_table(scores: pd.DataFrame, threshold: float = 0.5, quantile: float | None = None):
    """(one row per image with the decomposition's values and a True/False column per failure mode,
    the cut of each question), or (None, None) without the decomposition: the rules, in one place."""
    for prefix in ("", "api_"):  # the local judge's VQAScore, or the served judge's (another reading, another name)
        vqa = scores[scores["metric"].isin([prefix + m for m in VQA_PARTS])]
        if not vqa.empty and set(vqa["metric"]) == {prefix + m for m in VQA_PARTS}:
            break
    else:
        return None, None
    vqa = vqa.assign(metric=vqa["metric"].str.removeprefix(prefix))
    wide = vqa.pivot_table(index=KEY, columns="metric", values="value").reset_index().dropna(subset=list(VQA_PARTS))
    cut = {m: (float(wide[m].quantile(quantile)) if quantile is not None else threshold)
           for m in ("vqa_agent1", "vqa_agent2", "vqa_action")}
    agents = (wide["vqa_agent1"] >= cut["vqa_agent1"]) & (wide["vqa_agent2"] >= cut["vqa_agent2"])
    wide["missing agent"] = ~agents
    wide["wrong action"] = agents & (wide["vqa_action"] < cut["vqa_action"])
    wide["role reversal"] = agents & (wide["vqa_reversed"] > wide["vqa_action"])
    return wide, cut


GEOMETRY_PARTS = ("geo_agents", "geo_iou", "geo_topology")


def failures_from_geometry(scores: pd.DataFrame, fused_iou: float = 0.7, n_boot: int = 2000, confidence: float = 0.95,
                           seed: int = 0) -> pd.DataFrame:
    """Failure modes read from the detector's boxes: a missing agent (fewer than two agents found),
    agents fused (both found, their best boxes overlapping by more than `fused_iou`), no contact
    (the gap between the boxes does not fit the prompt's spatial topology); shares of all images,
    with intervals. Empty without the geometry metrics."""
    wide = geometry_failure_table(scores, fused_iou)
    if wide is None:
        return pd.DataFrame(columns=FAILURE_COLUMNS)
    return failure_shares(wide, GEOMETRY_MODES, n_boot, confidence, seed)


GEOMETRY_MODES = ("missing agent (detector)", "agents fused", "no contact")


def geometry_failure_table(scores: pd.DataFrame, fused_iou: float = 0.7) -> pd.DataFrame | None:
    """One row per image with the geometry values and a True/False column per failure mode, or None
    without the geometry metrics: the rules, in one place."""
    geo = scores[scores["metric"].isin(GEOMETRY_PARTS)]
    if geo.empty or "geo_agents" not in set(geo["metric"]):
        return None
    wide = geo.pivot_table(index=KEY, columns="metric", values="value").reset_index()
    for column in GEOMETRY_PARTS:
        if column not in wide:
            wide[column] = np.nan
    modes = {"missing agent (detector)": wide["geo_agents"] < 2,
             "agents fused": (wide["geo_agents"] == 2) & (wide["geo_iou"] > fused_iou),
             "no contact": wide["geo_topology"] == 0}
    for name, flag in modes.items():
        wide[name] = flag.fillna(False).astype(bool)
    return wide


def failure_shift(failures: pd.DataFrame) -> pd.DataFrame:
    """How each variant changes each failure mode's share relative to base (percentage points, with
    the paired interval computed by `failure_shares`)."""
    return failures[failures["variant"] != "base"].reset_index(drop=True)
