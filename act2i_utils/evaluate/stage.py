"""The evaluate stage: every judge of the profile over every image of the manifest that the run's
config names (`manifest.configured_images`).

Writes `scores.parquet` (schema.SCORES, long: model, variant, id, seed, metric, value, judge) and
`detections.parquet` (schema.DETECTIONS, the detector's boxes kept). Judgements are cached per
(image hash, judge, model, question) in `scores_cache.jsonl`, so a rerun makes no model call and
an interrupted run resumes with at most one batch lost; metrics derived from them (Soft-TIFA,
interaction geometry) are computed anew from the cache each time. Judges are made by name from
the `JUDGES` registry (metric group -> factory); `list_metrics()` lists them.
"""

from __future__ import annotations

import difflib
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ..cache import JsonlCache, cache_key
from ..errors import ConfigError, InputError
from ..manifest import configured_images, image_hash
from ..models import model_identity
from ..schema import AGENT_COLUMNS, DETECTIONS, KEY, SCORES, load_benchmark
from .api import VlmApiJudge
from .judges import ActionClassifier, ClipJudge, ClipScore, Detector, Judge, PickScore, ReferenceSimilarity, VqaJudge


# what a judge may read of an image's benchmark row, besides its base prompt
ITEM_COLUMNS = ("animal1", "animal2", "action", "action_template", "spatial_topology", *AGENT_COLUMNS[:4])


def _text(value) -> str | None:
    return value if isinstance(value, str) and value else None  # a missing value may read as NaN


def _flag(value) -> bool | None:
    return bool(value) if isinstance(value, (bool, np.bool_)) else None  # None: a benchmark without the column


def image_items(run_root: Path, manifest: pd.DataFrame, bench: pd.DataFrame) -> list[dict]:
    """One dict per image: its key, path, content hash and the benchmark row it answers to."""
    rows = bench.set_index("id")
    items = []
    for rec in manifest.to_dict("records"):
        if rec["id"] not in rows.index:
            raise InputError(f"Image {rec['path']} is for prompt id '{rec['id']}', which the run's benchmark does not have.")
        path = run_root / rec["path"]
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise InputError(f"{rec['path']} is listed in the image manifest but missing; rerun the generate stage to make it.") from None
        content = image_hash(data)
        recorded = rec.get("image_hash")
        if isinstance(recorded, str) and recorded != content:
            raise InputError(f"{rec['path']} was replaced after it was made or imported (its content no longer matches "
                             "the manifest); rerun the generate stage to make it again, or import it with --replace.")
        row = rows.loc[rec["id"]]
        items.append({
            "model": rec["model"], "variant": rec["variant"], "id": rec["id"], "seed": int(rec["seed"]), "path": path,
            "relpath": rec["path"], "image_hash": content, "base_prompt": row["base_prompt"],
            **{column: _text(row.get(column)) for column in ITEM_COLUMNS},
            "reciprocal": _flag(row.get("reciprocal")),
        })
    return items


class _Makers:
    """What the judge factories share: the profile's evaluate section, the device, the candidate
    actions (phrase -> template) and one CLIP model for clipscore and action_clip."""

    def __init__(self, cfg, device: str, actions: dict[str, str | None], run=None):
        self.cfg, self.device, self.actions, self.run = cfg, device, actions, run
        self._clip = None

    def clip(self) -> ClipJudge:
        if self._clip is None:
            self._clip = ClipJudge(self.cfg.clip_model, self.device, run=self.run)
        return self._clip


def _reference(m: _Makers) -> Judge | None:
    folder = m.cfg.reference_dir
    if not folder:
        warnings.warn("Reference similarity skipped: evaluate.reference_dir is not set; point it at a folder "
                      "with one sub-folder of real frames per action (e.g. from Animal Kingdom).", stacklevel=3)
        return None
    if not Path(folder).is_dir():
        warnings.warn(f"Reference similarity skipped: {folder} is not a folder.", stacklevel=3)
        return None
    return ReferenceSimilarity(m.cfg.reference_model, m.device, folder, list(m.actions), run=m.run)


def _vlm_api(m: _Makers) -> Judge:
    c = m.cfg
    return VlmApiJudge(c.vlm_api_model, c.vlm_api_base_url, api_key_env=c.vlm_api_key_env, concurrency=c.vlm_api_concurrency,
                       timeout_s=c.vlm_api_timeout_s, max_retries=c.vlm_api_max_retries,
                       top_logprobs=c.vlm_api_top_logprobs, samples=c.vlm_api_samples, extra_body=c.vlm_api_extra_body,
                       system_prompt=c.vlm_api_system_prompt)


