"""Honest evaluation of selected variants, and the cost curve. Pure functions: tables in, tables out.

A candidate a judge picked looks better to that judge than it is (the winner's curse: among many
images, the highest score is partly luck, or a way of fooling the judge). So a selected image may
be evaluated by its own selection judge only when its own outcome took no part in choosing it: a
held-out seed (the choice was made on other seeds), or a cross-fitted choice (made from other
prompts). Otherwise only another judge or people may evaluate it. "Another judge" means another
model: `soft_tifa_gm` and `vqa` are one VQA model read two ways, `clipscore` and `action_top1` one
CLIP model (`judge_family`).

- `honest_acceptance`: the acceptance table without the selected images the evaluator may not judge.
- `honest_comparison`: acceptance of each selected variant against base and each fixed variant,
  paired on prompts, with prompt-bootstrap intervals, saying which judge selected and which
  evaluated; it refuses (InputError, one sentence) a selected variant evaluated only by its own
  selection judge on the images it was chosen from.
- `cost_curve` / `cost_curve_figure`: the gain as a function of the number of candidates (k
  rewrites x s seeds), exact over which rewrites and seeds a budget draws, with intervals.
"""

from __future__ import annotations

import re
import warnings
import zlib
from itertools import combinations

import numpy as np
import pandas as pd

from ..errors import InputError
from ..schema import KEY, SELECT_COST_CURVE
from .policies import expected_best, is_sample_variant

SELECTED = re.compile(r"^selected(_.+)?$")
CI_BCA = "prompt bootstrap (BCa)"
CI_PERCENTILE = "prompt bootstrap (percentile)"
HUMAN = "human"

# metric -> the judge (model) that produces it; metrics of one model share its blind spots
FAMILIES = (
    (re.compile(r"^((api_)?vqa(_.*)?|soft_tifa_.*)$"), "VQA judge (evaluate.vqa_model or vlm_api_model)"),
    (re.compile(r"^(clipscore|action_.*)$"), "CLIP (evaluate.clip_model)"),
    (re.compile(r"^(det_.*|geo_.*)$"), "detector (evaluate.detector_model)"),
    (re.compile(r"^ref_.*$"), "reference similarity (evaluate.reference_model)"),
    (re.compile(r"^pickscore$"), "PickScore (evaluate.pickscore_model)"),
)


def judge_family(metric: str) -> str:
    """The model behind a metric ("human" for people): two metrics of one family are one judge."""
    if metric == HUMAN:
        return HUMAN
    for pattern, family in FAMILIES:
        if pattern.match(metric):
            return family
    return metric


def same_judge(evaluator: str, selection_metric: str) -> bool:
    return evaluator != HUMAN and judge_family(evaluator) == judge_family(selection_metric)


def is_selected(variant: str) -> bool:
    return SELECTED.match(str(variant)) is not None


def _selection_metric(selection: pd.DataFrame, selection_metric: str | None) -> str:
    if selection_metric:
        return selection_metric
    metrics = sorted(set(selection["metric"].dropna()))
    if len(metrics) != 1:
        raise InputError(f"the selection table names {len(metrics)} selection metrics ({', '.join(metrics) or 'none'}); "
                         "pass selection_metric.")
    return metrics[0]


def _by(metric: str, judge=None) -> str:
    return f"{metric} ({judge})" if isinstance(judge, str) and judge else metric


def usable(selection: pd.DataFrame, evaluator: str, selection_metric: str | None = None) -> pd.Series:
    """Per selection row: may `evaluator` ("human" or a metric) judge this image honestly?"""
    metric = _selection_metric(selection, selection_metric)
    if not same_judge(evaluator, metric):
        return pd.Series(True, index=selection.index)
    return selection["honest"].astype(bool)


