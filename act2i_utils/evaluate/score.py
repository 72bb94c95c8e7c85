"""`score`: any judge on any images, outside a run, in one line.

    >>> from act2i_utils.evaluate import score
    >>> score(["cat.png"], "a cat chasing a dog", metric="clipscore", model="tiny:clip")
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from ..errors import InputError


def _as_list(value, n: int, name: str) -> list:
    if value is None or isinstance(value, str):
        return [value] * n
    values = list(value)
    if len(values) != n:
        raise InputError(f"score: {name} has {len(values)} entries for {n} images; give one per image (or one for all).")
    return values


def _open(image, i: int):
    from PIL import Image

    if isinstance(image, Image.Image):
        return image.convert("RGB")
    try:
        with Image.open(image) as img:
            return img.convert("RGB")
    except (OSError, ValueError, AttributeError) as err:
        raise InputError(f"score: image {i} ({image}) cannot be read as an image ({type(err).__name__}).") from None


def score(images, prompts, metric: str = "clipscore", model: str | None = None, *, device: str = "cpu",
          batch_size: int = 16, animal1=None, animal2=None, action=None, actions: list[str] | dict | None = None,
          spatial_topology=None, **settings) -> pd.DataFrame:
    """Score `images` (paths or PIL images) against `prompts` (one text per image, or one for all).

    Args:
        metric: a judge from `list_metrics()`: clipscore, vqa, vlm_api, detection, action_clip, pickscore, reference.
        model: the judge's model as a profile names it (Hub id, local folder or `tiny:NAME`);
            default: the paper profile's model for that judge.
        animal1, animal2, action: the agents and action of each image (one per image, or one for
            all), for the judges that ask about them (vqa's decomposition, detection, action_clip).
        actions: the action classifier's candidates (phrases, or phrase -> template, which the VQA
            atoms also use); default: the distinct values of `action`.
        spatial_topology: physical contact, pursuit or distant interaction (one per image, or one for
            all), for detection's `geo_topology`.
        settings: other `evaluate` settings, e.g. `detection_threshold=0.2`, `reference_dir=...`,
            `vlm_api_base_url="http://localhost:8000/v1"`.

    Returns:
        One row per (image, metric): image (its index, or its path when given one), prompt, metric, value, judge.
    """
    from PIL import Image

    from ..config import EvaluateConfig
    from .stage import JUDGES, check_metrics, make_judges, with_derived

    check_metrics([metric], "score(metric=...)")
    known = [f.name for f in dataclasses.fields(EvaluateConfig) if f.name not in ("metrics", "batch_size")]
    unknown = [k for k in settings if k not in known]
    if unknown:
        raise InputError(f"score: unknown setting(s) {', '.join(unknown)}; known: {', '.join(known)}.")
    images = [images] if isinstance(images, (str, Path, Image.Image)) else list(images)
    n = len(images)
    texts = _as_list(prompts, n, "prompts")
    firsts, seconds, acts = _as_list(animal1, n, "animal1"), _as_list(animal2, n, "animal2"), _as_list(action, n, "action")
    topologies = _as_list(spatial_topology, n, "spatial_topology")
    field = JUDGES[metric][0]
    cfg = dataclasses.replace(EvaluateConfig(), **({field: model} if model else {}), **settings)
    candidates = actions if actions is not None else [a for a in dict.fromkeys(acts) if a]
    judge = make_judges(cfg, device, candidates, [metric])
    if not judge:
        raise InputError(f"score: the {metric} judge needs more settings (see the warning above).")
    templates = actions if isinstance(actions, dict) else {}
    items = [{"base_prompt": t, "animal1": a, "animal2": b, "action": act, "action_template": templates.get(act),
              "spatial_topology": top} for t, a, b, act, top in zip(texts, firsts, seconds, acts, topologies)]
    rows = []
    for start in range(0, n, batch_size):
        batch = [_open(image, start + i) for i, image in enumerate(images[start:start + batch_size])]
        values = judge[0].score(batch, items[start:start + batch_size])
        for i, result in enumerate(values, start):
            name = str(images[i]) if isinstance(images[i], (str, Path)) else i
            source = result.get("_judge", judge[0].model_ref)
            rows += [{"image": name, "prompt": texts[i], "metric": m, "value": v, "judge": source}
                     for m, v in with_derived(judge[0], result, items[i]).items() if not m.startswith("_")]
    return pd.DataFrame(rows, columns=["image", "prompt", "metric", "value", "judge"])