# metric group -> (the evaluate setting naming its model, factory)
JUDGES = {
    "clipscore": ("clip_model", lambda m: ClipScore(m.clip())),
    "vqa": ("vqa_model", lambda m: VqaJudge(m.cfg.vqa_model, m.device, run=m.run)),
    "detection": ("detector_model", lambda m: Detector(m.cfg.detector_model, m.device, m.cfg.detection_threshold, run=m.run,
                                                       contact_tolerance=m.cfg.contact_tolerance)),
    "action_clip": ("clip_model", lambda m: ActionClassifier(m.clip(), m.actions)),
    "reference": ("reference_model", _reference),
    "vlm_api": ("vlm_api_model", _vlm_api),
    "pickscore": ("pickscore_model", lambda m: PickScore(m.cfg.pickscore_model, m.device, m.cfg.pickscore_processor, run=m.run)),
}
METRICS = tuple(JUDGES)
EXCLUSIVE = ("vqa", "vlm_api")  # both write Soft-TIFA (soft_tifa_*, one definition)


def list_metrics() -> list[str]:
    """The judges a profile's `evaluate.metrics` (or `score(metric=...)`) can name."""
    return list(JUDGES)


def check_metrics(metrics: list[str], where: str = "evaluate.metrics") -> None:
    unknown = [m for m in metrics if m not in JUDGES]
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(JUDGES), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(f"Unknown metric(s) {', '.join(unknown)} in {where}{hint}; known: {', '.join(JUDGES)}.")
    if all(m in metrics for m in EXCLUSIVE):
        raise ConfigError(f"{where} names both vqa and vlm_api, which both write Soft-TIFA (soft_tifa_am, "
                          "soft_tifa_gm, ...); keep one, and compare the other with evaluate.score() or in a second run.")


def make_judges(cfg, device: str, actions: list[str] | dict[str, str | None], metrics: list[str] | None = None,
                run=None) -> list[Judge]:
    """The judges named by `metrics` (default `evaluate.metrics`), sharing one CLIP model.

    `actions`: the benchmark's action phrases, or phrase -> template for the action classifier's captions.
    """
    metrics = list(metrics or cfg.metrics)
    check_metrics(metrics)
    makers = _Makers(cfg, device, actions if isinstance(actions, dict) else {a: None for a in actions}, run)
    judges = []
    for metric in metrics:  # a plain loop, so that _reference's stacklevel=3 names our caller
        judge = JUDGES[metric][1](makers)
        if judge is not None:
            judges.append(judge)
    return judges


def action_templates(bench: pd.DataFrame) -> dict[str, str | None]:
    """The benchmark's action phrases, in order, with the template each row carries (None if not)."""
    templates = bench["action_template"] if "action_template" in bench else [None] * len(bench)
    out: dict[str, str | None] = {}
    for action, template in zip(bench["action"], templates):
        if action and (action not in out or out[action] is None):
            out[action] = template if isinstance(template, str) else None  # a missing value may read as NaN
    return out


def with_derived(judge, values: dict, item: dict) -> dict:
    """A judge's cached values and the metrics it derives from them (Soft-TIFA, geometry)."""
    derive = getattr(judge, "derive", None)
    return {**values, **derive(values, item)} if derive else values