def reportable(selection: pd.DataFrame, evaluator: str, selection_metric: str | None = None) -> dict[str, str | None]:
    """Selected variant -> None when `evaluator` may report it (on some of its images), else the sentence refusing it."""
    metric = _selection_metric(selection, selection_metric)
    ok = usable(selection, evaluator, metric)
    out = {}
    for variant, rows in selection.groupby("variant", sort=False):
        if ok[rows.index].any():
            out[variant] = None
        else:
            policy = rows["policy"].iloc[0]
            out[variant] = (
                f"The variant '{variant}' ({policy}) was chosen by {metric} and would be evaluated only by the same judge "
                f"({judge_family(metric)}, here {evaluator}) on the images it was chosen from, which rewards the winner's "
                "luck; evaluate it with another judge (analyze.judge_metric) or people, or hold out seeds "
                "(select.selection_seeds a subset of generate.seeds)."
            )
    return out


def honest_acceptance(acceptance: pd.DataFrame, selection: pd.DataFrame, evaluator: str,
                      selection_metric: str | None = None) -> tuple[pd.DataFrame, list[str]]:
    """The acceptance table with only the selected images `evaluator` may judge, and notes saying
    what was left out (feed this, not the raw table, to any statistic of a selected variant)."""
    if selection.empty:
        return acceptance[~acceptance["variant"].map(is_selected)].reset_index(drop=True), []
    metric = _selection_metric(selection, selection_metric)
    ok = usable(selection, evaluator, metric)
    allowed = selection.loc[ok, KEY]
    selected_rows = acceptance["variant"].map(is_selected)
    kept_selected = acceptance[selected_rows].merge(allowed, on=KEY, how="inner")
    out = pd.concat([acceptance[~selected_rows], kept_selected], ignore_index=True)
    notes = []
    for variant, sentence in reportable(selection, evaluator, metric).items():
        n_all = int((acceptance["variant"] == variant).sum())
        n_kept = int((kept_selected["variant"] == variant).sum())
        if sentence:
            notes.append(sentence)
        elif n_kept < n_all:
            notes.append(f"'{variant}': {n_all - n_kept} of {n_all} images left out: they were chosen by {metric} on their "
                         f"own scores and {evaluator} is the same judge; the {n_kept} on held-out seeds are kept.")
    return out, notes


# --- intervals --------------------------------------------------------------------------------


def mean_interval(values: np.ndarray, n_boot: int = 2000, confidence: float = 0.95, seed: int = 0,
                  key: str = "") -> tuple[float, float, float, str]:
    """(mean, low, high, method) of per-prompt values: a BCa bootstrap over prompts (jackknife
    acceleration), percentile where BCa is undefined; a constant gives a zero-width interval."""
    from scipy.stats import norm

    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return float("nan"), float("nan"), float("nan"), CI_BCA
    point = float(x.mean())
    if n == 1 or np.ptp(x) == 0:
        return point, point, point, CI_BCA
    rng = np.random.default_rng(np.random.SeedSequence([int(seed) % 2**63, zlib.crc32(key.encode("utf-8"))]))
    boot = x[rng.integers(0, n, size=(n_boot, n))].mean(axis=1)
    alpha = (1 - confidence) / 2
    share = np.mean(boot < point) + 0.5 * np.mean(boot == point)
    jack = (x.sum() - x) / (n - 1)
    d = jack.mean() - jack
    denom = 6 * (d ** 2).sum() ** 1.5
    if 0 < share < 1 and denom > 0:
        z0, a = norm.ppf(share), (d ** 3).sum() / denom
        z = norm.ppf([alpha, 1 - alpha])
        q = norm.cdf(z0 + (z0 + z) / (1 - a * (z0 + z)))
        if np.all(np.isfinite(q)):
            low, high = np.quantile(boot, q)
            return point, float(min(low, point)), float(max(high, point)), CI_BCA
    low, high = np.quantile(boot, [alpha, 1 - alpha])
    return point, float(low), float(high), CI_PERCENTILE


# --- the held-out comparison ---------------------------------------------------------------------


