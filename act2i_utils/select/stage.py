"""The select stage: per prompt, the rewrite and image a judge expects people to accept (issue 21).

Runs between generate and evaluate. Candidates are every (variant or rewrite sample) x seed image
of a prompt; the selection judge (`select.judge_metric`, any metric of evaluate's judges) scores
them, through evaluate's own judge and the run's shared judgement cache (evaluate reuses every
value). Each policy (`policies.py`) then chooses per prompt, and the choices become variants of
the manifest, each row a pointer to the chosen candidate's image (no copy, source "selected"):

- `selected`: the first of `select.policies`; `selected_k<k>`: the same policy with a budget of k seeds;
- `selected_<policy>`: each other policy.

Held-out seeds: the judge sees only `select.selection_seeds` when choosing; a choice (a dimension,
or a rewrite sample) is applied to the other seeds of generate.seeds, and those images form the
variant, so that any judge, the selection judge included, evaluates it honestly. A cross-fitted
choice (per_label) is honest on every seed. Best-of-all picks one image per prompt among all
candidates (a winner's curse): only another judge or people may evaluate it
(`evaluation.honest_comparison` refuses otherwise).

Writes `selection.parquet` (schema.SELECTION: what was chosen, by which judge and policy, its
score, the candidates considered, why), `select_candidates.parquet` (schema.SELECT_CANDIDATES)
and `select_cost_curve.parquet` (schema.SELECT_COST_CURVE: the selection judge's gain on held-out
seeds by number of candidates; empty without held-out seeds), and the selected rows of the manifest.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass, field

import pandas as pd

from ..cache import JsonlCache
from ..errors import ConfigError, InputError
from ..manifest import SELECTED_SOURCE, configured_images, merge_manifest, read_manifest, select_fingerprint
from ..runs import now
from ..schema import (KEY, MANIFEST, PROMPTS, SELECT_CANDIDATES, SELECT_COST_CURVE, SELECT_REFINE, SELECTION,
                      load_benchmark)
from . import policies as pol
from .evaluation import cost_curve


# metric -> the evaluate judge that writes it (tests check this against every judge's declared metrics)
GROUPS = (
    (re.compile(r"^(vqa|vqa_(agent[12]|event|action|reversed|count[12]|attribute[12]))$"), "vqa"),
    (re.compile(r"^api_(vqa|vqa_(agent[12]|event|action|reversed|count[12]|attribute[12]))$"), "vlm_api"),
    (re.compile(r"^soft_tifa_(am|gm|dsg|am_renorm|gm_renorm)$"), "soft_tifa"),  # both VQA judges write these
    (re.compile(r"^clipscore$"), "clipscore"),
    (re.compile(r"^action_(rank|top1|top5)$"), "action_clip"),
    (re.compile(r"^(det_(agent1|agent2|both)|geo_(agents|iou|contact|topology))$"), "detection"),
    (re.compile(r"^ref_similarity$"), "reference"),
    (re.compile(r"^pickscore$"), "pickscore"),
)

NOT_HIGHER_IS_BETTER = {
    "action_rank": "a rank: lower is better",
    "vqa_reversed": "the role-reversed control: lower is better",
    "api_vqa_reversed": "the role-reversed control: lower is better",
    "geo_contact": "a gap between the agents, good or bad by action",
    "geo_iou": "an overlap of the agents, good or bad by action",
}


@dataclass
class Selected:
    """What the stage did, for the notebook to show."""

    candidates: pd.DataFrame
    selection: pd.DataFrame
    cost_curve: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    refine: pd.DataFrame | None = None

    def summary(self) -> pd.DataFrame:
        """Per model and selected variant: the policy, its seeds, how often each rewrite was chosen."""
        return summary(self.selection)


def judge_group(metric: str, configured: list[str]) -> str:
    """The evaluate judge (metric group) that produces `metric` (`evaluate.list_metrics()` names them)."""
    if metric in NOT_HIGHER_IS_BETTER:
        raise ConfigError(f"select.judge_metric '{metric}' is not a score where higher is better "
                          f"({NOT_HIGHER_IS_BETTER[metric]}); choose soft_tifa_gm, vqa, clipscore, pickscore or action_top1.")
    for pattern, group in GROUPS:
        if pattern.match(metric):
            return ("vlm_api" if "vlm_api" in configured else "vqa") if group == "soft_tifa" else group
    raise ConfigError(f"select.judge_metric '{metric}' is not a metric of any judge; choose one such as soft_tifa_gm, vqa, "
                      "vqa_action, clipscore, pickscore, action_top1, det_both or ref_similarity.")


def candidate_variants(run) -> list[str]:
    """The candidate configurations in order: the profile's variants, then their rewrite samples 1..n-1."""
    cfg = run.config
    variants = list(cfg.generate.variants)
    if cfg.select.rewrite_samples and cfg.enrich.n_samples > 1:
        variants += [pol.sample_variant(v, k) for v in cfg.generate.variants if v != "base" for k in range(1, cfg.enrich.n_samples)]
    return variants


