"""Images of the rewrite samples beyond the first, the select stage's extra candidates.

The generate stage makes images from sample 0 of each variant. With `enrich.n_samples > 1` and
`select.rewrite_samples`, this makes the other samples' images the same way (the same pipeline
loader, options and per-image seeding, so an image depends only on its prompt, seed and settings),
under the variant `<dimension>.s<sample>` (`policies.sample_variant`), into the run's manifest.
Existing intact images made from the same text and settings are skipped, as in the generate stage.
"""

from __future__ import annotations

import dataclasses
import json
import time

import pandas as pd

from ..manifest import append_rows, merge_manifest, prompt_hash, read_manifest, save_png
from ..registry import resolve_spec
from ..runs import now, package_versions
from ..schema import KEY
from .policies import sample_variant


def sample_jobs(prompts: pd.DataFrame, labels: list[str], variants: list[str], seeds: list[int], n_samples: int) -> list:
    """Every (model, `<dimension>.s<k>`, id, seed) image to make, in a fixed order, with its text."""
    from ..generate.stage import ImageJob

    text = prompts.set_index(["id", "variant", "sample"])["text"]
    ids = list(dict.fromkeys(prompts["id"]))
    jobs = []
    for label in labels:
        for variant in [v for v in variants if v != "base"]:  # base has one text, whatever the sample
            for k in range(1, n_samples):
                for pid in ids:
                    if (pid, variant, k) not in text.index:
                        continue
                    jobs += [ImageJob(label, sample_variant(variant, k), pid, int(s), text[(pid, variant, k)]) for s in seeds]
    return jobs


def make_sample_images(run, prompts: pd.DataFrame, progress: bool = True) -> int:
    """Make the missing images of rewrite samples 1..n-1; returns how many were made."""
    cfg = run.config.generate
    labels = [m.label for m in cfg.made_here()]  # an external model's images cannot be made here
    return make_images(run, sample_jobs(prompts, labels, cfg.variants, cfg.seeds, run.config.enrich.n_samples),
                       progress, "rewrite samples")


def make_images(run, jobs: list, progress: bool = True, what: str = "candidates") -> int:
    """Make the missing images of `jobs` (generate's ImageJob) exactly as the generate stage makes
    its own, append them to the manifest and merge it; returns how many were made."""
    from ..generate.pipelines import call_kwargs, dtype_used, generate_images, load_pipeline
    from ..generate.stage import is_done, make_batches, settings_json, with_weights
    from ..progress import progress_bar
    from ..runs import resolve_device

    cfg = run.config.generate
    device = resolve_device(run.config.device)
    specs = [resolve_spec(m) for m in cfg.made_here()]
    specs = [with_weights(dataclasses.replace(s, dtype=dtype_used(s, device))) for s in specs]
    records = {tuple(r[k] for k in KEY): r for r in read_manifest(run.root).to_dict("records")}
    by_label = {s.label: s for s in specs}
    todo = [j for j in jobs if not is_done(j, by_label[j.model], records.get(j.key), run.root)]
    if not todo:
        return 0
    versions = json.dumps(package_versions(("torch", "diffusers", "transformers", "act2i")), sort_keys=True)
    made = 0
    for spec in specs:
        mine = [j for j in todo if j.model == spec.label]
        if not mine:
            continue
        pipe = load_pipeline(spec, device=device, options=cfg, run=run)
        kwargs = call_kwargs(pipe, spec)
        with progress_bar(total=len(mine), desc=f"{spec.label} / {what}", unit="img", disable=not progress) as bar:
            for batch in make_batches(mine, cfg.batch_size):
                t0 = time.perf_counter()
                images = generate_images(pipe, [j.prompt for j in batch], [j.seed for j in batch], kwargs)
                seconds = (time.perf_counter() - t0) / len(batch)
                rows = []
                for job, image in zip(batch, images):
                    settings = spec.settings()
                    meta = {"model": job.model, "variant": job.variant, "id": job.id, "seed": job.seed, "prompt": job.prompt,
                            **settings}
                    content = save_png(image, run.root / job.relpath, meta)
                    rows.append({
                        "model": job.model, "variant": job.variant, "id": job.id, "seed": job.seed, "prompt": job.prompt,
                        "prompt_hash": prompt_hash(job.prompt), "path": job.relpath, "width": image.width,
                        "height": image.height, "steps": spec.steps, "guidance": spec.guidance, "model_id": spec.id,
                        "dtype": spec.dtype, "seconds": round(seconds, 4), "source": "generated", "versions": versions,
                        "created": now(), "settings": settings_json(spec), "image_hash": content,
                    })
                append_rows(run.root, "select", rows)
                made += len(rows)
                bar.update(len(batch))
        del pipe
    merge_manifest(run.root)
    return made
