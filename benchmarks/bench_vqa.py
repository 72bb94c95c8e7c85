"""VQA judge: batched against one (image, question) per call, on the tiny VLM, 64 images x 5
questions. Targets: at least 3x faster, the same probabilities.

    python benchmarks/bench_vqa.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import report, timed  # noqa: E402

N, BATCH = 64, 32


def main() -> dict:
    from PIL import Image

    from act2i_utils.benchmark import build_benchmark
    from act2i_utils.evaluate.judges import VqaJudge

    bench = build_benchmark(seed=0)
    rng = np.random.default_rng(0)
    images = [Image.fromarray((rng.random((32, 32, 3)) * 255).astype("uint8")) for _ in range(N)]
    judge = VqaJudge("tiny:vlm", "cpu")
    pairs = []
    for n, image in enumerate(images):
        row = bench.iloc[n % len(bench)]
        item = {"base_prompt": row.base_prompt, "animal1": row.animal1, "animal2": row.animal2, "action": row.action}
        pairs += [(image, q) for q in judge.questions(item).values()]

    def one_by_one():
        return [judge.vqascores([im], [q])[0] for im, q in pairs]

    def batched():
        out = []
        for start in range(0, len(pairs), BATCH):
            chunk = pairs[start:start + BATCH]
            out += judge.vqascores([im for im, _ in chunk], [q for _, q in chunk])
        return out

    batched()  # warm-up
    t_one, single = timed(one_by_one)
    t_batch, many = timed(batched)
    diff = float(np.max(np.abs(np.array(single) - np.array(many))))
    rows = [{"way": "one (image, question) per call", "seconds": t_one, "answers_per_s": len(pairs) / t_one},
            {"way": f"act2i VQA judge, batch {BATCH}", "seconds": t_batch, "answers_per_s": len(pairs) / t_batch}]
    return report("vqa", rows, {"answers": len(pairs), "speedup": t_one / t_batch, "max_abs_difference": diff,
                                "target": ">= 3x, same probabilities (<= 1e-5)", "met": t_one / t_batch >= 3 and diff <= 1e-5})


if __name__ == "__main__":
    main()