def honest_comparison(acceptance: pd.DataFrame, selection: pd.DataFrame, evaluator: str,
                      selection_metric: str | None = None, *, variants: list[str] | None = None,
                      references: list[str] | None = None, n_boot: int = 2000, confidence: float = 0.95,
                      seed: int = 0) -> pd.DataFrame:
    """Acceptance of each selected variant against base and each fixed variant, paired on prompts.

    `acceptance`: one row per image (model, variant, id, seed, accepted), from people or a judge,
    including the selected variants' images; `selection`: the select stage's table;
    `evaluator`: "human" or the metric behind `acceptance`; `selection_metric`: the metric that
    selected (default: the one the selection table names).

    `variants` limits the comparison to these selected variants (default: every one of the selection
    table); `reportable` says beforehand which ones `evaluator` may report. A selected variant chosen on a prompt's own seeds is compared with each reference over all the
    reference's seeds of that prompt; a choice applied to seeds is compared on those same seeds.
    Differences are per prompt (the unit), with a prompt-bootstrap interval. Raises InputError
    (one sentence) when a selected variant would be evaluated only by its own selection judge on
    the images it was chosen from, or when the acceptance has no image of any selected variant.
    Returns model, variant, policy, reference, best_fixed (the reference with the highest acceptance
    here), prompts, images_selected, images_reference, acceptance_selected (+ low, high),
    acceptance_reference, difference (+ low, high), ci, selected_by, evaluated_by, seeds, note.
    """
    metric = _selection_metric(selection, selection_metric)
    if variants is not None:
        selection = selection[selection["variant"].isin(variants)]
        acceptance = acceptance[~acceptance["variant"].map(is_selected) | acceptance["variant"].isin(variants)]
    refusals = {v: s for v, s in reportable(selection, evaluator, metric).items() if s}
    if refusals:
        raise InputError(next(iter(refusals.values())))
    table, _ = honest_acceptance(acceptance, selection, evaluator, metric)
    chosen = selection[usable(selection, evaluator, metric)]
    present = [v for v in dict.fromkeys(chosen["variant"]) if (table["variant"] == v).any()]
    if not present:
        raise InputError("The acceptance table has no image of a selected variant; run the evaluate stage (and the "
                         "human study) after the select stage, so that the selected images are judged too.")
    fixed_all = [v for v in dict.fromkeys(table["variant"]) if not is_selected(v) and not is_sample_variant(v)]
    fixed_all = (["base"] if "base" in fixed_all else []) + [v for v in fixed_all if v != "base"]
    rows = []
    for model in dict.fromkeys(chosen["model"]):
        acc_m = table[table["model"] == model]
        refs = [v for v in (references or fixed_all) if (acc_m["variant"] == v).any()]
        ref_means = {r: acc_m[acc_m["variant"] == r].groupby("id")["accepted"].mean() for r in refs}
        best_ref = max(refs, key=lambda r: (ref_means[r].mean(), -refs.index(r))) if refs else None
        for variant in present:
            sel_rows = chosen[(chosen["model"] == model) & (chosen["variant"] == variant)]
            if sel_rows.empty:
                continue
            policy = sel_rows["policy"].iloc[0]
            judged = acc_m[acc_m["variant"] == variant].merge(sel_rows[KEY], on=KEY, how="inner")
            sel = judged.groupby("id")["accepted"].mean()
            applied = policy != "best_of_all"
            seeds_of = judged.groupby("id")["seed"].apply(lambda s: set(int(x) for x in s))
            by = _by(metric, sel_rows["judge"].iloc[0])
            seeds_text = _seeds_text(sel_rows, applied)
            for ref in refs:
                part = acc_m[acc_m["variant"] == ref]
                if applied:
                    part = part[[int(s) in seeds_of.get(i, set()) for i, s in zip(part["id"], part["seed"])]]
                ref_mean = part.groupby("id")["accepted"].mean()
                ids = sel.index.intersection(ref_mean.index)
                key = f"{model}/{variant}/{ref}"
                a = mean_interval(sel.loc[ids].to_numpy(), n_boot, confidence, seed, key + "/a")
                d = mean_interval((sel.loc[ids] - ref_mean.loc[ids]).to_numpy(), n_boot, confidence, seed, key + "/d")
                rows.append({
                    "model": model, "variant": variant, "policy": policy, "reference": ref, "best_fixed": ref == best_ref,
                    "prompts": len(ids), "images_selected": int(judged["id"].isin(ids).sum()),
                    "images_reference": int(part["id"].isin(ids).sum()),
                    "acceptance_selected": a[0], "acceptance_selected_low": a[1], "acceptance_selected_high": a[2],
                    "acceptance_reference": float(ref_mean.loc[ids].mean()) if len(ids) else float("nan"),
                    "difference": d[0], "difference_low": d[1], "difference_high": d[2], "ci": d[3],
                    "selected_by": by, "evaluated_by": evaluator, "seeds": seeds_text,
                    "note": _note(sel_rows, metric, evaluator),
                })
    return pd.DataFrame(rows)


