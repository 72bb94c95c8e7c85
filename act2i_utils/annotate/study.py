"""Setting up, exporting and summarising a run's human study, and `answers`: the study's current
answers, read from the live database (the way every other stage gets human judgements).
`serve_banner` says where the server listens, with links that work from other machines."""

from __future__ import annotations

import csv
import dataclasses
import ipaddress
import socket
import warnings
from pathlib import Path

import pandas as pd

from ..errors import InputError
from ..fileio import atomic_path
from ..manifest import configured_images
from ..runs import RunPaths
from ..schema import ANNOTATIONS, ANNOTATION_PLAN, KEY, PAIR_ANSWERS, PAIRS, RATINGS, load_benchmark
from . import crowd, pairs, storage
from .agreement import agreement, per_annotator


def _paths(run: RunPaths | str | Path) -> RunPaths:
    return run if isinstance(run, RunPaths) else RunPaths(run)


def answers(run: RunPaths | str | Path, include_excluded: bool = False) -> pd.DataFrame:
    """Every live answer about the run's study images (`schema.ANNOTATIONS`), read from the database
    itself, never from an export, so it is always current; empty when no study has started. Gold
    answers are never among them, and the answers of raters excluded by the gold rule only with
    `include_excluded` (`raters(run)` says who and why)."""
    paths = _paths(run)
    db = paths.annotations_db_path
    if not db.is_file():
        return ANNOTATIONS.empty()
    table = ANNOTATIONS.validate(storage.live_answers(db), db)
    if include_excluded or table.empty:
        return table
    excluded = raters(paths)
    excluded = set(excluded.loc[excluded["excluded"].astype(bool), "annotator"])
    return table[~table["annotator"].isin(excluded)].reset_index(drop=True) if excluded else table


def raters(run: RunPaths | str | Path) -> pd.DataFrame:
    """One row per rater (`crowd.quality`): images, gold answers and errors, median seconds, excluded
    (more than annotate.max_gold_errors wrong gold answers) and fast (median below annotate.min_seconds)."""
    paths = _paths(run)
    settings = _annotate_settings(paths)
    return crowd.quality(paths.annotations_db_path, settings.max_gold_errors, settings.min_seconds)


def _annotate_settings(paths: RunPaths):
    from ..config import AnnotateConfig
    from ..runs import Run, open_run

    if isinstance(paths, Run):
        return paths.config.annotate
    if paths.config_path.is_file():
        return open_run(paths.root, readonly=True).config.annotate
    return AnnotateConfig()


def prepare_study(run_root: Path, overlap: int, seed: int = 0, study: "crowd.Settings | None" = None,
                  pair_mode: bool = False) -> Path:
    """Create or update the study database from the run's manifest, and assign images to the lab's
    annotators; for a crowd study (`study`), add its gold images (crowd workers get their batches
    when they consent); with `pair_mode`, add the planned pairs (`pairs.parquet`, planned now if the
    run has none) and assign those instead.

    `overlap` (annotators per image) may rise during a study, never fall: a lower one than the
    study's is refused with an InputError, since it would take images from people mid-study."""
    from ..runs import open_run

    paths = RunPaths(run_root)
    run = open_run(paths.root, readonly=True)
    manifest, _ = configured_images(run)  # what the run's config names
    if paths.annotation_plan_path.is_file() and not pair_mode:  # `act2i annotate plan` chose which images people see
        chosen = ANNOTATION_PLAN.read(paths.annotation_plan_path)
        manifest = manifest.merge(chosen.loc[chosen["selected"], KEY], on=KEY)
    if manifest.empty:
        raise InputError(f"{run_root} has no images to judge yet; run the generate stage before starting a study.")
    bench = load_benchmark(paths.require(paths.benchmark_path))
    db = paths.annotations_db_path
    gold = crowd.read_gold(crowd._file(run.config.annotate.gold_file, "annotate.gold_file")) \
        if study is not None and run.config.annotate.gold_file else []
    storage.init_db(db)
    storage.sync_images(db, manifest, bench)
    if gold:
        crowd.sync_gold(db, paths.annotation_gold, paths.root, gold)
    if pair_mode:
        plan = PAIRS.read(paths.pairs_path) if paths.pairs_path.is_file() else pairs.plan_pairs(open_run(paths.root))
        pairs.sync_pairs(db, plan, bench)
        pairs.assign_lab_pairs(db, overlap, seed)
    else:
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
    pairs.assign_lab_pairs(db, overlap, seed)  # a pair study: their pairs too (nothing when there are none)
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