def run(run, progress: bool = True) -> Selected:
    """Choose, per prompt, among the candidates; write the selected variants and the tables above.

    Example:
        >>> chosen = select.run(open_run("runs/demo", "smoke"))
        >>> chosen.summary()
    """
    from ..evaluate import make_judges
    from ..evaluate.stage import action_templates, image_items, judge_all
    from ..runs import resolve_device

    cfg = run.config.select
    if not cfg.enabled:
        return Selected(SELECT_CANDIDATES.empty(), SELECTION.empty(), SELECT_COST_CURVE.empty(),
                        ["The select stage is off in this profile (select.enabled: false); nothing was chosen."])
    gen = run.config.generate
    selection_seeds, heldout = cfg.seeds(gen.seeds)
    group = judge_group(cfg.judge_metric, run.config.evaluate.metrics)
    bench = load_benchmark(run.require(run.benchmark_path))
    prompts = PROMPTS.read(run.require(run.prompts_path))
    notes: list[str] = []
    with run.stage("select"):
        if cfg.rewrite_samples and run.config.enrich.n_samples > 1:
            from .samples import make_sample_images

            made = make_sample_images(run, prompts, progress)
            if made:
                notes.append(f"Made {made} images of rewrite samples 1-{run.config.enrich.n_samples - 1}.")
        images = _candidate_images(run, prompts)
        judge = make_judges(run.config.evaluate, resolve_device(run.config.device), action_templates(bench), [group], run=run)
        if not judge:
            raise ConfigError(f"select.judge_metric '{cfg.judge_metric}' needs the {group} judge, which this profile cannot "
                              "make (see the warning above); choose another metric.")
        judge = judge[0]
        items = image_items(run.root, images, bench)
        values = judge_all(judge, items, JsonlCache(run.scores_cache_path), run.config.evaluate.batch_size, progress)
        candidates = _candidates_table(images, values, cfg.judge_metric, judge.model_ref, selection_seeds)
        refined = None
        if cfg.refine:
            refined, extra, extra_values = _refine(run, judge, images, values, candidates, bench, prompts, progress)
            candidates = pd.concat([candidates, _candidates_table(extra, extra_values, cfg.judge_metric, judge.model_ref,
                                                                  selection_seeds)], ignore_index=True)
            if len(refined):
                notes.append(f"Refinement: {len(refined)} (model, prompt) pairs had no candidate reaching "
                             f"{cfg.judge_metric} >= {cfg.refine_threshold:g}; each got a rewrite from the LLM with the "
                             f"judge's failed atoms as feedback, and {len(extra)} new candidate images.")
        missing = int(candidates["value"].isna().sum())
        if missing:
            notes.append(f"{missing} candidate images have no {cfg.judge_metric} value; they rank below every other.")
        SELECT_CANDIDATES.write(run.select_candidates_path, candidates)
        selection = choose_all(candidates, bench, run.config, judge.model_ref)
        SELECTION.write(run.selection_path, selection)
        write_selected_rows(run, selection)
        curve = SELECT_COST_CURVE.empty()
        if heldout:
            outcomes = candidates.rename(columns={"value": "outcome"})
            curve = cost_curve(candidates, outcomes, evaluator=cfg.judge_metric, selection_metric=cfg.judge_metric,
                               mode="heldout", selection_seeds=selection_seeds, heldout_seeds=heldout, column="outcome",
                               judge=judge.model_ref, n_boot=run.config.analyze.n_bootstrap,
                               confidence=run.config.analyze.confidence, seed=run.config.analyze.seed)
        else:
            notes.append("No held-out seeds (every seed of generate.seeds is a selection seed): the selected images may be "
                         "evaluated only by another judge or people (the analysis draws the cost curve with them).")
        SELECT_COST_CURVE.write(run.select_cost_curve_path, curve)
    if run.random_weights:
        notes.append("These choices come from random-weight models (smoke profile): they test the pipeline, not a model.")
    return Selected(candidates, selection, curve, notes, refined)