def _seeds_text(rows: pd.DataFrame, applied: bool) -> str:
    seeds = sorted(set(int(s) for s in rows["seed"]))
    if not applied:
        return "one image per prompt, the best of every candidate (references: all their seeds)"
    if rows["honest"].all() and rows["policy"].iloc[0] == "per_label":
        return f"seeds {', '.join(map(str, seeds))}; the choice was cross-fitted (learned on other prompts)"
    held = rows["honest"].all()
    return f"{'held-out ' if held else ''}seeds {', '.join(map(str, seeds))}" + ("" if held else " (the seeds it was chosen on)")


def _note(rows: pd.DataFrame, metric: str, evaluator: str) -> str:
    if same_judge(evaluator, metric):
        return ("evaluated by the selection judge itself, on images whose own outcome took no part in the choice "
                "(held-out seeds or cross-fitting)")
    return f"evaluated by {'people' if evaluator == HUMAN else 'another judge'}, independent of the selection judge"


# --- the cost curve -------------------------------------------------------------------------------


def cost_curve(candidates: pd.DataFrame, outcomes: pd.DataFrame, *, evaluator: str, selection_metric: str | None = None,
               mode: str = "heldout", selection_seeds: list[int] | None = None, heldout_seeds: list[int] | None = None,
               column: str = "accepted", judge: str | None = None, n_boot: int = 2000, confidence: float = 0.95,
               seed: int = 0) -> pd.DataFrame:
    """The gain of judge-guided selection as a function of the number of candidates a prompt gets.

    `candidates`: the select stage's candidates (model, id, variant, seed, value: the selection
    judge's value); `outcomes`: one row per image (model, variant, id, seed, `column`), e.g.
    acceptance from people or another judge, or the selection judge's own values on held-out seeds.

    A budget is r rewrites (the base prompt plus r - 1 of the other configurations: dimensions and
    rewrite samples) x s seeds, so r x s images per prompt for the judge to see. The value at a
    budget is exact: the average over every set of s seeds and every set of r - 1 rewrites of the
    outcome of the judge's pick (`policies.expected_best`), not a random draw.
    - `mode="heldout"`: the judge picks the configuration with the best mean over s of the
      selection seeds; its outcome is its mean over the held-out seeds. Honest for any evaluator.
    - `mode="image"`: the judge picks the best single image of the r x s; its outcome is that
      image's. The evaluator must be another judge or people (InputError otherwise).
    The gain is against the base prompt alone (r = 1, s = 1: no selection), per prompt, with a
    prompt-bootstrap interval. Returns schema.SELECT_COST_CURVE.
    """
    metric = selection_metric or (str(candidates["metric"].iloc[0]) if "metric" in candidates and len(candidates) else "")
    if mode not in ("heldout", "image"):
        raise InputError(f"cost_curve mode must be 'heldout' or 'image', got '{mode}'.")
    if mode == "image" and same_judge(evaluator, metric):
        raise InputError(f"A cost curve of images picked by {metric} cannot be evaluated by {evaluator}, the same judge "
                         "(the picks' own scores would count); evaluate with another judge or people, or use "
                         "mode='heldout' with held-out seeds.")
    if judge is None and "judge" in candidates and len(candidates):
        judge = candidates["judge"].iloc[0]
    all_seeds = list(dict.fromkeys(int(s) for s in candidates["seed"]))
    if mode == "heldout":
        heldout = [int(s) for s in (heldout_seeds or [])]
        chooser = [int(s) for s in (selection_seeds or [s for s in all_seeds if s not in heldout])]
        if not heldout:
            raise InputError("A held-out cost curve needs held-out seeds (generate.seeds beyond select.selection_seeds); "
                             "this run has none: evaluate the picks with another judge or people (mode='image').")
    else:
        chooser, heldout = all_seeds, []
    refined = candidates["variant"] == "refined"  # made for failing prompts only: not part of a fixed budget
    candidates = candidates[~refined]
    out_values = outcomes.set_index(KEY)[column].astype(float)
    out_values = out_values[~out_values.index.duplicated(keep="last")]
    rows = []
    for model, cm in candidates.groupby("model", sort=False):
        order = ["base"] + [v for v in dict.fromkeys(cm["variant"]) if v != "base"]
        if "base" not in set(cm["variant"]):
            raise InputError("The cost curve measures the gain over the base prompt; the candidates have no 'base' "
                             "variant (add base to generate.variants).")
        per_prompt, dropped = _prompt_values(cm, out_values, model, order, chooser, heldout, mode)
        if not per_prompt:
            continue
        budgets = sorted(set.intersection(*(set(v) for v in per_prompt.values())))
        reference = {pid: values[(1, 1)] for pid, values in per_prompt.items()}
        for r, s in budgets:
            value = np.array([per_prompt[p][(r, s)] for p in per_prompt])
            gain = value - np.array([reference[p] for p in per_prompt])
            point, low, high, method = mean_interval(gain, n_boot, confidence, seed, f"{model}/{mode}/{r}/{s}")
            note = (f"{dropped} prompts without an outcome for every candidate left out" if dropped else "")
            rows.append({
                "model": model, "mode": mode, "rewrites": r, "seeds": s, "candidates": r * s, "prompts": len(value),
                "value": float(value.mean()), "reference": float(np.mean(list(reference.values()))),
                "gain": point, "low": low, "high": high, "ci": method, "selected_by": _by(metric, judge),
                "evaluated_by": evaluator + (f" on held-out seeds {', '.join(map(str, heldout))}" if heldout else ""),
                "note": note,
            })
    return SELECT_COST_CURVE.validate(pd.DataFrame(rows, columns=SELECT_COST_CURVE.columns))


