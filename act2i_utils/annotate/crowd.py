"""Crowd studies: anonymous workers from a platform's study link (Prolific, MTurk, others), each
with a batch of images, gold checks mixed in, and the exclusions they lead to.

- **Who.** A worker arrives at `/study?PROLIFIC_PID=...` (or MTurk's `workerId`, or the profile's
  `annotate.participant_param`). Their annotator name is `w-` and a salted hash of the platform and
  participant id (the salt is the study's own secret), so the same person always finds their own
  batch and the raw platform id is never stored; their login token is derived from the name the
  same way, so every tab and device of one worker shares one session.
- **What.** On consent a worker gets one batch of `annotate.batch_size` images: `gold_rate` of it
  gold images (known answers; attention checks are gold images shown with a prompt they plainly
  do not depict; as many to accept as to reject), the rest study images that have fewer than `annotate.overlap` raters, drawn
  round-robin over model x variant so that every worker sees each stratum equally often (at most one
  image apart). Raters whose batch lies unanswered for `HOLD_MINUTES` give their places back.
- **Quality.** A rater with more than `annotate.max_gold_errors` wrong gold answers is excluded:
  their answers stay in the database and in the per-rater export, flagged, and are left out of the
  acceptance; a median time per study image below `annotate.min_seconds` is flagged.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import secrets
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..errors import InputError
from . import storage

GOLD_MODEL = "(gold)"  # the `model` of gold images in the study database; never in the run's tables
WORKER_PREFIX = "w-"
HOLD_MINUTES = 90  # an unfinished batch keeps its places this long after the worker's last answer
PLATFORMS = (("prolific", "PROLIFIC_PID"), ("mturk", "workerId"))
MTURK_PREVIEW = "ASSIGNMENT_ID_NOT_AVAILABLE"
MAX_PARTICIPANT = 128


@dataclass(frozen=True)
class Settings:
    """A crowd study's settings: the profile's `annotate` section with its files read."""

    overlap: int
    seed: int
    batch_size: int
    gold_rate: float
    max_gold_errors: int
    min_seconds: float
    consent: str
    examples: tuple[dict, ...]
    completion_code: str | None
    completion_url: str | None
    participant_param: str | None
    pairs: bool = False  # the batch holds pairs of images to compare (`serve --study --pairs`)

    @property
    def gold_per_batch(self) -> int:
        return round(self.batch_size * self.gold_rate) if self.gold_rate > 0 else 0


def settings(run) -> Settings:
    """The crowd settings of `run` (a Run), with the consent text and worked examples read; one
    sentence naming the key when a file is missing or malformed."""
    a = run.config.annotate
    if not a.consent_file:
        raise InputError("A crowd study shows a consent page: set annotate.consent_file to a text file with your "
                         "approved consent text (configs/study/consent.txt is a starting point).")
    consent = _file(a.consent_file, "annotate.consent_file").read_text(encoding="utf-8").strip()
    if not consent:
        raise InputError(f"annotate.consent_file {a.consent_file} is empty; write the consent text into it.")
    if a.gold_rate > 0 and not a.gold_file:
        raise InputError(f"annotate.gold_rate is {a.gold_rate} but annotate.gold_file is not set; give a CSV of gold "
                         "images (image, prompt, expected) or set annotate.gold_rate: 0.")
    examples = tuple(read_examples(_file(a.examples_file, "annotate.examples_file"))) if a.examples_file else ()
    return Settings(a.overlap, a.seed, a.batch_size, a.gold_rate, a.max_gold_errors, a.min_seconds, consent, examples,
                    a.completion_code, a.completion_url, a.participant_param)


def _file(name: str, key: str) -> Path:
    from ..config import REPO_ROOT

    for path in (Path(name).expanduser(), REPO_ROOT / name):
        if path.is_file():
            return path.resolve()
    raise InputError(f"{key} names {name}, which is not a file (looked in the current folder and {REPO_ROOT}).")


# --- who: workers from a study link -----------------------------------------------------------

def participant(query, param: str | None) -> tuple[str, str] | None:
    """(platform, participant id) from a study link's query parameters, or None without one."""
    names = list(PLATFORMS) + ([("other", param)] if param else [])
    for platform, name in names:
        value = (query.get(name) or "").strip()
        if value:
            if len(value) > MAX_PARTICIPANT or not value.isprintable():
                raise InputError(f"The study link's {name} is not a participant id.")
            return platform, value
    return None


