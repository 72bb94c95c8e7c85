"""Side-by-side comparisons: which image pairs people and the VLM judge compare.

`plan_pairs(run, by="model", per_prompt=2, seed=0)` draws, for every prompt, `per_prompt` pairs of
images that differ in what is compared (`by`: the model, or the variant) and agree in the rest (the
same variant, or the same model, and the same seed wherever both images have it), from the images
the run's config names. The draw is balanced: every pair of systems comes up equally often (at
most one apart), each context (the variant or model kept fixed, the seed) in turn, and each system
is shown on the left as often as on the right. The table (`schema.PAIRS`) is written to
`pairs.parquet`; its pair ids are readable and stable (`<prompt>~<a>~<b>~<context>~<seed>`).
"""

from __future__ import annotations

import itertools
import secrets
import sqlite3
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from ..manifest import configured_images
from ..schema import PAIRS
from . import storage


def plan_pairs(run, by: str | None = None, per_prompt: int | None = None, seed: int | None = None,
               write: bool = True) -> pd.DataFrame:
    """The balanced pairs of the run (see the module docstring); defaults from the profile's `pairs`."""
    cfg = run.config.pairs
    by, per_prompt, seed = by or cfg.by, per_prompt or cfg.per_prompt, cfg.seed if seed is None else seed
    if by not in ("model", "variant"):
        raise InputError(f"plan_pairs: by must be 'model' or 'variant', not {by!r}.")
    images, _ = configured_images(run)
    if images.empty:
        raise InputError(f"{run.root} has no images to pair; run the generate stage first.")
    other = "variant" if by == "model" else "model"
    order = [m.label for m in run.config.generate.models] if by == "model" else list(run.config.generate.variants)
    systems = [s for s in order if s in set(images[by])]
    if len(systems) < 2:
        raise InputError(f"{run.root}: pairs by {by} need images of two or more {by}s; the run has "
                         f"{', '.join(systems) or 'none'}. Set pairs.by to the other, or add a {by}.")
    have = {(r[by], r[other], r["id"], int(r["seed"])) for r in images[["model", "variant", "id", "seed"]].to_dict("records")}
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(f"pairs|{by}".encode())]))
    pair_count = {p: 0 for p in itertools.combinations(systems, 2)}
    left_count = {s: 0 for s in systems}
    context_count: dict = {}
    rows = []
    for prompt in sorted(images["id"].unique()):
        candidates = []
        for (a, b), context, s in itertools.product(pair_count, sorted(images[other].unique()),
                                                    sorted(images["seed"].unique())):
            if (a, context, prompt, int(s)) in have and (b, context, prompt, int(s)) in have:
                candidates.append((a, b, context, int(s)))
        candidates = [candidates[i] for i in rng.permutation(len(candidates))]
        for _ in range(min(per_prompt, len(candidates))):
            pick = min(candidates, key=lambda c: (pair_count[(c[0], c[1])], context_count.get((c[2], c[3]), 0)))
            candidates.remove(pick)
            a, b, context, s = pick
            pair_count[(a, b)] += 1
            context_count[(context, s)] = context_count.get((context, s), 0) + 1
            left = "a" if (left_count[a] - left_count[b], rng.random()) < (0, 0.5) else "b"
            left_count[a if left == "a" else b] += 1
            models = (a, b) if by == "model" else (context, context)
            variants = (context, context) if by == "model" else (a, b)
            rows.append({"pair_id": f"{prompt}~{a}~{b}~{context}~{s}", "id": prompt, "by": by, "a": a, "b": b,
                         "a_model": models[0], "a_variant": variants[0], "a_seed": s, "b_model": models[1],
                         "b_variant": variants[1], "b_seed": s, "left": left})
    table = PAIRS.validate(pd.DataFrame(rows, columns=PAIRS.columns))
    if write:
        PAIRS.write(run.pairs_path, table)
    return table


# --- pairs in the study database -------------------------------------------------------------

CHOICES = ("left", "right", "both_good", "both_bad")
GOLD_PAIR = "(gold pair)"  # the plan id prefix of gold pairs


