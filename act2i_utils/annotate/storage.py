"""The study's SQLite store (WAL mode): images under opaque ids (study images and, in a crowd study,
gold images with their expected label), annotators, crowd workers, assignments, answers.

Every answer is committed before the next image is sent, so a crash or restart loses nothing.
An image's current label for an annotator is their latest answer not undone; a partial unique
index makes a second live answer for the same image impossible. Reads use read-only
transactions, which WAL lets run while another connection writes.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import random
import secrets
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pandas as pd

from ..errors import InputError

TAGS = ("missing agent", "agents fused", "role reversal", "wrong action", "wrong context", "incomplete action",
        "bad quality")
LABELS = ("accept", "reject")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS images (
    image_id TEXT PRIMARY KEY, model TEXT NOT NULL, variant TEXT NOT NULL, prompt_id TEXT NOT NULL,
    seed INTEGER NOT NULL, path TEXT NOT NULL, prompt TEXT NOT NULL,
    UNIQUE (model, variant, prompt_id, seed));
CREATE TABLE IF NOT EXISTS annotators (
    name TEXT PRIMARY KEY, token_hash TEXT UNIQUE, created TEXT NOT NULL DEFAULT (datetime('now')));
CREATE TABLE IF NOT EXISTS assignments (
    annotator TEXT NOT NULL REFERENCES annotators(name), image_id TEXT NOT NULL REFERENCES images(image_id),
    position INTEGER NOT NULL, PRIMARY KEY (annotator, image_id));
CREATE TABLE IF NOT EXISTS answers (
    answer_id INTEGER PRIMARY KEY AUTOINCREMENT, annotator TEXT NOT NULL, image_id TEXT NOT NULL,
    label TEXT NOT NULL CHECK (label IN ('accept', 'reject')), tags TEXT NOT NULL DEFAULT '',
    comment TEXT NOT NULL DEFAULT '', seconds REAL, source TEXT NOT NULL DEFAULT 'web',
    created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')), undone INTEGER NOT NULL DEFAULT 0);
CREATE UNIQUE INDEX IF NOT EXISTS one_live_answer ON answers (annotator, image_id) WHERE undone = 0;
CREATE INDEX IF NOT EXISTS answers_by_annotator ON answers (annotator, undone);
CREATE TABLE IF NOT EXISTS workers (
    name TEXT PRIMARY KEY REFERENCES annotators(name), platform TEXT NOT NULL,
    created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')), consented TEXT, completed TEXT);
-- side-by-side comparisons (pairs.py): a pair shows two study images, left and right as planned
CREATE TABLE IF NOT EXISTS pairs (
    pair_key TEXT PRIMARY KEY, pair_id TEXT NOT NULL UNIQUE,
    left_image TEXT NOT NULL REFERENCES images(image_id), right_image TEXT NOT NULL REFERENCES images(image_id),
    left_is_a INTEGER NOT NULL, prompt TEXT NOT NULL, stratum TEXT NOT NULL,
    gold TEXT CHECK (gold IN ('left', 'right')));
CREATE TABLE IF NOT EXISTS pair_assignments (
    annotator TEXT NOT NULL REFERENCES annotators(name), pair_key TEXT NOT NULL REFERENCES pairs(pair_key),
    position INTEGER NOT NULL, PRIMARY KEY (annotator, pair_key));
CREATE TABLE IF NOT EXISTS pair_answers (
    answer_id INTEGER PRIMARY KEY AUTOINCREMENT, annotator TEXT NOT NULL, pair_key TEXT NOT NULL,
    choice TEXT NOT NULL CHECK (choice IN ('left', 'right', 'both_good', 'both_bad')), seconds REAL,
    created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')), undone INTEGER NOT NULL DEFAULT 0);
CREATE UNIQUE INDEX IF NOT EXISTS one_live_pair_answer ON pair_answers (annotator, pair_key) WHERE undone = 0;
"""
# Columns added after the first release: an older study database gains them when it is opened.
MIGRATIONS = (("images", "gold", "ALTER TABLE images ADD COLUMN gold TEXT CHECK (gold IN ('accept', 'reject'))"),)