def export(run_root: Path) -> tuple[Path, ...]:
    """Write annotations.parquet and annotations.csv (one row per live answer the analysis uses: a
    snapshot of `answers`), ratings.parquet and ratings.csv (one row per live answer of every rater,
    gold and excluded raters included, with the gold result and the exclusion: what a paper
    publishes) and raters.csv (`raters`). In the CSVs only, text a spreadsheet would run as a
    formula starts with an apostrophe."""
    paths = RunPaths(run_root)
    table = ANNOTATIONS.write(paths.annotations_path, _live_answers(paths))
    _write_csv(paths.annotations_csv_path, table)
    ratings = RATINGS.write(paths.ratings_path, per_rater(paths))
    _write_csv(paths.ratings_csv_path, ratings)
    _write_csv(paths.raters_csv_path, raters(paths))
    written = (paths.annotations_path, paths.annotations_csv_path, paths.ratings_path, paths.ratings_csv_path,
               paths.raters_csv_path)
    compared = pair_answers(paths)
    if len(compared):  # a pair study: one row per answer about a pair
        PAIR_ANSWERS.write(paths.pair_answers_path, compared)
        _write_csv(paths.pair_answers_csv_path, compared)
        written += (paths.pair_answers_path, paths.pair_answers_csv_path)
    return written


def per_rater(run: RunPaths | str | Path) -> pd.DataFrame:
    """Every live answer of every rater (`schema.RATINGS`), gold included, with the gold result and
    whether the rater is excluded; no platform id, no comment (free text may name a person)."""
    paths = _paths(run)
    db = paths.annotations_db_path
    every = pd.concat([storage.live_answers(db).assign(gold_expected=None),
                       _gold_answers(db)], ignore_index=True)
    if every.empty:
        return RATINGS.empty()
    every["gold_correct"] = [None if g is None or g != g else bool(label == g)
                             for label, g in zip(every["label"], every["gold_expected"])]
    excluded = raters(paths)
    excluded = set(excluded.loc[excluded["excluded"].astype(bool), "annotator"])
    every["excluded"] = every["annotator"].isin(excluded)
    return RATINGS.validate(every.sort_values("created", kind="stable")[RATINGS.columns].reset_index(drop=True))


def pair_answers(run: RunPaths | str | Path) -> pd.DataFrame:
    """Every live answer about a pair (`schema.PAIR_ANSWERS`), gold pairs included, with what it means
    for a and b (`outcome_a`) and whether the rater is excluded."""
    paths = _paths(run)
    live = pairs.live_pair_answers(paths.annotations_db_path)
    if live.empty:
        return PAIR_ANSWERS.empty()
    plan = PAIRS.read(paths.pairs_path)[["pair_id", "id", "a", "b", "left"]] if paths.pairs_path.is_file() else \
        pd.DataFrame(columns=["pair_id", "id", "a", "b", "left"])
    table = live.merge(plan, on="pair_id", how="left")
    table["outcome_a"] = [pairs.outcome_for_a(c, l) for c, l in zip(table["choice"], table["left_is_a"])]
    table["gold_expected"] = table["gold"]
    table["gold_correct"] = [None if g is None or g != g else bool(c == g) for c, g in zip(table["choice"], table["gold"])]
    quality = raters(paths)
    table["excluded"] = table["annotator"].isin(set(quality.loc[quality["excluded"].astype(bool), "annotator"]))
    return PAIR_ANSWERS.validate(table[PAIR_ANSWERS.columns].reset_index(drop=True))