def sync_pairs(db: Path, plan: pd.DataFrame, bench: pd.DataFrame) -> int:
    """Add the plan's pairs (and gold pairs made from the study's gold images: one it should accept
    beside an attention check) not yet in the study; returns how many were added."""
    prompts = bench.set_index("id")["base_prompt"]
    added = 0
    with storage.connect(db) as conn:
        ids = {(r["model"], r["variant"], r["prompt_id"], r["seed"]): r["image_id"]
               for r in conn.execute("SELECT image_id, model, variant, prompt_id, seed FROM images WHERE gold IS NULL")}
        known = {r["pair_id"] for r in conn.execute("SELECT pair_id FROM pairs")}
        for row in plan.to_dict("records"):
            if row["pair_id"] in known:
                continue
            a = ids.get((row["a_model"], row["a_variant"], row["id"], int(row["a_seed"])))
            b = ids.get((row["b_model"], row["b_variant"], row["id"], int(row["b_seed"])))
            if a is None or b is None:
                raise InputError(f"pair {row['pair_id']} names an image the study does not have; plan the pairs again.")
            left, right = (a, b) if row["left"] == "a" else (b, a)
            conn.execute("INSERT INTO pairs VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
                         (secrets.token_urlsafe(12), row["pair_id"], left, right, int(row["left"] == "a"),
                          prompts.get(row["id"], row["id"]), f"{row['a']}|{row['b']}"))
            added += 1
        accept = conn.execute("SELECT image_id, prompt, prompt_id FROM images WHERE gold = 'accept' ORDER BY prompt_id").fetchall()
        checks = conn.execute("SELECT image_id FROM images WHERE gold = 'reject' AND variant = 'attention' "
                              "ORDER BY prompt_id").fetchall()
        for n, (good, check) in enumerate(zip(accept, checks)):
            pair_id = f"{GOLD_PAIR} {good['prompt_id']}"
            if pair_id in known:
                continue
            on_left = n % 2 == 0
            conn.execute("INSERT INTO pairs VALUES (?, ?, ?, ?, 1, ?, ?, ?)",
                         (secrets.token_urlsafe(12), pair_id, good["image_id"] if on_left else check["image_id"],
                          check["image_id"] if on_left else good["image_id"], good["prompt"], GOLD_PAIR,
                          "left" if on_left else "right"))
            added += 1
    return added


def assign_lab_pairs(db: Path, overlap: int, seed: int = 0) -> int:
    """Give every study pair `overlap` of the lab's annotators (the least loaded); returns the changes."""
    with storage.connect(db) as conn:
        people = [r["name"] for r in conn.execute(
            "SELECT name FROM annotators WHERE token_hash IS NOT NULL AND name NOT IN (SELECT name FROM workers) ORDER BY name")]
        holders: dict[str, set] = {}
        for r in conn.execute("SELECT annotator, pair_key FROM pair_assignments"):
            holders.setdefault(r["pair_key"], set()).add(r["annotator"])
        load = {p: sum(p in h for h in holders.values()) for p in people}
        changes = 0
        for (key,) in conn.execute("SELECT pair_key FROM pairs WHERE gold IS NULL ORDER BY pair_id").fetchall():
            taken = holders.setdefault(key, set())
            free = sorted((p for p in people if p not in taken), key=lambda p: (load[p], storage._order(seed, p, key)))
            for person in free[:max(min(overlap, len(people)) - len(taken), 0)]:
                conn.execute("INSERT INTO pair_assignments VALUES (?, ?, ?)", (person, key, storage._order(seed, person, key)))
                load[person] += 1
                changes += 1
    return changes


def next_pair(conn, annotator: str):
    return conn.execute(
        """SELECT p.pair_key, p.left_image, p.right_image, p.prompt FROM pair_assignments a JOIN pairs p USING (pair_key)
           WHERE a.annotator = ? AND NOT EXISTS (SELECT 1 FROM pair_answers s WHERE s.annotator = a.annotator
                                                 AND s.pair_key = a.pair_key AND s.undone = 0)
           ORDER BY a.position LIMIT 1""", (annotator,)).fetchone()


def pair_progress(conn, annotator: str) -> tuple[int, int]:
    total = conn.execute("SELECT COUNT(*) FROM pair_assignments WHERE annotator = ?", (annotator,)).fetchone()[0]
    done = conn.execute("""SELECT COUNT(*) FROM pair_answers s JOIN pair_assignments a
                           ON a.annotator = s.annotator AND a.pair_key = s.pair_key
                           WHERE s.annotator = ? AND s.undone = 0""", (annotator,)).fetchone()[0]
    return done, total


def live_pair_answers(db: Path) -> pd.DataFrame:
    """Every live answer about a pair, with the plan id, what left means, and the gold answer (if gold)."""
    columns = ["annotator", "pair_id", "left_is_a", "choice", "seconds", "gold", "created"]
    if not db.is_file():
        return pd.DataFrame(columns=columns)
    conn = sqlite3.connect(db)
    try:
        if not _has_table(conn, "pairs"):  # a study from before pairs
            return pd.DataFrame(columns=columns)
        return pd.read_sql_query(
            """SELECT s.annotator, p.pair_id, p.left_is_a, s.choice, s.seconds, p.gold, s.created
               FROM pair_answers s JOIN pairs p USING (pair_key) WHERE s.undone = 0 ORDER BY s.answer_id""", conn)
    finally:
        conn.close()


def _has_table(conn, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None


def outcome_for_a(choice: str, left_is_a: int) -> float:
    """1 when a was chosen, 0 when b was, 0.5 for both good or both bad."""
    if choice in ("both_good", "both_bad"):
        return 0.5
    return float((choice == "left") == bool(left_is_a))
