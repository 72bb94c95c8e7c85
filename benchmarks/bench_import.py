"""Importing another benchmark's prompts: a CSV with only `base_prompt`, 10,000 and 100,000 rows,
read, parsed (agents, counts, attributes, scene objects) and written as the run's benchmark.parquet
by the benchmark stage. Target: 10,000 prompts in under 10 s on 2 cores. Beside it, the
straightforward way with a real parser: spaCy's `nlp.pipe` over the same prompts (when spaCy and
its English model are installed; `ACT2I_SPACY_MODEL` may name a folder). The prompts are made
from parts with known answers, so the run also reports how often the parser found them.

    python benchmarks/bench_import.py
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import report  # noqa: E402

COUNTS = [("a", 1), ("two", 2), ("3", 3), ("four", 4), ("a pair of", 2), ("seven", 7), ("several", None), ("the", 1)]
ATTRIBUTES = ["", "", "", "blue", "stone", "tiny", "wooden", "fluffy", "old", "small red", "giant", "plastic"]
OBJECTS = ["robot", "cart", "drone", "car", "teddy bear", "kite", "tractor"]
ACTIONS = ["chasing", "jumping over", "playing with", "hiding behind", "pushing", "following", "staring at",
           "running away from", "dancing with", "attacking", "feeding", "leaning against"]
SCENES = ["", "", " in a park", " on the beach at sunset", " under a tree", " across the snow"]
LEADS = ["", "", "", "a brown guitar, and ", "a red umbrella, and "]


def prompts(n: int, seed: int = 0) -> list[tuple[str, str, str, int | None, int | None]]:
    """(prompt, agent 1, agent 2, count 1, count 2) for n prompts of the shapes other benchmarks use."""
    from act2i_utils.benchmark.rules import _taxonomy_agents
    from act2i_utils.words import plural

    rng = random.Random(seed)
    agents = sorted(_taxonomy_agents()) + OBJECTS
    out = []
    for i in range(n):
        (c1, n1), (c2, n2) = rng.choice(COUNTS), rng.choice(COUNTS)
        a, b = rng.sample(agents, 2)

        def phrase(count, number, noun):
            adjective = rng.choice(ATTRIBUTES)
            name = plural(noun) if number != 1 else noun
            article = ("an" if (adjective or noun)[0] in "aeiou" else "a") if count == "a" else count
            return " ".join(w for w in (article, adjective, name) if w)

        text = f"{rng.choice(LEADS)}{phrase(c1, n1, a)} {rng.choice(ACTIONS)} {phrase(c2, n2, b)}{rng.choice(SCENES)}"
        out.append((text, a, b, n1, n2))
    return out


def import_seconds(rows: list[tuple], folder: Path) -> tuple[float, object]:
    import pandas as pd

    from act2i_utils import benchmark
    from act2i_utils.runs import open_run

    path = folder / f"external_{len(rows)}.csv"
    pd.DataFrame({"base_prompt": [r[0] for r in rows]}).to_csv(path, index=False)
    run = open_run(folder / f"run_{len(rows)}", "smoke", {"benchmark": {"source": str(path)}}, command="bench")
    start = time.perf_counter()
    table = benchmark.run(run)
    return time.perf_counter() - start, table


def found_share(rows: list[tuple], table) -> float:
    right = 0
    for (_, a, b, _, _), got1, got2 in zip(rows, table["animal1"], table["animal2"]):
        right += (got1, got2) == (a, b)
    return right / len(rows)


def spacy_seconds(texts: list[str]) -> float | None:
    from act2i_utils.benchmark.parsing import spacy_available

    if not spacy_available():
        return None
    from act2i_utils.benchmark.spacy_parser import nlp

    start = time.perf_counter()
    for _ in nlp().pipe(texts, batch_size=256):
        pass
    return time.perf_counter() - start


def main() -> dict:
    folder = Path(tempfile.mkdtemp(prefix="act2i-bench-import-"))
    import_seconds(prompts(200, seed=1), folder)  # warm-up: imports, lexicon, taxonomy
    results, rows_out = {}, []
    for n in (10_000, 100_000):
        rows = prompts(n)
        seconds, table = import_seconds(rows, folder)
        share = found_share(rows, table)
        results[n] = seconds
        rows_out.append({"way": f"act2i benchmark stage, {n:,} prompts (read, parse, write)", "seconds": seconds,
                         "prompts_per_s": n / seconds, "agents_found": share})
    sample = [r[0] for r in prompts(10_000)]
    spacy = spacy_seconds(sample)
    if spacy is not None:
        rows_out.append({"way": "spaCy nlp.pipe alone (parse only), 10,000 prompts", "seconds": spacy,
                         "prompts_per_s": 10_000 / spacy})
    extra = {"target": "10,000 prompts imported in < 10 s on 2 cores", "met": results[10_000] < 10,
             "seconds_10k": results[10_000], "seconds_100k": results[100_000],
             "spacy_over_act2i_10k": (spacy / results[10_000]) if spacy else "spaCy not installed"}
    return report("import", rows_out, extra)


if __name__ == "__main__":
    main()