def pair_comparisons(run: RunPaths | str | Path) -> pd.DataFrame:
    """People's comparisons for the ranking: one row per live answer about a study pair by a rater who
    is not excluded (id, a, b, outcome_a, pair_id)."""
    table = pair_answers(run)
    table = table[table["gold_expected"].isna() & ~table["excluded"].astype(bool) & table["a"].notna()]
    return table[["pair_id", "id", "a", "b", "outcome_a"]].reset_index(drop=True)


def _gold_answers(db: Path) -> pd.DataFrame:
    import sqlite3

    gold = storage.live_answers(db, gold=True)
    if gold.empty:
        return gold.assign(gold_expected=None)
    conn = sqlite3.connect(db)
    try:
        expected = dict(conn.execute("SELECT image_id, gold FROM images WHERE gold IS NOT NULL").fetchall())
    finally:
        conn.close()
    return gold.assign(gold_expected=gold["image_id"].map(expected))


def _write_csv(path: Path, table: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        _spreadsheet_safe(table).to_csv(tmp, index=False, quoting=csv.QUOTE_NONNUMERIC)


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
    """Agreement over the overlap (excluded raters left out) and, per rater, acceptance, time, gold
    answers and errors, and whether (and why) they are excluded or flagged."""
    paths = RunPaths(run_root)
    table = _live_answers(paths)
    people = per_annotator(answers(paths, include_excluded=True))
    quality = raters(paths).set_index("annotator")
    people = people.join(quality[["gold_answers", "gold_errors", "excluded", "fast", "reason"]], how="outer")
    return agreement(table), people


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


def serve(run_root: Path, host: str = "127.0.0.1", port: int = 8765, overlap: int = 3, seed: int = 0,
          study: bool = False, root_path: str = "", forwarded_allow_ips: str | None = None,
          pair_mode: bool = False) -> None:
    """Run the annotation server until interrupted; `study=True` lets crowd workers in through the
    study link (`study_banner` says how). Behind a reverse proxy give its `root_path`; uvicorn trusts
    X-Forwarded-Proto from `forwarded_allow_ips` (default: 127.0.0.1)."""
    import uvicorn

    from ..runs import open_run
    from .app import create_app

    check_host(host)
    settings = crowd.settings(open_run(run_root, readonly=True)) if study else None
    if settings is not None:
        settings = dataclasses.replace(settings, overlap=overlap, pairs=pair_mode)  # --overlap, else annotate.overlap
    prepare_study(run_root, overlap, seed, study=settings, pair_mode=pair_mode)
    if settings is not None:
        print(study_banner(RunPaths(run_root), settings, host, port, root_path))
    uvicorn.run(create_app(run_root, settings, pair_mode=pair_mode), host=host, port=port, log_level="warning", root_path=root_path,
                proxy_headers=True, forwarded_allow_ips=forwarded_allow_ips)


def study_banner(paths: RunPaths, settings: "crowd.Settings", host: str, port: int, root_path: str = "") -> str:
    """The crowd study's link for each platform and its completion code, printed by `serve --study`."""
    with storage.connect(paths.annotations_db_path) as conn:
        code = crowd.completion_code(conn, settings)
        gold = conn.execute("SELECT COUNT(*) FROM images WHERE gold IS NOT NULL").fetchone()[0]
        images = conn.execute("SELECT COUNT(*) FROM images WHERE gold IS NULL").fetchone()[0]
    base = f"{base_url(host, port)}{root_path.rstrip('/')}/study"
    lines = [f"act2i: crowd study: {images} images x {settings.overlap} raters, batches of {settings.batch_size} "
             f"({settings.gold_per_batch} gold of {gold}); completion code {code}",
             f"act2i: Prolific study URL: {base}?PROLIFIC_PID={{{{%PROLIFIC_PID%}}}}&STUDY_ID={{{{%STUDY_ID%}}}}"
             f"&SESSION_ID={{{{%SESSION_ID%}}}}",
             f"act2i: MTurk external URL: {base} (MTurk adds workerId, assignmentId and hitId)"]
    if settings.participant_param:
        lines.append(f"act2i: other platforms: {base}?{settings.participant_param}=<participant id>")
    return "\n".join(lines)
