"""Setting up, exporting and summarising a run's human study."""

from __future__ import annotations

import ipaddress
import warnings
from pathlib import Path

import pandas as pd

from ..errors import InputError
from ..fileio import atomic_path, write_parquet
from ..runs import require
from . import storage
from .agreement import agreement, per_annotator

EXPORT_COLUMNS = ["annotator", "image_id", "model", "variant", "prompt_id", "seed", "label", "tags", "comment",
                  "seconds", "source", "created"]


def prepare_study(run_root: Path, overlap: int, seed: int = 0) -> Path:
    """Create or update the study database from the run's manifest, and assign images."""
    from ..generate.manifest import read_manifest

    run_root = Path(run_root)
    manifest = read_manifest(run_root)
    if manifest.empty:
        raise InputError(f"{run_root} has no images yet; run the generate stage before starting a study.")
    bench = pd.read_parquet(require(run_root, "benchmark.parquet"))
    db = storage.db_path(run_root)
    storage.init_db(db)
    storage.sync_images(db, manifest, bench)
    storage.assign(db, overlap, seed)
    return db


def add_annotator(run_root: Path, name: str, overlap: int, seed: int = 0, host: str = "127.0.0.1", port: int = 8765) -> str:
    """Register an annotator, assign them images, and return their personal login link."""
    if not name or len(name) > 64 or not all(c.isalnum() or c in "-_. " for c in name):
        raise InputError(f"Annotator name '{name}' must be 1-64 letters, digits, spaces, dots, dashes or underscores.")
    db = prepare_study(run_root, overlap, seed)
    token = storage.add_annotator(db, name)
    storage.assign(db, overlap, seed)
    return f"http://{host}:{port}/login?token={token}"


def export(run_root: Path) -> tuple[Path, Path]:
    """Write annotations.parquet and annotations.csv: one row per live answer."""
    db = storage.db_path(run_root)
    if not db.is_file():
        raise InputError(f"{run_root} has no annotations.sqlite; start a study with `act2i annotate serve` first.")
    table = storage.live_answers(db)[EXPORT_COLUMNS]
    parquet, csv = Path(run_root) / "annotations.parquet", Path(run_root) / "annotations.csv"
    write_parquet(parquet, table)
    with atomic_path(csv) as tmp:
        table.to_csv(tmp, index=False)
    return parquet, csv


def status(run_root: Path) -> tuple[dict, pd.DataFrame]:
    """Agreement over the overlap and per-annotator acceptance and time."""
    db = storage.db_path(run_root)
    if not db.is_file():
        raise InputError(f"{run_root} has no annotations.sqlite; start a study with `act2i annotate serve` first.")
    answers = storage.live_answers(db)
    return agreement(answers), per_annotator(answers)


def check_host(host: str) -> None:
    """Warn when the server would be reachable from other machines."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        warnings.warn(f"Serving on {host}: anyone who can reach this address can see the login page; the study is "
                      "protected by the annotators' tokens only. Use 127.0.0.1 unless you need remote annotators.",
                      stacklevel=2)


def serve(run_root: Path, host: str = "127.0.0.1", port: int = 8765, overlap: int = 3, seed: int = 0) -> None:
    """Run the annotation server until interrupted."""
    import uvicorn

    from .app import create_app

    check_host(host)
    prepare_study(run_root, overlap, seed)
    uvicorn.run(create_app(run_root), host=host, port=port, log_level="warning")
