"""The images of a run and their manifest (paths in `runs.RunPaths`, columns in `schema.MANIFEST`).

    images/<model>/<variant>/<id>_<seed>.png
    images/manifest.parquet           one row per image (merged)
    images/manifest.parts/*.jsonl     rows appended batch by batch, one file per process

A core module: the generate stage and `import-images` write the manifest; evaluate, the human
study and the analysis read it. Each process appends the rows of a finished batch to its own JSON-lines part (fsynced), so an
interruption loses at most the batch in flight; `merge_manifest` folds the parts into
manifest.parquet, the newest row winning for each (model, variant, id, seed).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pandas as pd

from .fileio import atomic_path
from .runs import RunPaths
from .schema import KEY, MANIFEST


def prompt_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def is_valid_png(path: Path) -> bool:
    """True when the file is a complete image: every chunk present with a correct checksum (a
    truncated or damaged write is not). Checks without decoding, so a rerun over 10,000 images stays quick."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.verify()
        return True
    except Exception:  # noqa: BLE001 - any decoding problem means: make it again
        return False


def save_png(image, path: Path, metadata: dict) -> str:
    """Write a PNG atomically, with the generation settings in a text chunk; returns its content hash."""
    import io

    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("act2i", json.dumps(metadata, sort_keys=True))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    data = buffer.getvalue()
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return image_hash(data)


def image_hash(data: bytes) -> str:
    """The content hash of an image file, recorded in the manifest and checked before judging."""
    return hashlib.sha256(data).hexdigest()


def append_rows(run_root: Path, part: str, rows: list[dict]) -> None:
    """Durably append finished rows to this process's manifest part."""
    if not rows:
        return
    folder = RunPaths(run_root).manifest_parts
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{part}.jsonl", "a", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_manifest(run_root: Path) -> pd.DataFrame:
    """manifest.parquet plus any rows still in parts, newest row per image."""
    frames = []
    paths = RunPaths(run_root)
    if paths.manifest_path.is_file():
        frames.append(pd.read_parquet(paths.manifest_path))
    folder = paths.manifest_parts
    if folder.is_dir():
        rows = []
        for part in sorted(folder.glob("*.jsonl")):
            for line in part.read_text(encoding="utf-8").splitlines():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    continue  # cut short by an interruption
        if rows:
            frames.append(pd.DataFrame(rows))
    if not frames:
        return MANIFEST.empty()
    merged = pd.concat(frames, ignore_index=True)
    for column in MANIFEST.columns:
        if column not in merged:
            merged[column] = None
    merged = merged[MANIFEST.columns].drop_duplicates(KEY, keep="last")
    return MANIFEST.validate(merged.sort_values(KEY, kind="stable").reset_index(drop=True), paths.manifest_path)


def merge_manifest(run_root: Path) -> pd.DataFrame:
    """Fold the parts into manifest.parquet (atomically) and remove them."""
    paths = RunPaths(run_root)
    merged = MANIFEST.write(paths.manifest_path, read_manifest(run_root))
    folder = paths.manifest_parts
    if folder.is_dir():
        for part in folder.glob("*.jsonl"):
            part.unlink()
        folder.rmdir()
    return merged


def configured_images(run) -> tuple[pd.DataFrame, int]:
    """The manifest rows the run's current config names, and how many other rows are set aside.

    An image counts when its model, variant and seed are in the profile (any seed for an external
    model's imported images), its prompt id is in the benchmark, and it was made from the current
    prompt text (sample 0 of its variant); images of earlier settings stay on disk but no stage uses them.
    """
    from .schema import PROMPTS

    manifest = read_manifest(run.root)
    cfg = run.config.generate
    external = [m.label for m in cfg.models if m.external]  # images made elsewhere: whatever seeds they were imported with
    keep = (manifest["model"].isin([m.label for m in cfg.models]) & manifest["variant"].isin(cfg.variants)
            & (manifest["seed"].astype(int).isin(cfg.seeds) | manifest["model"].isin(external)))
    if run.benchmark_path.is_file():
        keep &= manifest["id"].isin(pd.read_parquet(run.benchmark_path, columns=["id"])["id"])
    if run.prompts_path.is_file():
        prompts = PROMPTS.read(run.prompts_path)
        current = {(i, v): prompt_hash(t) for i, v, t in prompts.loc[prompts["sample"] == 0, ["id", "variant", "text"]].itertuples(index=False)}
        made_from = [current.get((i, v)) == h or s == "imported"
                     for i, v, h, s in zip(manifest["id"], manifest["variant"], manifest["prompt_hash"], manifest["source"])]
        keep &= pd.Series(made_from, index=manifest.index, dtype=bool)
    select = getattr(run.config, "select", None)
    if select is not None and select.enabled and len(manifest):
        keep = keep | _select_images(run, manifest, keep)  # the select stage's candidates and choices
    return manifest[keep].reset_index(drop=True), int((~keep).sum())


