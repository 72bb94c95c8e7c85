"""Setting up, exporting and summarising a run's human study, and `answers`: the study's current
answers, read from the live database (the way every other stage gets human judgements).
`serve_banner` says where the server listens, with links that work from other machines."""

from __future__ import annotations

import csv
import ipaddress
import socket
import warnings
from pathlib import Path

import pandas as pd

from ..errors import InputError
from ..fileio import atomic_path
from ..manifest import configured_images
from ..runs import RunPaths
from ..schema import ANNOTATIONS, ANNOTATION_PLAN, KEY, load_benchmark
from . import storage
from .agreement import agreement, per_annotator


def _paths(run: RunPaths | str | Path) -> RunPaths:
    return run if isinstance(run, RunPaths) else RunPaths(run)


def answers(run: RunPaths | str | Path) -> pd.DataFrame:
    """Every live answer of the run's study (`schema.ANNOTATIONS`), read from the database itself,
    never from an export, so it is always current; empty when no study has started."""
    db = _paths(run).annotations_db_path
    if not db.is_file():
        return ANNOTATIONS.empty()
    return ANNOTATIONS.validate(storage.live_answers(db), db)


def prepare_study(run_root: Path, overlap: int, seed: int = 0) -> Path:
    """Create or update the study database from the run's manifest, and assign images.

    `overlap` (annotators per image) may rise during a study, never fall: a lower one than the
    study's is refused with an InputError, since it would take images from people mid-study."""
    from ..runs import open_run

    paths = RunPaths(run_root)
    manifest, _ = configured_images(open_run(paths.root, readonly=True))  # what the run's config names
    if paths.annotation_plan_path.is_file():  # `act2i annotate plan` chose which images people see
        chosen = ANNOTATION_PLAN.read(paths.annotation_plan_path)
        manifest = manifest.merge(chosen.loc[chosen["selected"], KEY], on=KEY)
    if manifest.empty:
        raise InputError(f"{run_root} has no images to judge yet; run the generate stage before starting a study.")
    bench = load_benchmark(paths.require(paths.benchmark_path))
    db = paths.annotations_db_path
    storage.init_db(db)
    storage.sync_images(db, manifest, bench)
    storage.assign(db, overlap, seed)
    return db


def add_annotator(run_root: Path, name: str, overlap: int, seed: int = 0, host: str = "127.0.0.1", port: int = 8765,
                  rotate: bool = False) -> str:
    """Register an annotator, assign them images, and return their personal login link.

    A name that already has a link is refused unless `rotate`: then they get a new link, the old one
    stops working, and their images and answers stay theirs. Links for a server on every interface
    (host 0.0.0.0 or ::) name this machine's address instead."""
    if not 1 <= len(name) <= 64 or name != name.strip() or not all(c.isalnum() or c in "-_. " for c in name):
        raise InputError(f"Annotator name '{name}' must be 1-64 letters, digits, spaces, dots, dashes or underscores, "
                         "not blank and without spaces at either end.")
    db = prepare_study(run_root, overlap, seed)
    token = storage.add_annotator(db, name, rotate=rotate)
    storage.assign(db, overlap, seed)
    return f"{base_url(host, port)}/login?token={token}"


def machine_address() -> str:
    """This machine's address on its network (the interface of its default route), else its hostname's."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # a UDP connect sends nothing: it only picks the outgoing interface
            return probe.getsockname()[0]
    except OSError:
        try:
            return socket.gethostbyname(socket.gethostname())
        except OSError:
            return "127.0.0.1"


def base_url(host: str, port: int) -> str:
    """The address people open: a wildcard host becomes this machine's address."""
    if host in ("0.0.0.0", "::", ""):
        host = machine_address()
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve_banner(host: str, port: int) -> str:
    """What `act2i annotate serve` prints: where to open the study, and on a non-loopback host, that
    the connection is plain HTTP."""
    everywhere = " on all network interfaces" if host in ("0.0.0.0", "::", "") else ""
    lines = [f"act2i: serving on {base_url(host, port)}{everywhere} (Ctrl+C stops; answers are saved as they come)"]
    if not _is_loopback(host):
        lines.append("act2i: this is plain HTTP: links, tokens and answers cross the network unencrypted and the login "
                     "cookie is not Secure; use a trusted network, or put an HTTPS proxy in front.")
    return "\n".join(lines)


def _live_answers(paths: RunPaths) -> pd.DataFrame:
    """`answers`, refusing a run without a study."""
    if not paths.annotations_db_path.is_file():
        raise InputError(f"{paths.root} has no {paths.annotations_db_path.name}; "
                         "start a study with `act2i annotate serve` first.")
    return answers(paths)


def export(run_root: Path) -> tuple[Path, Path]:
    """Write annotations.parquet and annotations.csv: one row per live answer (a snapshot of `answers`).
    In the CSV only, text a spreadsheet would run as a formula starts with an apostrophe."""
    paths = RunPaths(run_root)
    table = ANNOTATIONS.write(paths.annotations_path, _live_answers(paths))
    with atomic_path(paths.annotations_csv_path) as tmp:
        _spreadsheet_safe(table).to_csv(tmp, index=False, quoting=csv.QUOTE_NONNUMERIC)
    return paths.annotations_path, paths.annotations_csv_path


def _spreadsheet_safe(table: pd.DataFrame) -> pd.DataFrame:
    """Text a spreadsheet would run as a formula, quoted with a leading apostrophe (CSV only;
    the parquet keeps the raw text)."""
    table = table.copy()
    for column in table.columns:
        if pd.api.types.is_string_dtype(table[column]):
            risky = table[column].str.match(r"[=+\-@\t\r]", na=False)
            table.loc[risky, column] = "'" + table.loc[risky, column]
    return table


def status(run_root: Path) -> tuple[dict, pd.DataFrame]:
    """Agreement over the overlap and per-annotator acceptance and time."""
    table = _live_answers(RunPaths(run_root))
    return agreement(table), per_annotator(table)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def check_host(host: str) -> None:
    """Warn when the server would be reachable from other machines."""
    if not _is_loopback(host):
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