def is_preview(query) -> bool:
    """An MTurk worker looking at the HIT before accepting it: no id to work under yet."""
    return query.get("assignmentId") == MTURK_PREVIEW


def _secret(conn: sqlite3.Connection, key: str) -> str:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    if row is not None:
        return row["value"]
    value = secrets.token_hex(32)
    conn.execute("INSERT OR IGNORE INTO meta VALUES (?, ?)", (key, value))
    return conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()["value"]


def worker_name(secret: str, platform: str, participant_id: str) -> str:
    """The anonymous annotator name of a participant: the same for the same id, nothing to read back."""
    digest = hmac.new(secret.encode(), f"{platform}\n{participant_id}".encode(), hashlib.sha256).hexdigest()
    return WORKER_PREFIX + digest[:20]


def join(db: Path, platform: str, participant_id: str) -> tuple[str, str]:
    """Register the worker (once; a returning worker is found again): (annotator name, login token)."""
    with storage.connect(db) as conn:
        name = worker_name(_secret(conn, "worker_salt"), platform, participant_id)
        token = hmac.new(_secret(conn, "worker_token_secret").encode(), name.encode(), hashlib.sha256).hexdigest()
        conn.execute("INSERT INTO annotators (name, token_hash) VALUES (?, ?) ON CONFLICT(name) DO NOTHING",
                     (name, storage.hash_token(token)))
        conn.execute("INSERT INTO workers (name, platform) VALUES (?, ?) ON CONFLICT(name) DO NOTHING", (name, platform))
    return name, token


def state(conn: sqlite3.Connection, name: str) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM workers WHERE name = ?", (name,)).fetchone()


def completion_code(conn: sqlite3.Connection, s: Settings) -> str:
    """The study's completion code: the profile's, else one made for this study and kept."""
    if s.completion_code:
        return s.completion_code
    row = conn.execute("SELECT value FROM meta WHERE key = 'completion_code'").fetchone()
    if row is None:
        conn.execute("INSERT OR IGNORE INTO meta VALUES ('completion_code', ?)", (secrets.token_hex(4).upper(),))
        row = conn.execute("SELECT value FROM meta WHERE key = 'completion_code'").fetchone()
    return row["value"]


def completion(conn: sqlite3.Connection, s: Settings) -> dict:
    code = completion_code(conn, s)
    return {"code": code, "url": s.completion_url.replace("{code}", code) if s.completion_url else None}


# --- what: one batch per worker ---------------------------------------------------------------

def consent(db: Path, name: str, s: Settings) -> int:
    """Record the worker's consent and give them their batch (once); returns the images in it."""
    with storage.connect(db) as conn:
        conn.execute("UPDATE workers SET consented = COALESCE(consented, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) "
                     "WHERE name = ?", (name,))
        table = "pair_assignments" if s.pairs else "assignments"
        held = conn.execute(f"SELECT COUNT(*) FROM {table} WHERE annotator = ?", (name,)).fetchone()[0]
        return held or (assign_pair_batch(conn, name, s) if s.pairs else assign_batch(conn, name, s))


def assign_batch(conn: sqlite3.Connection, name: str, s: Settings) -> int:
    """Insert the worker's batch (see the module docstring); returns its size (0: the study is full)."""
    taken = _places_taken(conn, s.max_gold_errors)
    images = conn.execute("SELECT image_id, model, variant FROM images WHERE gold IS NULL ORDER BY image_id").fetchall()
    strata: dict[tuple, list] = {}
    for row in images:
        if taken.get(row["image_id"], 0) < s.overlap:
            strata.setdefault((row["model"], row["variant"]), []).append(row["image_id"])
    for stratum in strata.values():
        stratum.sort(key=lambda i: (taken.get(i, 0), storage._order(s.seed, name, i)))
    chosen = _round_robin(strata, s.batch_size - s.gold_per_batch, storage._order(s.seed, name, "stratum"))
    if not chosen:
        return 0
    gold: dict[tuple, list] = {}
    for r in conn.execute("SELECT image_id, gold FROM images WHERE gold IS NOT NULL ORDER BY image_id"):
        gold.setdefault((r["gold"],), []).append(r["image_id"])
    for images_of in gold.values():
        images_of.sort(key=lambda i: storage._order(s.seed, name, i))
    # as many gold images to accept as to reject: a worker who always clicks one button fails half of them
    chosen += _round_robin(gold, s.gold_per_batch, storage._order(s.seed, name, "gold"))
    conn.executemany("INSERT INTO assignments VALUES (?, ?, ?)",
                     [(name, image_id, storage._order(s.seed, name, image_id)) for image_id in chosen])
    return len(chosen)


