"""The analysis stage on a synthetic 10-model run: 10 models x 4 variants x 125 prompts x 4 seeds =
20,000 images, each judged by 2 of 5 simulated people, six automatic metrics per image, 2,000
bootstrap draws, every table and figure (the qualitative grids included). Target: under 60 s on
2 cores. Also times 1, 2 and 5 of the models to show how the time grows with the number of models.

    python benchmarks/bench_analysis.py
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from common import report  # noqa: E402

MODELS = [f"model-{i:02d}" for i in range(10)]
VARIANTS = ["base", "spatial", "emotional", "temporal"]
SEEDS = [42, 43, 44, 45]
ANNOTATORS = ["ann", "ben", "cat", "dan", "eve"]
N_BOOT = 2000
TARGET_S = 60.0


def overrides(models: list[str]) -> dict:
    return {"generate": {"models": [{"model": "tiny:sd3", "name": m} for m in models], "variants": VARIANTS, "seeds": SEEDS},
            "evaluate": {"metrics": ["clipscore", "vqa"]},
            "analyze": {"n_bootstrap": N_BOOT, "acceptance_source": "human", "judge_quantile": None}}


def build(root: Path):
    """The synthetic run: benchmark, enriched prompts, imported images, scores and a finished human study."""
    from PIL import Image

    from act2i_utils.annotate import storage, study
    from act2i_utils.benchmark import build_benchmark
    from act2i_utils.enrich import enrich
    from act2i_utils.enrich.kb import KnowledgeBaseBackend
    from act2i_utils.generate.stage import import_images
    from act2i_utils.runs import open_run
    from act2i_utils.schema import SCORES

    run = open_run(root, "smoke", overrides(MODELS))
    bench = build_benchmark(seed=0)
    bench.to_parquet(run.benchmark_path)
    enrich(bench, KnowledgeBaseBackend(), dimensions=VARIANTS[1:], progress=False).to_parquet(run.prompts_path)
    folder = root.parent / "incoming"
    folder.mkdir(exist_ok=True)
    Image.new("RGB", (16, 16), (120, 160, 90)).save(folder / "image.png")
    keys = pd.DataFrame([(m, v, i, s) for m in MODELS for v in VARIANTS for i in bench["id"] for s in SEEDS],
                        columns=["model", "variant", "id", "seed"])
    keys.assign(file="image.png").to_csv(root.parent / "mapping.csv", index=False)
    import_images(run, folder, root.parent / "mapping.csv")

    # the truth: models differ, prompts differ (random effect), enrichment helps, seeds add noise
    rng = np.random.default_rng(0)
    quality = dict(zip(MODELS, np.linspace(-1.2, 0.3, len(MODELS))))
    gain = {"base": 0.0, "spatial": 0.3, "emotional": 0.2, "temporal": 0.9}
    difficulty = dict(zip(bench["id"], rng.normal(0, 1, len(bench))))
    latent = (keys["model"].map(quality) + keys["variant"].map(gain) + keys["id"].map(difficulty)
              + rng.normal(0, 0.8, len(keys))).to_numpy()
    truth = dict(zip(map(tuple, keys.itertuples(index=False)), latent))
    metrics = {"clipscore": (latent * 2 + 25, 3.0), "vqa": (1 / (1 + np.exp(-latent)), 0.15),
               "vqa_agent1": (1 / (1 + np.exp(-latent - 1.5)), 0.1), "vqa_agent2": (1 / (1 + np.exp(-latent - 1.2)), 0.1),
               "vqa_action": (1 / (1 + np.exp(-latent)), 0.2), "vqa_reversed": (1 / (1 + np.exp(latent)), 0.2)}
    scores = pd.concat([keys.assign(metric=name, value=mean + rng.normal(0, sd, len(keys)), judge="synthetic")
                        for name, (mean, sd) in metrics.items()])
    SCORES.write(run.scores_path, scores.reset_index(drop=True))

    for name in ANNOTATORS:
        study.add_annotator(run.root, name, overlap=2)
    with storage.connect(run.annotations_db_path) as conn:
        rows = conn.execute("SELECT a.annotator, a.image_id, i.model, i.variant, i.prompt_id, i.seed "
                            "FROM assignments a JOIN images i USING (image_id)").fetchall()
        answers = []
        for name, image_id, model, variant, prompt, seed in rows:
            coin = hashlib.sha256(f"{name}{image_id}".encode()).digest()[0] / 255
            accept = 1 / (1 + np.exp(-truth[(model, variant, prompt, int(seed))])) > coin
            tags = "" if accept else ("missing agent" if coin > 0.8 else "wrong action" if coin > 0.4 else "role reversal")
            answers.append((name, image_id, "accept" if accept else "reject", tags))
        conn.executemany("INSERT INTO answers (annotator, image_id, label, tags, seconds) VALUES (?, ?, ?, ?, 3)", answers)
    return run


def analyse(root: Path, n_models: int) -> tuple[float, float, object]:
    """(wall seconds, CPU seconds of this process, results) of the analysis stage on the first n models."""
    from act2i_utils import analysis
    from act2i_utils.runs import open_run

    run = open_run(root, "smoke", overrides(MODELS[:n_models]), reconfigure=True)
    start, cpu = time.perf_counter(), time.process_time()
    results = analysis.run(run, progress=False)
    return time.perf_counter() - start, time.process_time() - cpu, results


def main() -> dict:
    folder = Path(tempfile.mkdtemp(prefix="act2i-bench-analysis-"))
    try:
        return measure(folder / "run")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def measure(root: Path) -> dict:
    start = time.perf_counter()
    build(root)
    setup = time.perf_counter() - start
    rows = []
    for n in (1, 2, 5, 10):
        load = os.getloadavg()[0]  # other users of the machine, before the run
        seconds, cpu, results = analyse(root, n)
        images = len(results.acceptance.table)
        rows.append({"models": n, "images": images, "seconds": seconds, "cpu_seconds": cpu,
                     "load_before": load, "tables": len(results.tables), "figures": len(results.figures)})
    full = rows[-1]
    slope, intercept = np.polyfit([r["models"] for r in rows], [r["seconds"] for r in rows], 1)
    return report("analysis", rows, {
        "bootstrap_draws": N_BOOT, "images": full["images"], "setup_seconds": setup,
        "seconds_10_models": full["seconds"], "cpu_seconds_10_models": full["cpu_seconds"],
        "growth": f"about {slope:.2f} s per model on top of {intercept:.2f} s (linear fit of wall time)",
        "note": "the machine's other users show in load_before (1-minute load average, 2 cores); cpu_seconds is this process alone",
        "target": f"10 models, 20,000 images, {N_BOOT} draws, every table and figure in under {TARGET_S:.0f} s",
        "met": full["seconds"] < TARGET_S})


if __name__ == "__main__":
    main()
