"""The image layout and its manifest.

    images/<model>/<variant>/<id>_<seed>.png
    images/manifest.parquet           one row per image (merged)
    images/manifest.parts/*.jsonl     rows appended batch by batch, one file per process

Each process appends the rows of a finished batch to its own JSON-lines part (fsynced), so an
interruption loses at most the batch in flight; `merge_manifest` folds the parts into
manifest.parquet, the newest row winning for each (model, variant, id, seed).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pandas as pd

from ..fileio import atomic_path, write_parquet

KEY = ["model", "variant", "id", "seed"]
COLUMNS = KEY + ["prompt", "prompt_hash", "path", "width", "height", "steps", "guidance", "model_id", "dtype",
                 "seconds", "source", "versions", "created"]


def image_relpath(model: str, variant: str, prompt_id: str, seed: int) -> str:
    """Where an image lives, relative to the run directory."""
    return f"images/{model}/{variant}/{prompt_id}_{seed}.png"


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


def save_png(image, path: Path, metadata: dict) -> None:
    """Write a PNG atomically, with the generation settings in a text chunk."""
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("act2i", json.dumps(metadata, sort_keys=True))
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG", pnginfo=info)


def parts_dir(run_root: Path) -> Path:
    return run_root / "images" / "manifest.parts"


def append_rows(run_root: Path, part: str, rows: list[dict]) -> None:
    """Durably append finished rows to this process's manifest part."""
    if not rows:
        return
    folder = parts_dir(run_root)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{part}.jsonl", "a", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_manifest(run_root: Path) -> pd.DataFrame:
    """manifest.parquet plus any rows still in parts, newest row per image."""
    frames = []
    path = run_root / "images" / "manifest.parquet"
    if path.is_file():
        frames.append(pd.read_parquet(path))
    folder = parts_dir(run_root)
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
        return pd.DataFrame(columns=COLUMNS)
    merged = pd.concat(frames, ignore_index=True)
    for column in COLUMNS:
        if column not in merged:
            merged[column] = None
    merged = merged[COLUMNS].drop_duplicates(KEY, keep="last")
    return merged.sort_values(KEY, kind="stable").reset_index(drop=True)


def merge_manifest(run_root: Path) -> pd.DataFrame:
    """Fold the parts into manifest.parquet (atomically) and remove them."""
    merged = read_manifest(run_root)
    write_parquet(run_root / "images" / "manifest.parquet", merged)
    folder = parts_dir(run_root)
    if folder.is_dir():
        for part in folder.glob("*.jsonl"):
            part.unlink()
        folder.rmdir()
    return merged
