"""CLIPScore: act2i's batched judge against torchmetrics' CLIPScore called image by image,
256 images, the same tiny CLIP. Targets: at least 5x faster, values equal within 1e-4.

    python benchmarks/bench_clipscore.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import report, timed  # noqa: E402

N = 256


def make_items(folder: Path) -> list[dict]:
    from PIL import Image

    from act2i_utils.benchmark import build_benchmark

    bench = build_benchmark(seed=0)
    rng = np.random.default_rng(0)
    items = []
    for n in range(N):
        row = bench.iloc[n % len(bench)]
        path = folder / f"{n}.png"
        Image.fromarray((rng.random((32, 32, 3)) * 255).astype("uint8")).save(path)
        items.append({"path": path, "relpath": path.name, "image_hash": str(n), "base_prompt": row.base_prompt,
                      "animal1": row.animal1, "animal2": row.animal2, "action": row.action})
    return items


def main() -> dict:
    import torch

    from act2i_utils.cache import JsonlCache
    from act2i_utils.evaluate.judges import ClipJudge, ClipScore
    from act2i_utils.evaluate.stage import judge_all
    from act2i_utils.tiny import tiny_path
    from reference import torchmetrics_clipscore

    items = make_items(Path(tempfile.mkdtemp(prefix="act2i-bench-")))
    metric = torchmetrics_clipscore(tiny_path("clip"))

    def reference():
        from PIL import Image

        values = []
        for item in items:
            image = torch.from_numpy(np.array(Image.open(item["path"]).convert("RGB"))).permute(2, 0, 1)
            with torch.no_grad():
                values.append(max(metric(image, item["base_prompt"]).item(), 0.0))
            metric.reset()
        return values

    def ours():
        judge = ClipScore(ClipJudge("tiny:clip", "cpu"))  # a fresh judge: no text embeddings carried over
        return [v["clipscore"] for v in judge_all(judge, items, JsonlCache(None), batch_size=64, progress=False)]

    ours()  # warm-up
    t_ref, ref = timed(reference)
    t_ours, mine = timed(ours)
    diff = float(np.max(np.abs(np.array(ref) - np.array(mine))))
    rows = [{"way": "torchmetrics CLIPScore, image by image", "seconds": t_ref, "images_per_s": N / t_ref},
            {"way": "act2i clipscore judge, batch 64", "seconds": t_ours, "images_per_s": N / t_ours}]
    return report("clipscore", rows, {"images": N, "speedup": t_ref / t_ours, "max_abs_difference": diff,
                                      "target": ">= 5x, difference <= 1e-4", "met": t_ref / t_ours >= 5 and diff <= 1e-4})


if __name__ == "__main__":
    main()