def _prompt_values(cm: pd.DataFrame, out_values: pd.Series, model: str, order: list[str], chooser: list[int],
                   heldout: list[int], mode: str) -> tuple[dict, int]:
    """prompt id -> {(rewrites, seeds): expected outcome}; and how many prompts lacked an outcome."""
    values = cm.set_index(["id", "variant", "seed"])["value"].astype(float)
    values = values[~values.index.duplicated(keep="last")]
    result, dropped = {}, 0
    for pid in dict.fromkeys(cm["id"]):
        configs = [v for v in order if (pid, v, chooser[0]) in values.index]
        if configs[:1] != ["base"]:
            dropped += 1
            continue
        try:
            score = np.array([[values[(pid, v, s)] for s in chooser] for v in configs])  # configs x seeds
            if mode == "heldout":
                outcome = np.array([np.mean([out_values[(model, v, pid, h)] for h in heldout]) for v in configs])
            else:
                outcome = np.array([[out_values[(model, v, pid, s)] for s in chooser] for v in configs])
        except KeyError:
            dropped += 1
            continue
        if np.isnan(outcome).any():
            dropped += 1
            continue
        table = {}
        for s in range(1, len(chooser) + 1):
            subsets = list(combinations(range(len(chooser)), s))
            for r in range(1, len(configs) + 1):
                total = 0.0
                for subset in subsets:
                    cols = list(subset)
                    if mode == "heldout":
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore", RuntimeWarning)  # a configuration without any value
                            sc = np.nanmean(score[:, cols], axis=1)
                        total += expected_best(sc, outcome, r)
                    else:
                        sub = score[:, cols]
                        filled = np.where(np.isnan(sub), -np.inf, sub)
                        pick = np.argmax(filled, axis=1)  # the earliest seed among ties
                        sc = np.where(np.isneginf(filled.max(axis=1)), np.nan, filled.max(axis=1))
                        total += expected_best(sc, outcome[np.arange(len(configs)), np.array(cols)[pick]], r)
                table[(r, s)] = total / len(subsets)
        result[pid] = table
    return result, dropped