@contextmanager
def connect(path: Path, write: bool = True) -> Iterator[sqlite3.Connection]:
    """A connection that commits on success and rolls back on error. A write connection takes the
    write lock at once; a read-only one (`write=False`) never waits for a writer.

    Writers of one process queue on a lock of their own before they ask SQLite: SQLite's busy handler
    waits by sleeping (up to 100 ms at a time), so under many concurrent answers a writer would
    sleep long after the lock came free; a thread lock hands it over at once. Other processes (the
    CLI beside a server) still meet SQLite's lock and its busy timeout."""
    if write:
        with _writer_lock(str(Path(path).resolve())):
            with _transaction(path, write) as conn:
                yield conn
    else:
        with _transaction(path, write) as conn:
            yield conn


@functools.lru_cache(maxsize=None)
def _writer_lock(path: str) -> threading.Lock:
    return threading.Lock()


@contextmanager
def _transaction(path: Path, write: bool) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)  # timeout: SQLite's busy timeout, in seconds
    try:
        conn.row_factory = sqlite3.Row
        if write:  # WAL mode is kept in the file (init_db sets it)
            conn.execute("PRAGMA synchronous=FULL")  # an answer on disk before the next image is shown
            conn.execute("PRAGMA foreign_keys=ON")
        else:
            conn.execute("PRAGMA query_only=ON")
        conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    finally:
        conn.close()


def init_db(path: Path) -> None:
    conn = sqlite3.connect(path, timeout=30)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(SCHEMA)
        for table, column, statement in MIGRATIONS:
            if not has_column(conn, table, column):
                conn.execute(statement)
        conn.execute("INSERT OR IGNORE INTO meta VALUES ('csrf_secret', ?)", (secrets.token_hex(32),))
        conn.commit()
    finally:
        conn.close()


def has_column(conn: sqlite3.Connection, table: str, column: str) -> bool:
    return any(row[1] == column for row in conn.execute(f"PRAGMA table_info({table})"))


def csrf_token(path: Path, token: str) -> str:
    """The value a page must send back with every change: derived from the login token and the
    study's secret, so the page never needs the login token itself."""
    return hmac.new(_csrf_secret(str(Path(path).resolve())).encode(), token.encode(), hashlib.sha256).hexdigest()


