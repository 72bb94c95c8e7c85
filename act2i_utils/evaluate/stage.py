"""The evaluate stage: every judge of the profile over every image of the manifest.

Writes `scores.parquet` (long: model, variant, id, seed, metric, value, judge) and
`detections.parquet` (the OWLv2 boxes kept). Judgements are cached per (image hash, judge,
model, question) in `scores_cache.jsonl`, so a rerun makes no model call and an interrupted
run resumes with at most one batch lost.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import pandas as pd

from ..cache import JsonlCache, cache_key
from ..errors import ConfigError, InputError
from ..fileio import write_parquet
from .judges import ActionClassifier, ClipJudge, ClipScore, Detector, ReferenceSimilarity, VqaJudge

METRICS = ("clipscore", "vqa", "detection", "action_clip", "reference")
SCORE_COLUMNS = ["model", "variant", "id", "seed", "metric", "value", "judge"]


def image_items(run_root: Path, manifest: pd.DataFrame, bench: pd.DataFrame) -> list[dict]:
    """One dict per image: its key, path, content hash and the benchmark row it answers to."""
    rows = bench.set_index("id")
    items = []
    for rec in manifest.to_dict("records"):
        if rec["id"] not in rows.index:
            raise InputError(f"Image {rec['path']} is for prompt id '{rec['id']}', which benchmark.parquet does not have.")
        path = run_root / rec["path"]
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise InputError(f"{rec['path']} is listed in images/manifest.parquet but missing; rerun the generate stage to make it.") from None
        row = rows.loc[rec["id"]]
        items.append({
            "model": rec["model"], "variant": rec["variant"], "id": rec["id"], "seed": int(rec["seed"]), "path": path,
            "relpath": rec["path"], "image_hash": hashlib.sha256(data).hexdigest(), "base_prompt": row["base_prompt"],
            "animal1": row["animal1"], "animal2": row["animal2"], "action": row["action"],
        })
    return items


def make_judges(cfg, device: str, actions: list[str], metrics: list[str] | None = None, run=None) -> list:
    """The judges named by `evaluate.metrics`, sharing one CLIP model between clipscore and action_clip."""
    metrics = list(metrics or cfg.metrics)
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ConfigError(f"Unknown metric(s) {', '.join(unknown)} in evaluate.metrics; known: {', '.join(METRICS)}.")
    judges, clip = [], None
    for metric in metrics:
        if metric in ("clipscore", "action_clip") and clip is None:
            clip = ClipJudge(cfg.clip_model, device, run=run)
        if metric == "clipscore":
            judges.append(ClipScore(clip))
        elif metric == "action_clip":
            judges.append(ActionClassifier(clip, actions))
        elif metric == "vqa":
            judges.append(VqaJudge(cfg.vqa_model, device, run=run))
        elif metric == "detection":
            judges.append(Detector(cfg.detector_model, device, cfg.detection_threshold, run=run))
        elif metric == "reference":
            if not cfg.reference_dir:
                warnings.warn("Reference similarity skipped: evaluate.reference_dir is not set; point it at a folder "
                              "with one sub-folder of real frames per action (e.g. from Animal Kingdom).", stacklevel=2)
                continue
            if not Path(cfg.reference_dir).is_dir():
                warnings.warn(f"Reference similarity skipped: {cfg.reference_dir} is not a folder.", stacklevel=2)
                continue
            judges.append(ReferenceSimilarity(cfg.reference_model, device, cfg.reference_dir, actions, run=run))
    return judges


def judge_all(judge, items: list[dict], cache: JsonlCache, batch_size: int, progress: bool = True) -> list[dict]:
    """Values of one judge for every item: from the cache, or computed in batches and cached."""
    from PIL import Image
    from tqdm.auto import tqdm

    keys = [cache_key(image=i["image_hash"], judge=judge.name, model=judge.model_ref, inputs=judge.signature(i))
            for i in items]
    missing = [n for n, k in enumerate(keys) if k not in cache]
    with tqdm(total=len(missing), desc=f"{judge.name} ({judge.model_ref})", unit="img", disable=not progress or not missing) as bar:
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
            values = judge.score(images, [items[n] for n in chunk])
            cache.add_many([(keys[n], v) for n, v in zip(chunk, values)])
            bar.update(len(chunk))
    return [cache.get(k) for k in keys]


def run(run, progress: bool = True) -> pd.DataFrame:
    """Score every image in the manifest with the profile's judges; writes scores.parquet.

    Example:
        >>> scores = evaluate.run(open_run("runs/demo", "smoke"))
        >>> evaluate.summary(scores)
    """
    from ..generate.manifest import read_manifest
    from ..runs import require, resolve_device

    cfg = run.config.evaluate
    manifest = read_manifest(run.root)
    if manifest.empty:
        raise InputError(f"{run.root / 'images' / 'manifest.parquet'} lists no images; run the generate stage (notebook 03) first.")
    bench = pd.read_parquet(require(run.root, "benchmark.parquet"))
    items = image_items(run.root, manifest, bench)
    actions = [a for a in dict.fromkeys(bench["action"]) if a]
    cache = JsonlCache(run.path("scores_cache.jsonl"))
    rows, boxes = [], []
    with run.stage("evaluate"):
        for judge in make_judges(cfg, resolve_device(run.config.device), actions, run=run):
            for item, values in zip(items, judge_all(judge, items, cache, cfg.batch_size, progress)):
                key = {k: item[k] for k in ("model", "variant", "id", "seed")}
                for metric, value in values.items():
                    if metric == "_boxes":
                        boxes += [{**key, "agent": b["agent"], "score": b["score"], "x0": b["box"][0], "y0": b["box"][1],
                                   "x1": b["box"][2], "y1": b["box"][3]} for b in value]
                    else:
                        rows.append({**key, "metric": metric, "value": value, "judge": judge.model_ref})
        scores = pd.DataFrame(rows, columns=SCORE_COLUMNS)
        write_parquet(run.path("scores.parquet"), scores)
        write_parquet(run.path("detections.parquet"),
                      pd.DataFrame(boxes, columns=["model", "variant", "id", "seed", "agent", "score", "x0", "y0", "x1", "y1"]))
    return scores


def summary(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean of each metric per model and variant (variants in their run order)."""
    table = scores.pivot_table(index=["model", "variant"], columns="metric", values="value", aggfunc="mean", sort=False)
    return table.round(3)


def vqa_breakdown(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean VQA answers per model and variant, with the share of images where the role-reversed
    question gets a higher "Yes" than the stated one (a suspected role reversal)."""
    vqa = scores[scores["metric"].str.startswith("vqa")]
    wide = vqa.pivot_table(index=["model", "variant", "id", "seed"], columns="metric", values="value", sort=False)
    if {"vqa_action", "vqa_reversed"} <= set(wide.columns):
        wide["reversal_suspected"] = (wide["vqa_reversed"] > wide["vqa_action"]).astype(float)
    return wide.groupby(level=["model", "variant"], sort=False).mean().round(3)