def cost_curve_figure(table: pd.DataFrame, source: str, confidence: float = 0.95):
    """The cost curve: gain over the base prompt against the images a prompt gets (rewrites x seeds),
    one line per number of seeds, one panel per model, with prompt-bootstrap intervals."""
    import matplotlib.pyplot as plt

    colours = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
    models = list(dict.fromkeys(table["model"])) or ["(none)"]
    rc = {"figure.dpi": 150, "savefig.dpi": 300, "savefig.bbox": "tight", "font.size": 8, "axes.titlesize": 9,
          "axes.labelsize": 8, "xtick.labelsize": 7, "ytick.labelsize": 7, "legend.fontsize": 7,
          "axes.spines.top": False, "axes.spines.right": False, "pdf.fonttype": 42}
    with plt.rc_context(rc):
        fig, axes = plt.subplots(1, len(models), figsize=(max(3.5, 3.0 * len(models) + 1.0), 2.6), squeeze=False,
                                 sharey=True)
        for ax, model in zip(axes[0], models):
            part = table[table["model"] == model]
            for i, (s, line) in enumerate(part.groupby("seeds", sort=True)):
                line = line.sort_values("candidates")
                err = np.vstack([line["gain"] - line["low"], line["high"] - line["gain"]]).clip(min=0)
                ax.errorbar(line["candidates"], 100 * line["gain"], yerr=100 * err, marker="o", markersize=3, capsize=2,
                            linewidth=1, color=colours[i % len(colours)], label=f"{s} seed{'s' if s != 1 else ''}")
                for x, y, r in zip(line["candidates"], 100 * line["gain"], line["rewrites"]):
                    ax.annotate(f"{r}", (x, y), textcoords="offset points", xytext=(3, 3), ha="left", fontsize=5,
                                color="#555555")
            ax.axhline(0, color="black", linewidth=0.6)
            ax.set_title(model)
            ax.set_xlabel("images per prompt the judge sees (rewrites x seeds)")
        axes[0][0].set_ylabel("gain over base (percentage points)")
        axes[0][-1].legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
        fig.tight_layout()
        selected_by = "; ".join(dict.fromkeys(table["selected_by"])) if len(table) else ""
        evaluated_by = "; ".join(dict.fromkeys(table["evaluated_by"])) if len(table) else ""
        mode = ", ".join(dict.fromkeys(table["mode"])) if len(table) else ""
        text = (f"{source}\nselected by {selected_by}; evaluated by {evaluated_by} ({mode}); numbers over points: "
                f"rewrites; n = {_span(table['prompts'])} prompts; error bars: {confidence:.0%} intervals, prompt bootstrap")
        import textwrap

        width = max(40, int(fig.get_figwidth() * 22))
        lines = [w for line in text.splitlines() for w in (textwrap.wrap(line, width) or [""])]
        fig.text(0.5, 0.0, "\n".join(lines), ha="center", va="top", fontsize=6, color="#444444")
    return fig


def _span(values) -> str:
    values = [int(v) for v in pd.Series(values).dropna()]
    if not values:
        return "0"
    return f"{min(values)}" if min(values) == max(values) else f"{min(values)}-{max(values)}"