def assign_pair_batch(conn: sqlite3.Connection, name: str, s: Settings) -> int:
    """A batch of pairs: study pairs with fewer than `overlap` raters, round-robin over the compared
    systems, and gold pairs (a gold image beside an attention check) at `gold_rate`."""
    excluded = set(excluded_workers(conn, s.max_gold_errors))
    taken: dict[str, int] = {}
    for annotator, key in conn.execute(
            f"""SELECT annotator, pair_key FROM pair_answers WHERE undone = 0 AND annotator IN (SELECT name FROM workers)
                UNION SELECT a.annotator, a.pair_key FROM pair_assignments a JOIN workers w ON w.name = a.annotator
                WHERE COALESCE((SELECT MAX(created) FROM pair_answers s WHERE s.annotator = a.annotator), w.consented)
                      >= strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-{HOLD_MINUTES} minutes')"""):
        if annotator not in excluded:
            taken[key] = taken.get(key, 0) + 1
    strata: dict[tuple, list] = {}
    for r in conn.execute("SELECT pair_key, stratum FROM pairs WHERE gold IS NULL ORDER BY pair_id"):
        if taken.get(r["pair_key"], 0) < s.overlap:
            strata.setdefault((r["stratum"],), []).append(r["pair_key"])
    for keys in strata.values():
        keys.sort(key=lambda k: (taken.get(k, 0), storage._order(s.seed, name, k)))
    chosen = _round_robin(strata, s.batch_size - s.gold_per_batch, storage._order(s.seed, name, "stratum"))
    if not chosen:
        return 0
    gold = sorted((r["pair_key"] for r in conn.execute("SELECT pair_key FROM pairs WHERE gold IS NOT NULL")),
                  key=lambda k: storage._order(s.seed, name, k))
    chosen += gold[:s.gold_per_batch]
    conn.executemany("INSERT INTO pair_assignments VALUES (?, ?, ?)",
                     [(name, key, storage._order(s.seed, name, key)) for key in chosen])
    return len(chosen)


def _round_robin(strata: dict[tuple, list], n: int, offset: int) -> list[str]:
    """Up to n images, one stratum after another (strata in a fixed order, starting at `offset`)."""
    keys = sorted(strata)
    if not keys:
        return []
    keys = keys[offset % len(keys):] + keys[:offset % len(keys)]
    queues = {k: list(strata[k]) for k in keys}
    chosen: list[str] = []
    while len(chosen) < n and any(queues.values()):
        for key in keys:
            if queues[key] and len(chosen) < n:
                chosen.append(queues[key].pop(0))
    return chosen


def _places_taken(conn: sqlite3.Connection, max_gold_errors: int) -> dict[str, int]:
    """Study image -> raters holding a place: crowd workers not excluded, whose answer is in or whose
    batch is still being worked on (an answer or consent within HOLD_MINUTES)."""
    excluded = set(excluded_workers(conn, max_gold_errors))
    rows = conn.execute(
        f"""WITH recent AS (SELECT annotator, MAX(created) AS last FROM answers GROUP BY annotator),
                 active AS (SELECT w.name FROM workers w LEFT JOIN recent r ON r.annotator = w.name
                            WHERE COALESCE(r.last, w.consented) >= strftime('%Y-%m-%dT%H:%M:%fZ', 'now',
                                                                            '-{HOLD_MINUTES} minutes'))
            SELECT annotator, image_id FROM answers WHERE undone = 0 AND annotator IN (SELECT name FROM workers)
            UNION
            SELECT annotator, image_id FROM assignments WHERE annotator IN (SELECT name FROM active)""").fetchall()
    taken: dict[str, int] = {}
    for annotator, image_id in rows:
        if annotator not in excluded:
            taken[image_id] = taken.get(image_id, 0) + 1
    return taken