def _refine(run, judge, images: pd.DataFrame, values: list[dict], candidates: pd.DataFrame, bench: pd.DataFrame,
            prompts: pd.DataFrame, progress: bool):
    """One refinement round: plan, rewrite, make and judge the new images; returns (the round's
    table, the new images' manifest rows, their judge values)."""
    from ..evaluate.stage import image_items, judge_all
    from . import refine
    from .samples import make_images

    refine.check(run.config)
    by_key = {(r["model"], r["variant"], r["id"], int(r["seed"])): v for r, v in zip(images.to_dict("records"), values)}
    table = refine.rewrite(run, refine.plan(candidates, by_key, bench, prompts, run.config), bench, progress)
    SELECT_REFINE.write(run.select_refine_path, table)
    make_images(run, refine.jobs(table, run.config.generate.seeds), progress, refine.REFINED)
    configured, _ = configured_images(run)
    extra = configured[configured["variant"] == refine.REFINED].reset_index(drop=True)
    if extra.empty:
        return table, extra, []
    extra_values = judge_all(judge, image_items(run.root, extra, bench), JsonlCache(run.scores_cache_path),
                             run.config.evaluate.batch_size, progress)
    return table, extra, extra_values


def _candidate_images(run, prompts: pd.DataFrame) -> pd.DataFrame:
    """The manifest rows of every candidate, checked complete: each model x configuration x prompt x seed."""
    images, _ = configured_images(run)
    variants = candidate_variants(run)
    gen = run.config.generate
    made_here = [m.label for m in gen.made_here()]  # an external model has no rewrite samples to choose among
    images = images[images["variant"].isin(variants) & images["model"].isin(made_here)].reset_index(drop=True)
    ids = list(dict.fromkeys(prompts["id"]))
    have = set(map(tuple, images[KEY].itertuples(index=False)))
    wanted = [(m.label, v, i, int(s)) for m in gen.made_here() for v in variants for i in ids for s in gen.seeds]
    lacking = [k for k in wanted if k not in have]
    if lacking:
        first = lacking[0]
        raise InputError(f"{len(lacking)} of the {len(wanted)} candidate images are missing (the first: model {first[0]}, "
                         f"variant {first[1]}, prompt {first[2]}, seed {first[3]}); run the generate stage (notebook 03) first.")
    return images


def _candidates_table(images: pd.DataFrame, values: list[dict], metric: str, judge: str,
                      selection_seeds: list[int]) -> pd.DataFrame:
    rows = []
    for rec, value in zip(images.to_dict("records"), values):
        dimension, sample = pol.parse_variant(rec["variant"])
        v = value.get(metric)
        rows.append({"model": rec["model"], "id": rec["id"], "variant": rec["variant"], "dimension": dimension,
                     "sample": sample, "seed": int(rec["seed"]),
                     "role": "selection" if int(rec["seed"]) in selection_seeds else "heldout", "metric": metric,
                     "judge": judge, "value": float(v) if v is not None else float("nan"), "path": rec["path"]})
    return pd.DataFrame(rows, columns=SELECT_CANDIDATES.columns)


def choose_all(candidates: pd.DataFrame, bench: pd.DataFrame, config, judge: str) -> pd.DataFrame:
    """Every policy of `config.select` at every budget, as rows of the selected variants (schema.SELECTION)."""
    cfg, gen = config.select, config.generate
    selection_seeds, heldout = cfg.seeds(gen.seeds)
    order = [v for v in dict.fromkeys(["base", *gen.variants]) if v in set(candidates["variant"])]
    order += [v for v in dict.fromkeys(candidates["variant"]) if v not in order]
    paths = candidates.set_index(["model", "id", "variant", "seed"])["path"]
    runs = [(cfg.policies[0], None, "selected")]
    runs += [(cfg.policies[0], k, f"selected_k{k}") for k in cfg.budget_list(gen.seeds)]
    runs += [(p, None, f"selected_{p}") for p in cfg.policies[1:]]
    rows = []
    for policy, budget, variant in runs:
        pool = list(gen.seeds) if policy == "best_of_all" else selection_seeds
        seen = pool[:budget] if budget else pool
        pool_candidates, pool_order = candidates, order
        if policy == "per_label":  # a refined rewrite exists for some prompts only: no rule can name it
            pool_candidates = candidates[candidates["variant"] != "refined"]
            pool_order = [v for v in order if v != "refined"]
        try:
            choices = pol.choose(policy, pool_candidates, bench, seen, order=pool_order, labels=cfg.labels,
                                 n_folds=cfg.folds, seed=cfg.seed)
        except ValueError as err:
            raise InputError(f"select policy {policy}: {err}.") from None
        for choice in choices.to_dict("records"):
            rows += _rows_for(choice, variant, policy, seen, heldout, list(gen.seeds), cfg.judge_metric, judge, paths)
    table = pd.DataFrame(rows, columns=SELECTION.columns)
    rank = {name: i for i, (_, _, name) in enumerate(runs)}
    table = table.sort_values(["model", "id", "seed"], kind="stable").sort_values("variant", key=lambda v: v.map(rank),
                                                                                     kind="stable")
    return SELECTION.validate(table.reset_index(drop=True))