# --- the select stage's images (issue 21) ----------------------------------------------------

SELECTED_SOURCE = "selected"  # manifest rows of a selected variant: a pointer to a candidate's image, no copy


def sample_variant_parts(variant: str) -> tuple[str, int] | None:
    """(dimension, sample) of a rewrite-sample variant (`temporal.s1` -> ("temporal", 1)); None for any other."""
    import re

    match = re.match(r"^(.+)\.s([1-9][0-9]*)$", str(variant))
    return (match.group(1), int(match.group(2))) if match else None


def select_fingerprint(config) -> str:
    """What a selection depends on in the profile: a selected row made under other settings is set aside."""
    import dataclasses

    judges = {k: v for k, v in dataclasses.asdict(config.evaluate).items()
              if not k.endswith(("batch_size", "concurrency", "timeout_s", "max_retries"))}
    return json.dumps({"select": dataclasses.asdict(config.select), "seeds": list(config.generate.seeds),
                       "variants": list(config.generate.variants), "n_samples": config.enrich.n_samples,
                       "evaluate": judges}, sort_keys=True, default=str)


def _select_images(run, manifest: pd.DataFrame, keep: pd.Series) -> pd.Series:
    """Rows the select stage adds to what the config names: images of rewrite samples 1..n-1 of the
    configured variants (made from the current text of that sample), of the refinement round's
    rewrites (`refined`, when select.refine is on), and the rows of the selected
    variants the config makes, made under the current settings, each pointing at an image the
    config names (with the same content)."""
    from .schema import PROMPTS

    cfg, select = run.config.generate, run.config.select
    base = (manifest["model"].isin([m.label for m in cfg.models]) & manifest["seed"].astype(int).isin(cfg.seeds))
    if run.benchmark_path.is_file():
        base &= manifest["id"].isin(pd.read_parquet(run.benchmark_path, columns=["id"])["id"])
    samples = pd.Series(False, index=manifest.index)
    if select.rewrite_samples and run.config.enrich.n_samples > 1 and run.prompts_path.is_file():
        prompts = PROMPTS.read(run.prompts_path)
        current = {(i, v, int(k)): prompt_hash(t) for i, v, k, t in prompts[["id", "variant", "sample", "text"]].itertuples(index=False)}
        flags = []
        for i, v, h in zip(manifest["id"], manifest["variant"], manifest["prompt_hash"]):
            parts = sample_variant_parts(v)
            flags.append(parts is not None and parts[0] in cfg.variants and parts[0] != "base"
                         and parts[1] < run.config.enrich.n_samples and current.get((i, parts[0], parts[1])) == h)
        samples = pd.Series(flags, index=manifest.index, dtype=bool) & base
    if select.refine and run.select_refine_path.is_file():  # the refinement round's rewrites, one per (model, prompt)
        from .schema import SELECT_REFINE

        texts = {(m, i): prompt_hash(t) for m, i, t in SELECT_REFINE.read(run.select_refine_path)[["model", "id", "text"]]
                 .itertuples(index=False) if isinstance(t, str)}
        refined = [v == "refined" and texts.get((m, i)) == h
                   for m, v, i, h in zip(manifest["model"], manifest["variant"], manifest["id"], manifest["prompt_hash"])]
        samples = samples | (pd.Series(refined, index=manifest.index, dtype=bool) & base)
    pointed = keep | samples
    images = dict(zip(manifest.loc[pointed, "path"], manifest.loc[pointed, "image_hash"]))
    fingerprint = select_fingerprint(run.config)
    chosen = [src == SELECTED_SOURCE and v in select.variants(cfg.seeds) and settings == fingerprint
              and path in images and images[path] == content
              for v, src, settings, path, content in zip(manifest["variant"], manifest["source"], manifest["settings"],
                                                         manifest["path"], manifest["image_hash"])]
    return samples | (pd.Series(chosen, index=manifest.index, dtype=bool) & base)