# --- gold images --------------------------------------------------------------------------------

def read_gold(path: Path) -> list[dict]:
    """The rows of a gold CSV (image, prompt, expected; optional id, kind), checked; images resolved
    against the CSV's folder."""
    rows = _csv_rows(path, ("image", "prompt", "expected"), "annotate.gold_file")
    out = []
    for i, row in enumerate(rows, 1):
        expected = (row.get("expected") or "").strip().lower()
        if expected not in storage.LABELS:
            raise InputError(f"{path}: row {i} has expected '{row.get('expected')}'; write accept or reject.")
        kind = (row.get("kind") or "gold").strip().lower()
        if kind not in ("gold", "attention"):
            raise InputError(f"{path}: row {i} has kind '{row.get('kind')}'; write gold or attention (or leave it empty).")
        out.append({"id": (row.get("id") or f"g{i:04d}").strip(), "image": _image(path, row, i),
                    "prompt": _required(path, row, i, "prompt"), "expected": expected, "kind": kind})
    ids = [r["id"] for r in out]
    if len(set(ids)) != len(ids):
        raise InputError(f"{path}: the id '{next(i for i in ids if ids.count(i) > 1)}' appears twice; ids must be unique.")
    return out


def read_examples(path: Path) -> list[dict]:
    """The worked examples of the instruction page: image, prompt, label, explanation (two or more)."""
    rows = _csv_rows(path, ("image", "prompt", "label", "explanation"), "annotate.examples_file")
    out = []
    for i, row in enumerate(rows, 1):
        label = (row.get("label") or "").strip().lower()
        if label not in storage.LABELS:
            raise InputError(f"{path}: row {i} has label '{row.get('label')}'; write accept or reject.")
        out.append({"image": _image(path, row, i), "prompt": _required(path, row, i, "prompt"), "label": label,
                    "explanation": _required(path, row, i, "explanation")})
    if len(out) < 2:
        raise InputError(f"{path}: the instructions show two worked examples; give at least two rows.")
    return out


def _csv_rows(path: Path, needed: tuple[str, ...], key: str) -> list[dict]:
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            columns = [c.strip().lower() for c in reader.fieldnames or []]
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise InputError(f"{key} {path} cannot be read as CSV ({type(err).__name__}).") from None
    missing = [c for c in needed if c not in columns]
    if missing:
        raise InputError(f"{path} has no column {', '.join(missing)} (found: {', '.join(columns) or 'none'}); "
                         f"{key} needs {', '.join(needed)}.")
    rows = [{k.strip().lower(): v for k, v in r.items() if k} for r in rows]
    if not rows:
        raise InputError(f"{path} has no rows; {key} needs at least one.")
    return rows


def _required(path: Path, row: dict, i: int, column: str) -> str:
    value = (row.get(column) or "").strip()
    if not value:
        raise InputError(f"{path}: row {i} has an empty '{column}'.")
    return value


def _image(path: Path, row: dict, i: int) -> Path:
    image = (path.parent / _required(path, row, i, "image")).expanduser().resolve()
    if not image.is_file():
        raise InputError(f"{path}: row {i} names the image {row['image']}, which is not a file (paths are relative "
                         "to the CSV's folder).")
    return image


def sync_gold(db: Path, folder: Path, run_root: Path, rows: list[dict]) -> int:
    """Copy the gold images into the run (`folder`) and add those not yet in the study; returns how many."""
    folder.mkdir(parents=True, exist_ok=True)
    added = 0
    with storage.connect(db) as conn:
        known = {r["prompt_id"] for r in conn.execute("SELECT prompt_id FROM images WHERE gold IS NOT NULL")}
        for row in rows:
            if row["id"] in known:
                continue
            digest = hashlib.sha256(row["image"].read_bytes()).hexdigest()[:16]
            target = folder / f"{digest}{row['image'].suffix.lower()}"
            if not target.exists():
                shutil.copyfile(row["image"], target)
            conn.execute("INSERT INTO images (image_id, model, variant, prompt_id, seed, path, prompt, gold) "
                         "VALUES (?, ?, ?, ?, 0, ?, ?, ?)",
                         (secrets.token_urlsafe(12), GOLD_MODEL, row["kind"], row["id"],
                          target.relative_to(run_root).as_posix(), row["prompt"], row["expected"]))
            added += 1
    return added


