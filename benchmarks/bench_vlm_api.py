"""API judge: answers per second with `concurrency` 8 against one request at a time, on the test
server of tests/test_enrich_openai.py (a real HTTP server on 127.0.0.1 serving the tiny VLM, which
batches the requests that arrive together into one forward pass, as vLLM does). Target: at least 4x,
the same probabilities.

    python benchmarks/bench_vlm_api.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
from common import report, timed  # noqa: E402

N, CONCURRENCY = 32, 8


def main() -> dict:
    from PIL import Image
    from test_enrich_openai import ChatServer, TinyVlm

    from act2i_utils.benchmark import build_benchmark
    from act2i_utils.evaluate.api import VlmApiJudge

    bench = build_benchmark(seed=0)
    rng = np.random.default_rng(0)
    images = [Image.fromarray((rng.random((32, 32, 3)) * 255).astype("uint8")) for _ in range(N)]
    items = [{k: bench.iloc[n % len(bench)][k] for k in ("base_prompt", "animal1", "animal2", "action", "action_template")}
             for n in range(N)]
    server = TinyVlm(yes_or_no=True)  # a judge that answers yes or no, as a real one does
    with ChatServer(server) as script:
        judges = {c: VlmApiJudge("tiny-vlm", script.url, concurrency=c, top_logprobs=20) for c in (1, CONCURRENCY)}
        judges[CONCURRENCY].score(images[:4], items[:4])  # warm-up
        results, rows = {}, []
        for c, judge in judges.items():
            server.batches.clear()
            seconds, results[c] = timed(lambda judge=judge: judge.score(images, items), repeats=3)
            answers = sum(len(r) for r in results[c])
            rows.append({"way": "one request at a time" if c == 1 else f"concurrency {c}", "seconds": seconds,
                         "answers_per_s": answers / seconds, "mean_server_batch": float(np.mean(server.batches))})
    single = np.array([v for r in results[1] for v in r.values()])
    many = np.array([v for r in results[CONCURRENCY] for v in r.values()])
    speedup = rows[0]["seconds"] / rows[1]["seconds"]
    diff = float(np.max(np.abs(single - many)))
    return report("vlm_api", rows, {"answers": int(len(single)), "speedup": speedup, "max_abs_difference": diff,
                                    "target": ">= 4x, same probabilities (<= 1e-5)", "met": speedup >= 4 and diff <= 1e-5})


if __name__ == "__main__":
    main()