@functools.lru_cache(maxsize=16)
def _csrf_secret(path: str) -> str:
    """The study's CSRF secret (written once by init_db, never changed): read once per process."""
    with connect(Path(path), write=False) as conn:
        return conn.execute("SELECT value FROM meta WHERE key = 'csrf_secret'").fetchone()["value"]


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def sync_images(path: Path, manifest: pd.DataFrame, bench: pd.DataFrame) -> int:
    """Add the manifest's images not yet in the study, each under a fresh opaque id; returns how many."""
    prompts = bench.set_index("id")["base_prompt"]
    added = 0
    with connect(path) as conn:
        known = {tuple(r) for r in conn.execute("SELECT model, variant, prompt_id, seed FROM images")}
        for rec in manifest.to_dict("records"):
            key = (rec["model"], rec["variant"], rec["id"], int(rec["seed"]))
            if key in known:
                continue
            conn.execute("INSERT INTO images (image_id, model, variant, prompt_id, seed, path, prompt) VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (secrets.token_urlsafe(12), *key, rec["path"], prompts.get(rec["id"], rec["prompt"])))
            added += 1
    return added


def add_annotator(path: Path, name: str, rotate: bool = False) -> str:
    """Register `name` and return their secret token (only its hash is stored). An existing name is
    refused unless `rotate`, which gives them a new token and revokes the old one."""
    token = secrets.token_urlsafe(24)
    with connect(path) as conn:
        exists = conn.execute("SELECT 1 FROM annotators WHERE name = ?", (name,)).fetchone() is not None
        if exists and not rotate:
            raise InputError(f"{name} already has a link; pass rotate=True (--rotate) to give them a new one "
                             "and revoke the old, or choose another name.")
        if rotate and not exists:
            raise InputError(f"There is no annotator named '{name}' whose link could be rotated; add them without --rotate.")
        conn.execute("INSERT INTO annotators (name, token_hash) VALUES (?, ?) "
                     "ON CONFLICT(name) DO UPDATE SET token_hash = excluded.token_hash", (name, hash_token(token)))
    return token


def annotator_for(path: Path, token: str | None) -> str | None:
    if not token:
        return None
    with connect(path, write=False) as conn:
        row = conn.execute("SELECT name FROM annotators WHERE token_hash = ?", (hash_token(token),)).fetchone()
    return row["name"] if row else None


def assign(path: Path, overlap: int, seed: int = 0) -> int:
    """Give every image `overlap` annotators (fewer if there are fewer), always the least loaded in
    the image's stratum (model x variant), then even out the loads stratum by stratum by moving
    unanswered assignments to annotators who joined later: each annotator's images of one model and
    variant differ from another's by at most one, so no annotator's leniency leans on one variant.
    Each annotator sees their images in their own seeded random order. Returns the changes made.

    A higher overlap than before is applied; a lower one is refused: it would take images away
    from people in the middle of their work, and the agreement statistics would mix overlaps."""
    with connect(path) as conn:
        _set_overlap(conn, overlap)
        people = [r["name"] for r in conn.execute(  # crowd workers get batches of their own (crowd.py)
            "SELECT name FROM annotators WHERE token_hash IS NOT NULL AND name NOT IN (SELECT name FROM workers) ORDER BY name")]
        if not people:
            return 0
        holders: dict[str, set[str]] = {}
        for r in conn.execute("SELECT annotator, image_id FROM assignments WHERE annotator NOT IN (SELECT name FROM workers)"):
            holders.setdefault(r["image_id"], set()).add(r["annotator"])
        answered = {(r["annotator"], r["image_id"]) for r in conn.execute("SELECT annotator, image_id FROM answers WHERE undone = 0")}
        strata = {r["image_id"]: (r["model"], r["variant"])
                  for r in conn.execute("SELECT image_id, model, variant FROM images WHERE gold IS NULL")}
        load = {p: 0 for p in people}
        held = {(p, s): 0 for p in people for s in set(strata.values())}  # images per annotator and stratum
        for image_id, names in holders.items():
            for name in names & load.keys():
                load[name] += 1
                if image_id in strata:
                    held[(name, strata[image_id])] += 1
        images = sorted(strata)
        random.Random(seed).shuffle(images)
        changes = 0
        for image_id in images:
            taken, stratum = holders.setdefault(image_id, set()), strata[image_id]
            free = sorted((p for p in people if p not in taken),
                          key=lambda p: (held[(p, stratum)], load[p], _order(seed, p, image_id)))
            for person in free[:max(min(overlap, len(people)) - len(taken), 0)]:
                conn.execute("INSERT INTO assignments VALUES (?, ?, ?)", (person, image_id, _order(seed, person, image_id)))
                taken.add(person)
                load[person] += 1
                held[(person, stratum)] += 1
                changes += 1
        for stratum in sorted(set(strata.values())):
            members = [i for i in images if strata[i] == stratum]
            counts = {p: held[(p, stratum)] for p in people}
            changes += _rebalance(conn, people, members, holders, answered, counts, seed, load)
            held.update({(p, stratum): counts[p] for p in people})
        changes += _even_loads(conn, people, images, strata, holders, answered, held, load, seed)
    return changes


def _even_loads(conn, people, images, strata, holders, answered, held, load, seed) -> int:
    """Move unanswered images from the busiest to the idlest annotator overall, each within a stratum
    where the busiest holds more than the idlest (so every stratum stays within one), until the
    loads differ by at most one."""
    moves = 0
    while True:
        busiest = max(people, key=lambda p: (load[p], p))
        idlest = min(people, key=lambda p: (load[p], p))
        if load[busiest] - load[idlest] <= 1:
            return moves
        pick = next((i for i in images if busiest in holders[i] and idlest not in holders[i]
                     and (busiest, i) not in answered and held[(busiest, strata[i])] > held[(idlest, strata[i])]), None)
        if pick is None:
            return moves
        _move(conn, pick, busiest, idlest, holders, seed)
        for key in ((busiest, strata[pick]), (idlest, strata[pick])):
            held[key] += 1 if key[0] == idlest else -1
        load[busiest] -= 1
        load[idlest] += 1
        moves += 1


def _move(conn, image_id: str, busiest: str, idlest: str, holders: dict, seed: int) -> None:
    """Give one unanswered assignment of `busiest` to `idlest`."""
    conn.execute("UPDATE assignments SET annotator = ?, position = ? WHERE annotator = ? AND image_id = ?",
                 (idlest, _order(seed, idlest, image_id), busiest, image_id))
    holders[image_id] = (holders[image_id] - {busiest}) | {idlest}


def _set_overlap(conn: sqlite3.Connection, overlap: int) -> None:
    row = conn.execute("SELECT value FROM meta WHERE key = 'overlap'").fetchone()
    current = int(row["value"]) if row else conn.execute(  # studies from before the overlap was recorded
        "SELECT COALESCE(MAX(n), 0) FROM (SELECT COUNT(*) AS n FROM assignments GROUP BY image_id)").fetchone()[0]
    if overlap < current:
        raise InputError(f"This study already gives each image {current} annotators; lowering that to {overlap} would "
                         f"take images away from people mid-study, so it is refused: use --overlap {current}.")
    conn.execute("INSERT OR REPLACE INTO meta VALUES ('overlap', ?)", (str(overlap),))


def _rebalance(conn, people, images, holders, answered, counts, seed, load) -> int:
    """Move unanswered assignments of `images` (one stratum) from the busiest to the idlest annotator
    until their `counts` differ by at most one; ties go by the overall `load`, kept up to date."""
    queues = {p: sorted((_order(seed, p, i), i) for i in images if p in holders[i] and (p, i) not in answered)
              for p in people}  # each annotator's movable images, in a fixed order
    moves = 0
    while True:
        busiest = max(people, key=lambda p: (counts[p], load[p], p))
        idlest = min(people, key=lambda p: (counts[p], load[p], p))
        if counts[busiest] - counts[idlest] <= 1:
            return moves
        pick = next((entry for entry in queues[busiest] if idlest not in holders[entry[1]]), None)
        if pick is None:
            return moves
        image_id = pick[1]
        queues[busiest].remove(pick)
        _move(conn, image_id, busiest, idlest, holders, seed)
        for table in (counts, load):
            table[busiest] -= 1
            table[idlest] += 1
        moves += 1


def _order(seed: int, annotator: str, image_id: str) -> int:
    """A per-annotator random position, reproducible from the seed."""
    return int.from_bytes(hashlib.sha256(f"{seed}|{annotator}|{image_id}".encode()).digest()[:6], "big")


def next_image(conn: sqlite3.Connection, annotator: str) -> sqlite3.Row | None:
    return conn.execute(
        """SELECT i.image_id, i.prompt FROM assignments a JOIN images i USING (image_id)
           WHERE a.annotator = ? AND NOT EXISTS (
               SELECT 1 FROM answers s WHERE s.annotator = a.annotator AND s.image_id = a.image_id AND s.undone = 0)
           ORDER BY a.position LIMIT 1""", (annotator,)).fetchone()


def progress(conn: sqlite3.Connection, annotator: str) -> tuple[int, int]:
    total = conn.execute("SELECT COUNT(*) FROM assignments WHERE annotator = ?", (annotator,)).fetchone()[0]
    done = conn.execute(
        """SELECT COUNT(*) FROM answers s JOIN assignments a ON a.annotator = s.annotator AND a.image_id = s.image_id
           WHERE s.annotator = ? AND s.undone = 0""", (annotator,)).fetchone()[0]
    return done, total


def live_answers(path: Path, gold: bool = False) -> pd.DataFrame:
    """Every current answer about a study image (`gold=True`: about a gold image) joined with what it
    was about, in answer order (see `annotate.answers`)."""
    conn = sqlite3.connect(path)
    try:  # the images table keeps its prompt_id column, so existing studies open as they are
        if not has_column(conn, "images", "gold"):  # a study from before gold images
            which = "AND 0" if gold else ""
        else:
            which = "AND i.gold IS NOT NULL" if gold else "AND i.gold IS NULL"
        return pd.read_sql_query(
            f"""SELECT s.annotator, s.image_id, i.model, i.variant, i.prompt_id AS id, i.seed, s.label, s.tags, s.comment,
                       s.seconds, s.source, s.created
                FROM answers s JOIN images i USING (image_id) WHERE s.undone = 0 {which} ORDER BY s.answer_id""", conn)
    finally:
        conn.close()