# --- quality ------------------------------------------------------------------------------------

def excluded_workers(conn: sqlite3.Connection, max_gold_errors: int) -> dict[str, int]:
    """Rater -> wrong gold answers (images and pairs), for the raters with more than `max_gold_errors`."""
    rows = conn.execute("""SELECT annotator, SUM(errors) AS errors FROM (
                               SELECT s.annotator, s.label != i.gold AS errors FROM answers s JOIN images i USING (image_id)
                               WHERE s.undone = 0 AND i.gold IS NOT NULL
                               UNION ALL
                               SELECT s.annotator, s.choice != p.gold FROM pair_answers s JOIN pairs p USING (pair_key)
                               WHERE s.undone = 0 AND p.gold IS NOT NULL)
                           GROUP BY annotator""").fetchall()
    return {r["annotator"]: int(r["errors"]) for r in rows if r["errors"] > max_gold_errors}


def quality(db: Path, max_gold_errors: int, min_seconds: float) -> pd.DataFrame:
    """One row per rater: images answered, gold answers and errors, median seconds per study image,
    whether they are excluded (and why) and whether they were fast."""
    columns = ["annotator", "kind", "images", "gold_answers", "gold_errors", "gold_accuracy", "median_seconds",
               "excluded", "fast", "reason"]
    if not db.is_file():
        return pd.DataFrame(columns=columns)
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)  # reading a study writes nothing
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not {"workers", "pair_answers"} <= tables or not storage.has_column(conn, "images", "gold"):
            return _lab_quality(conn, columns)  # a study from before crowd studies: no gold, nobody excluded
        answers = pd.read_sql_query(
            """SELECT s.annotator, s.label, s.seconds, i.gold,
                      EXISTS (SELECT 1 FROM workers w WHERE w.name = s.annotator) AS crowd
               FROM answers s JOIN images i USING (image_id) WHERE s.undone = 0
               UNION ALL
               SELECT s.annotator, s.choice, s.seconds, p.gold, EXISTS (SELECT 1 FROM workers w WHERE w.name = s.annotator)
               FROM pair_answers s JOIN pairs p USING (pair_key) WHERE s.undone = 0""", conn)
    finally:
        conn.close()
    rows = []  # "images" below: the study items judged (images, or pairs in a pair study)
    for name, part in answers.groupby("annotator", sort=True):
        gold = part[part["gold"].notna()]
        study = part[part["gold"].isna()]
        errors = int((gold["label"] != gold["gold"]).sum())
        median = float(study["seconds"].median()) if study["seconds"].notna().any() else float("nan")
        excluded = errors > max_gold_errors
        fast = bool(median == median and median < min_seconds)
        reasons = []
        if excluded:
            reasons.append(f"{errors} of {len(gold)} gold answers wrong (more than {max_gold_errors})")
        if fast:
            reasons.append(f"median {median:.1f} s per image (below {min_seconds:g} s)")
        rows.append({"annotator": name, "kind": "crowd" if part["crowd"].iloc[0] else "lab", "images": len(study),
                     "gold_answers": len(gold), "gold_errors": errors,
                     "gold_accuracy": 1 - errors / len(gold) if len(gold) else float("nan"),
                     "median_seconds": median, "excluded": excluded, "fast": fast, "reason": "; ".join(reasons)})
    return pd.DataFrame(rows, columns=columns)


def _lab_quality(conn: sqlite3.Connection, columns: list[str]) -> pd.DataFrame:
    answers = pd.read_sql_query("SELECT annotator, seconds FROM answers WHERE undone = 0", conn)
    rows = [{"annotator": name, "kind": "lab", "images": len(part), "gold_answers": 0, "gold_errors": 0,
             "gold_accuracy": float("nan"), "median_seconds": float(part["seconds"].median()), "excluded": False,
             "fast": False, "reason": ""} for name, part in answers.groupby("annotator", sort=True)]
    return pd.DataFrame(rows, columns=columns)
