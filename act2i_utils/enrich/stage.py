"""The enrich-prompts stage: every (prompt, dimension, sample) rewritten, checked and cached.

Writes `prompts.parquet` (schema.PROMPTS: one row per id, variant and sample; variant `base` is
the original prompt; one token-count column per text encoder of the profile's T2I models) and
`benchmark_enriched.parquet` (the published schema with the spatial, emotional and temporal
columns filled from sample 0).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import pandas as pd

from ..cache import JsonlCache, cache_key
from ..fileio import write_parquet
from ..models import model_identity
from ..schema import PROMPTS, load_benchmark, validate_benchmark, with_none
from .backends import OpenAIBackend, Request, TransformersBackend, request_seed
from .budget import add_token_counts
from .checks import badness, check, clean_and_check
from .dimensions import STANDARD, dimension_hash, instruction
from .kb import KnowledgeBaseBackend

LABEL_COLUMNS = ("emotional_valence", "spatial_topology", "temporal_extent")


def make_backend(cfg, *, device: str = "cpu", agents: str = "animals", run=None, name: str | None = None, budget=None):
    """The backend named by the profile's `enrich` section (or `name`, e.g. its fallback backend);
    the knowledge base writes within `budget` (the T2I models' token budget)."""
    name = name or cfg.backend
    if name == "kb":
        return KnowledgeBaseBackend(agents, budget=budget)
    sampling = dict(temperature=cfg.temperature, top_p=cfg.top_p, max_new_tokens=cfg.max_new_tokens)
    if name == "transformers":
        return TransformersBackend(cfg.model, dtype=cfg.dtype, device_map=cfg.device_map, device=device, run=run, **sampling)
    return OpenAIBackend(cfg.model, base_url=cfg.base_url, api_key_env=cfg.api_key_env, concurrency=cfg.concurrency,
                         timeout_s=cfg.timeout_s, **sampling)


@dataclass
class RewriteJob:
    """One rewrite to make: a prompt, a dimension and a sample, with its attempts so far."""

    row: dict
    dimension: str
    sample: int
    instruction: str
    attempts: list[tuple[str, str, list[str]]] = field(default_factory=list)  # (raw, cleaned, flags)

    def best(self) -> tuple[str, str, list[str]]:
        return min(self.attempts, key=lambda a: badness(a[2]))  # min keeps the earliest among equals


def enrich(table: pd.DataFrame, backend, *, dimensions: list[str], custom: dict | None = None, n_samples: int = 1,
           seed: int = 0, max_retries: int = 2, batch_size: int = 8, cache: JsonlCache | None = None,
           budget=None, progress: bool = True) -> pd.DataFrame:
    """Rewrite every prompt of `table` along each dimension; returns the prompts table.

    Each rewrite is cleaned and checked; a flagged one is retried (a new attempt, new seed)
    up to `max_retries` times, then the best attempt is kept with its flags.
    """
    from ..progress import progress_bar

    cache = cache if cache is not None else JsonlCache(None)
    rows = with_none(table).to_dict("records")  # a missing agent is None, never NaN
    jobs = [RewriteJob(row, dim, s, instruction(dim, custom)) for dim in dimensions for row in rows for s in range(n_samples)]
    settings = {**backend.settings(), "seed": seed}
    # a local LLM is keyed on its weights (content hash or hub revision); a server's model by its name
    model = model_identity(backend.model_ref) if backend.name == "transformers" else backend.model_ref
    bar = progress_bar(total=len(jobs), desc=f"enrich ({backend.name})", disable=not progress, unit="rewrite")
    pending = jobs
    for attempt in range(max_retries + 1):
        requests = [_request(job, attempt, seed) for job in pending]
        keys = [cache_key(backend=backend.name, model=model, instruction=r.instruction,
                          base_prompt=r.base_prompt, settings=settings, sample=r.sample, attempt=attempt,
                          agents=[r.animal1, r.animal2], action=r.action) for r in requests]
        missing = [i for i, k in enumerate(keys) if k not in cache]
        for start in range(0, len(missing), batch_size):
            chunk = missing[start:start + batch_size]
            answers = backend.generate([requests[i] for i in chunk])
            cache.add_many([(keys[i], answer) for i, answer in zip(chunk, answers)])
        retry = []
        for job, key in zip(pending, keys):
            raw = cache.get(key)
            text, flags = clean_and_check(raw, job.row["base_prompt"], (job.row.get("animal1"), job.row.get("animal2")), budget)
            job.attempts.append((raw, text, flags))
            if flags and attempt < max_retries:
                retry.append(job)
            else:
                bar.update()
        pending = retry
        if not pending:
            break
    bar.close()
    return _prompts_table(rows, jobs, backend, n_samples)


def _request(job: RewriteJob, attempt: int, seed: int) -> Request:
    row = job.row
    return Request(
        id=row["id"], base_prompt=row["base_prompt"], animal1=row.get("animal1"), animal2=row.get("animal2"),
        action=row.get("action"), action_key=row.get("action_key"), labels={k: row.get(k) for k in LABEL_COLUMNS},
        dimension=job.dimension, instruction=job.instruction, sample=job.sample,
        attempt=attempt, seed=request_seed(seed, row["id"], row["base_prompt"], job.dimension, job.sample, attempt),
    )


def _prompts_table(rows: list[dict], jobs: list[RewriteJob], backend, n_samples: int) -> pd.DataFrame:
    records = [
        {"id": row["id"], "variant": "base", "sample": s, "text": row["base_prompt"], "backend": "", "model": "",
         "dimension_hash": "", "flags": "", "attempts": 0, "raw": ""}
        for row in rows for s in range(n_samples)
    ]
    for job in jobs:
        raw, text, flags = job.best()
        records.append({
            "id": job.row["id"], "variant": job.dimension, "sample": job.sample, "text": text,
            "backend": backend.name, "model": backend.model_ref, "dimension_hash": dimension_hash(job.instruction),
            "flags": ",".join(flags), "attempts": len(job.attempts), "raw": raw,
        })
    return pd.DataFrame(records, columns=PROMPTS.columns)


def fill_published(table: pd.DataFrame, prompts: pd.DataFrame) -> pd.DataFrame:
    """The benchmark with its spatial, emotional and temporal prompt columns filled from sample 0."""
    out = table.copy()
    first = prompts[prompts["sample"] == 0].set_index(["id", "variant"])["text"]
    for dim in STANDARD:
        column = f"{dim}_prompt"
        out[column] = [first.get((i, dim), current) for i, current in zip(out["id"], out[column])]
    return validate_benchmark(out, "benchmark_enriched")


def run(run, progress: bool = True) -> pd.DataFrame:
    """Enrich the run's benchmark with the profile's backend; writes prompts.parquet.

    Example:
        >>> from act2i_utils import benchmark, enrich
        >>> run = open_run("runs/demo", "smoke"); benchmark.run(run)
        >>> prompts = enrich.run(run)
    """
    from ..runs import resolve_device
    from .budget import budget_for_models

    cfg = run.config.enrich
    table = load_benchmark(run.require(run.benchmark_path))
    with run.stage("enrich"):
        budget = budget_for_models(run.config.generate.made_here())

        def rewrite(rows: pd.DataFrame, dimensions: list[str], name: str | None = None) -> pd.DataFrame:
            backend = make_backend(cfg, device=resolve_device(run.config.device), agents=run.config.benchmark.agents,
                                   run=run, name=name, budget=budget)
            return enrich(rows, backend, dimensions=dimensions, custom=cfg.custom_dimensions, n_samples=cfg.n_samples,
                          seed=cfg.seed, max_retries=cfg.max_retries, batch_size=cfg.batch_size,
                          cache=JsonlCache(run.enrich_cache_path), budget=budget, progress=progress)

        if cfg.backend == "source":
            fallback = (lambda rows, dims: rewrite(rows, dims, cfg.fallback_backend)) if cfg.fallback_backend else None
            prompts = from_source(table, cfg.dimensions, fallback, budget, run.config.benchmark.source or "benchmark")
            with run.edit_provenance() as prov:
                prov.setdefault("stages", {}).setdefault("enrich", {})["source"] = prov.get("benchmark_source")
        else:
            carried = carried_rewrites(table, cfg.dimensions)
            if carried:
                warnings.warn(f"The benchmark carries {carried} rewrites of its own ({', '.join(f'{d}_prompt' for d in STANDARD)}); "
                              f"enrich.backend '{cfg.backend}' makes new ones. Set enrich.backend: source to use the file's.",
                              stacklevel=2)
            prompts = rewrite(table, cfg.dimensions)
        prompts = PROMPTS.write(run.prompts_path, add_token_counts(prompts, budget))
        write_parquet(run.enriched_benchmark_path, fill_published(table, prompts))
    return prompts


def carried_rewrites(table: pd.DataFrame, dimensions: list[str]) -> int:
    """How many rewrites of these dimensions the benchmark file itself carries (`<dim>_prompt`)."""
    return int(sum(table[f"{d}_prompt"].notna().sum() for d in dimensions if f"{d}_prompt" in table))


def from_source(table: pd.DataFrame, dimensions: list[str], fallback, budget, source: str) -> pd.DataFrame:
    """The prompts table with each dimension's text taken from the benchmark's `<dim>_prompt` column
    (the published AcT2I rewrites, used as given: one sample, checked and flagged, never retried).

    Rows or dimensions the file lacks go to `fallback(rows, [dimension])` (the profile's
    `enrich.fallback_backend`), or stop with one sentence when there is none.
    """
    from ..errors import InputError

    base = _prompts_table(table.to_dict("records"), [], None, 1)
    parts = [base]
    for dim in dimensions:
        column = f"{dim}_prompt"
        texts = table[column] if column in table else pd.Series([None] * len(table))
        have = texts.notna().to_numpy()
        if not have.all():
            if fallback is None:
                missing = table.loc[~have, "id"].tolist()
                raise InputError(
                    f"{source}: {len(missing)} row(s) have no {column} (ids {', '.join(missing[:3])}"
                    f"{', ...' if len(missing) > 3 else ''}); set enrich.fallback_backend to rewrite them, "
                    f"or remove '{dim}' from enrich.dimensions."
                )
        rows = []
        for row, text, given in zip(table.to_dict("records"), texts, have):
            if given:
                flags = check(text, row["base_prompt"], (row.get("animal1"), row.get("animal2")), budget)
                rows.append({"id": row["id"], "variant": dim, "sample": 0, "text": text, "backend": "source",
                             "model": source, "dimension_hash": "", "flags": ",".join(flags), "attempts": 0, "raw": text})
        made = pd.DataFrame(rows, columns=PROMPTS.columns)
        if not have.all():
            made = pd.concat([made, fallback(table[~have], [dim]).query("variant == @dim")], ignore_index=True)
            order = {i: n for n, i in enumerate(table["id"])}
            made = made.sort_values("id", key=lambda s: s.map(order), kind="stable")
        parts.append(made)
    return pd.concat(parts, ignore_index=True)


def flagged(prompts: pd.DataFrame) -> pd.DataFrame:
    """The rewrites kept with a flag, for review."""
    return prompts[prompts["flags"] != ""][["id", "variant", "sample", "flags", "attempts", "text"]]


def side_by_side(prompts: pd.DataFrame, n: int = 5, sample: int = 0) -> pd.DataFrame:
    """A few prompts with their variants as columns."""
    part = prompts[prompts["sample"] == sample]
    ids = list(dict.fromkeys(part["id"]))[:n]
    wide = part[part["id"].isin(ids)].pivot(index="id", columns="variant", values="text")
    order = ["base"] + [v for v in dict.fromkeys(part["variant"]) if v != "base"]
    return wide.loc[ids, order]


def length_stats(prompts: pd.DataFrame) -> pd.DataFrame:
    """Words per variant and, from the stage's token columns, tokens under the first CLIP encoder
    and the share of rewrites over any encoder's budget."""
    from ..schema import TOKENS_PREFIX, parse_token_column

    frame = prompts.copy()
    frame["words"] = frame["text"].str.split().str.len()
    aggregations = {"prompts": ("text", "size"), "mean_words": ("words", "mean"), "max_words": ("words", "max")}
    columns = [c for c in frame.columns if c.startswith(TOKENS_PREFIX)]
    if columns:
        limits = {c: parse_token_column(c)[1] for c in columns}
        clip = [c for c in columns if limits[c] == 77]
        frame["clip_tokens"] = frame[clip[0]] if clip else float("nan")
        frame["over_budget"] = pd.concat([frame[c] > limits[c] for c in columns], axis=1).any(axis=1)
        aggregations.update(mean_tokens=("clip_tokens", "mean"), max_tokens=("clip_tokens", "max"),
                            share_over_budget=("over_budget", "mean"))
    stats = frame.groupby("variant", sort=False).agg(**aggregations)
    return stats.round(2)
