"""One round of refinement, in the style of Idea2Img: for each prompt where no candidate passes the
selection judge, the judge's failed atoms become feedback for the enrichment LLM, which writes a
new rewrite; its images join the candidates as the variant `refined` and go through the same
selection and evaluation.

The atoms are the VQA judge's (`evaluate/atoms.py`): a missing agent, no visible action, the wrong
roles, a role reversal. So refinement needs a VQA-family selection metric (vqa, vqa_*, soft_tifa_*)
and an LLM enricher (`enrich.backend` or `enrich.fallback_backend`: transformers or openai). The
feedback is per model (each model fails in its own way), so a refined rewrite belongs to one
(model, prompt); `select_refine.parquet` (schema.SELECT_REFINE) records each: the best candidate
it started from, its score, the failed atoms, the feedback sentence and the new text.
"""

from __future__ import annotations

import pandas as pd

from ..cache import JsonlCache
from ..errors import ConfigError
from ..schema import SELECT_REFINE
from . import policies as pol

REFINED = "refined"
VQA_FAMILY = ("vqa", "soft_tifa_")
FEEDBACK = {
    "vqa_agent1": "{a} is missing or cannot be recognised",
    "vqa_agent2": "{b} is missing or cannot be recognised",
    "vqa_event": "the action itself ({action}) is not visible",
    "vqa_action": "it does not show that {a} is the one {action} {b}",
    "vqa_reversed": "the roles look reversed: {b} seems to be {action} {a}",
}


def failed_atoms(values: dict, action: str | None, reciprocal: bool | None = None) -> list[str]:
    """The atoms whose right answer the judge gives less than even odds (a missing agent, ...)."""
    from ..evaluate.atoms import atom_scores

    return [atom for atom, score in atom_scores(values, action, reciprocal).items() if score < 0.5]


def feedback(atoms: list[str], row: dict) -> str:
    """The failed atoms as one sentence for the LLM."""
    a = f"the {row.get('animal1')}" if row.get("animal1") else "the first agent"
    b = f"the {row.get('animal2')}" if row.get("animal2") else "the second agent"
    action = row.get("action") or "the action"
    parts = [FEEDBACK[atom].format(a=a, b=b, action=action) for atom in atoms if atom in FEEDBACK]
    return "; ".join(parts) if parts else "the image did not depict the described interaction"


def instruction_with_feedback(instruction: str, previous: str, said: str) -> str:
    """The dimension's instruction, plus what went wrong with the image of an earlier rewrite."""
    return (f"{instruction} An image made from an earlier rewrite of this prompt (\"{previous}\") failed a check: "
            f"{said}. Write a new rewrite that avoids these failures.")


def llm_backend_name(cfg) -> str:
    for name in (cfg.enrich.backend, cfg.enrich.fallback_backend):
        if name in ("transformers", "openai"):
            return name
    raise ConfigError("select.refine needs an LLM enricher to write the new rewrites; set enrich.backend (or "
                      "enrich.fallback_backend) to transformers or openai, with enrich.model.")


def check(config) -> None:
    metric = config.select.judge_metric
    if not metric.startswith(VQA_FAMILY):
        raise ConfigError(f"select.refine gives the VQA judge's failed atoms to the LLM, but select.judge_metric is "
                          f"'{metric}'; choose soft_tifa_gm, vqa or another VQA metric, or turn select.refine off.")
    llm_backend_name(config)


def plan(candidates: pd.DataFrame, values: dict, bench: pd.DataFrame, prompts: pd.DataFrame, config) -> pd.DataFrame:
    """The prompts to refine: per (model, prompt) whose every candidate on the selection seeds stays
    below `select.refine_threshold`, the best of them, its failed atoms and the feedback.

    `values`: (model, variant, id, seed) -> the selection judge's values of that image (all its metrics).
    """
    cfg = config.select
    selection_seeds, _ = cfg.seeds(config.generate.seeds)
    order = list(dict.fromkeys(candidates["variant"]))
    best = pol.best_of_all(candidates[candidates["variant"] != REFINED], selection_seeds, order)
    rows_by_id = bench.set_index("id")
    text = prompts.set_index(["id", "variant", "sample"])["text"]
    fallback_dimension = next((v for v in config.generate.variants if v != "base"), None) or config.enrich.dimensions[0]
    out = []
    for choice in best.to_dict("records"):
        if choice["score"] == choice["score"] and choice["score"] >= cfg.refine_threshold:
            continue
        variant, seed = choice["chosen_variant"], int(choice["chosen_seed"])
        dimension, sample = pol.parse_variant(variant)
        row = rows_by_id.loc[choice["id"]].to_dict()
        atoms = failed_atoms(values.get((choice["model"], variant, choice["id"], seed), {}), row.get("action"),
                              bool(row["reciprocal"]) if row.get("reciprocal") in (True, False) else None)
        out.append({
            "model": choice["model"], "id": choice["id"], "variant": REFINED,
            "dimension": dimension if dimension != "base" else fallback_dimension, "seed": seed,
            "best_score": choice["score"], "failed_atoms": ",".join(atoms), "feedback": feedback(atoms, row),
            "text": None, "backend": None, "_previous": text.get((choice["id"], dimension, sample), row["base_prompt"]),
        })
    return pd.DataFrame(out)


def rewrite(run, todo: pd.DataFrame, bench: pd.DataFrame, progress: bool = True) -> pd.DataFrame:
    """Ask the enrichment LLM for one new rewrite per planned row; returns schema.SELECT_REFINE rows."""
    from ..enrich import enrich, instruction, make_backend
    from ..enrich.budget import budget_for_models
    from ..runs import resolve_device

    config = run.config
    if todo.empty:
        return SELECT_REFINE.empty()
    cfg = config.enrich
    name = llm_backend_name(config)
    budget = budget_for_models(config.generate.made_here())
    backend = make_backend(cfg, device=resolve_device(config.device), agents=config.benchmark.agents, run=run, name=name,
                           budget=budget)
    cache = JsonlCache(run.enrich_cache_path)
    rows = []
    for rec in todo.to_dict("records"):
        said = instruction_with_feedback(instruction(rec["dimension"], cfg.custom_dimensions), rec["_previous"],
                                         rec["feedback"])
        made = enrich(bench[bench["id"] == rec["id"]], backend, dimensions=[REFINED], custom={REFINED: said}, n_samples=1,
                      seed=cfg.seed, max_retries=cfg.max_retries, batch_size=cfg.batch_size, cache=cache, budget=budget,
                      progress=False)
        new = made[made["variant"] == REFINED].iloc[0]
        rows.append({**{k: v for k, v in rec.items() if not k.startswith("_")}, "text": new["text"],
                     "backend": f"{name}: {backend.model_ref}"})
    return SELECT_REFINE.validate(pd.DataFrame(rows, columns=SELECT_REFINE.columns))


def jobs(table: pd.DataFrame, seeds: list[int]) -> list:
    """The images of every refined rewrite, on every seed."""
    from ..generate.stage import ImageJob

    return [ImageJob(r.model, REFINED, r.id, int(s), r.text) for r in table.itertuples() for s in seeds]