def judge_all(judge, items: list[dict], cache: JsonlCache, batch_size: int, progress: bool = True) -> list[dict]:
    """Values of one judge for every item (with the metrics it derives): from the cache, or computed
    in batches and cached. A question the judge could not answer (listed in `_missing`) is never
    cached as a value: the next call asks for exactly those again (`score(..., only=)`)."""
    from PIL import Image
    from ..progress import progress_bar

    identity = getattr(judge, "identity", None)  # the weights it loaded, or a served model's name
    model = identity() if identity else model_identity(judge.model_ref)  # new weights in a folder: a new judge
    applies = getattr(judge, "applies", lambda item: True)
    keys = [cache_key(image=i["image_hash"], judge=judge.name, model=model, inputs=judge.signature(i)) if applies(i)
            else None for i in items]
    missing = [n for n, k in enumerate(keys) if k is not None and (k not in cache or cache.get(k).get("_missing"))]
    fresh: dict[int, dict] = {}
    with progress_bar(total=len(missing), desc=f"{judge.name} ({judge.model_ref})", unit="img", disable=not progress or not missing) as bar:
        for start in range(0, len(missing), batch_size):
            chunk = missing[start:start + batch_size]
            images = []
            for n in chunk:
                try:
                    with Image.open(items[n]["path"]) as img:
                        images.append(img.convert("RGB"))
                except (OSError, ValueError) as err:
                    raise InputError(f"{items[n]['relpath']} cannot be read ({type(err).__name__}); delete it and rerun "
                                     "the generate stage to make it again.") from None
            before = [{m: v for m, v in (cache.get(keys[n]) or {}).items() if m != "_missing"} for n in chunk]
            only = [(cache.get(keys[n]) or {}).get("_missing") for n in chunk]
            chunk_items = [items[n] for n in chunk]
            values = judge.score(images, chunk_items, only=only) if any(only) else judge.score(images, chunk_items)
            for n, old, new in zip(chunk, before, values):
                fresh[n] = {**old, **new}
            cache.add_many([(keys[n], fresh[n]) for n in chunk if _yields_a_value(fresh[n])])
            bar.update(len(chunk))
    return [with_derived(judge, fresh[n] if n in fresh else cache.get(k), item) if k is not None else {}
            for n, (k, item) in enumerate(zip(keys, items))]


def _yields_a_value(values: dict) -> bool:
    """False for an answer whose every question went unanswered: caching it would keep it empty for good."""
    return "_missing" not in values or any(m not in ("_missing", "_judge") for m in values)


def run(run, progress: bool = True) -> pd.DataFrame:
    """Score every image in the manifest with the profile's judges; writes scores.parquet.

    Example:
        >>> scores = evaluate.run(open_run("runs/demo", "smoke"))
        >>> evaluate.summary(scores)
    """
    from ..runs import resolve_device

    cfg = run.config.evaluate
    manifest, set_aside = configured_images(run)
    if set_aside:
        warnings.warn(f"{set_aside} images in the manifest are not named by the run's current config (other models, "
                      "variants, seeds or prompt texts); they stay on disk and are not evaluated.", stacklevel=2)
    if manifest.empty:
        raise InputError(f"{run.manifest_path} lists no images; run the generate stage (notebook 03) first.")
    bench = load_benchmark(run.require(run.benchmark_path))
    items = image_items(run.root, manifest, bench)
    cache = JsonlCache(run.scores_cache_path)
    rows, boxes = [], []
    with run.stage("evaluate"):
        for judge in make_judges(cfg, resolve_device(run.config.device), action_templates(bench), run=run):
            for item, values in zip(items, judge_all(judge, items, cache, cfg.batch_size, progress)):
                key = {k: item[k] for k in KEY}
                source = values.get("_judge", judge.model_ref)
                boxes += [{**key, "agent": b["agent"], "score": b["score"], "x0": b["box"][0], "y0": b["box"][1],
                           "x1": b["box"][2], "y1": b["box"][3]} for b in values.get("_boxes", [])]
                rows += [{**key, "metric": metric, "value": value, "judge": source}
                         for metric, value in values.items() if not metric.startswith("_")]
            note = getattr(judge, "empty_note", lambda: None)()
            if note:
                warnings.warn(note, stacklevel=2)
        scores = SCORES.write(run.scores_path, pd.DataFrame(rows, columns=SCORES.columns))
        DETECTIONS.write(run.detections_path, pd.DataFrame(boxes, columns=DETECTIONS.columns))
    return scores


def summary(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean of each metric per model and variant (variants in their run order)."""
    table = scores.pivot_table(index=["model", "variant"], columns="metric", values="value", aggfunc="mean", sort=False)
    return table.round(3)


def vqa_breakdown(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean VQA answers per model and variant, with the share of images where the role-reversed
    question gets a higher "Yes" than the stated one (a suspected role reversal)."""
    vqa = scores[scores["metric"].str.match(r"^(api_)?vqa")]
    wide = vqa.pivot_table(index=["model", "variant", "id", "seed"], columns="metric", values="value", sort=False)
    for prefix in ("", "api_"):
        if {f"{prefix}vqa_action", f"{prefix}vqa_reversed"} <= set(wide.columns):
            wide["reversal_suspected"] = (wide[f"{prefix}vqa_reversed"] > wide[f"{prefix}vqa_action"]).astype(float)
    return wide.groupby(level=["model", "variant"], sort=False).mean().round(3)