def _rows_for(choice: dict, variant: str, policy: str, seen: list[int], heldout: list[int], all_seeds: list[int],
              metric: str, judge: str, paths: pd.Series) -> list[dict]:
    """The selected variant's rows for one prompt's choice: the image(s) it stands for, and why."""
    chosen = choice["chosen_variant"]
    _, sample = pol.parse_variant(chosen)
    n_configs = len(json.loads(choice["candidates"]))
    seen_text = ", ".join(map(str, seen))
    if policy == "best_of_all":
        applied, honest = [int(choice["chosen_seed"])], False
        reason = (f"the highest {metric} ({choice['score']:.4g}) of {n_configs} rewrites x {len(seen)} seeds "
                  f"({seen_text}); runner-up {choice['runner_up']}; only another judge or people may evaluate it")
    elif policy == "best_dimension":
        applied, honest = (heldout, True) if heldout else (seen, False)
        reason = (f"{chosen} had the highest mean {metric} ({choice['score']:.4g}) over seeds {seen_text} among "
                  f"{n_configs} rewrites; runner-up {choice['runner_up']}; "
                  + ("applied to the held-out seeds" if heldout else "no held-out seeds: only another judge or people may evaluate it"))
    else:
        applied, honest = (heldout or all_seeds), True
        reason = f"{choice['rule']}; the prompt's own outcome took no part (cross-fitting)"
    fold = choice.get("fold")
    fold = int(fold) if fold is not None and fold == fold else -1
    rows = []
    for seed in applied:
        rows.append({
            "model": choice["model"], "variant": variant, "id": choice["id"], "seed": int(seed), "policy": policy,
            "budget": len(seen), "metric": metric, "judge": judge, "chosen_variant": chosen, "chosen_sample": sample,
            "chosen_seed": int(seed), "chosen_path": paths[(choice["model"], choice["id"], chosen, int(seed))],
            "score": choice["score"], "runner_up": choice["runner_up"], "candidates": choice["candidates"],
            "seeds_seen": choice["seeds_seen"], "honest": honest, "fold": fold,
            "rule": choice.get("rule") or "", "reason": reason,
        })
    return rows


def write_selected_rows(run, selection: pd.DataFrame) -> pd.DataFrame:
    """Replace the manifest's selected rows with pointers to the chosen candidates' images."""
    merge_manifest(run.root)  # fold any parts first, so that the manifest file is the whole manifest
    manifest = read_manifest(run.root)
    by_path = manifest[manifest["source"] != SELECTED_SOURCE].drop_duplicates("path", keep="last").set_index("path")
    fingerprint = select_fingerprint(run.config)
    created = now()
    rows = []
    for rec in selection.to_dict("records"):
        base = by_path.loc[rec["chosen_path"]].to_dict()
        rows.append({**base, "model": rec["model"], "variant": rec["variant"], "id": rec["id"], "seed": rec["seed"],
                     "path": rec["chosen_path"], "source": SELECTED_SOURCE, "settings": fingerprint, "created": created,
                     "seconds": 0.0})
    kept = manifest[manifest["source"] != SELECTED_SOURCE]
    merged = pd.concat([kept, pd.DataFrame(rows, columns=MANIFEST.columns)], ignore_index=True)
    merged = merged.sort_values(KEY, kind="stable").reset_index(drop=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # concat with an empty frame
        return MANIFEST.write(run.manifest_path, merged)


def summary(selection: pd.DataFrame) -> pd.DataFrame:
    """Per model and selected variant: policy, seeds seen, images, prompts and the share of prompts
    for which each rewrite was chosen."""
    if selection.empty:
        return pd.DataFrame()
    first = selection.drop_duplicates(["model", "variant", "id"])
    shares = (first.groupby(["model", "variant"], sort=False)["chosen_variant"].value_counts(normalize=True)
              .rename("share").reset_index().pivot_table(index=["model", "variant"], columns="chosen_variant",
                                                         values="share", fill_value=0.0, sort=False))
    info = selection.groupby(["model", "variant"], sort=False).agg(
        policy=("policy", "first"), selected_by=("metric", "first"), seeds_seen=("budget", "first"),
        images=("seed", "size"), prompts=("id", "nunique"), honest=("honest", "all"))
    return info.join(shares.round(3))
