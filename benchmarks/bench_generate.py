"""Generation: the same tiny SD3 pipeline and the same 64 (prompt, seed) jobs, three ways.

(a) the straightforward loop: one image per pipeline call, one shared generator, the cache
    emptied after every image (gc.collect() and torch.cuda.empty_cache(), as such scripts do);
(b) act2i's generate stage at batch size 8 (manifest, atomic PNG writes, resume checks);
(c) a bare loop calling the pipeline with the same batches of 8 and no act2i bookkeeping.
Each includes loading the pipeline and writing the PNGs. Targets: (b) >= 2x (a); (b) within 10 % of (c).

    python benchmarks/bench_generate.py
"""

from __future__ import annotations

import gc
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import report, timed  # noqa: E402

N_PROMPTS, SEEDS, BATCH = 32, [42, 43], 8


def main() -> dict:
    import torch
    from diffusers import AutoPipelineForText2Image

    from act2i_utils import generate
    from act2i_utils.benchmark import build_benchmark
    from act2i_utils.generate.pipelines import call_kwargs
    from act2i_utils.runs import open_run
    from act2i_utils.tiny import tiny_path

    work = Path(tempfile.mkdtemp(prefix="act2i-bench-"))
    bench = build_benchmark(seed=0).head(N_PROMPTS)
    prompts = bench.assign(variant="base", sample=0, text=bench["base_prompt"])[["id", "variant", "sample", "text"]]
    jobs = [(text, seed) for text in prompts["text"] for seed in SEEDS]
    settings = {"generate": {"models": [{"model": "tiny-sd3"}], "variants": ["base"], "seeds": SEEDS, "batch_size": BATCH}}
    spec = generate.resolve_spec(open_run(work / "probe", "smoke", settings).config.generate.models[0])
    folder = tiny_path("sd3")

    def load():
        pipe = AutoPipelineForText2Image.from_pretrained(folder)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    kwargs = call_kwargs(load(), spec)
    load()(["warm-up"], **kwargs)  # first-call costs (thread pools, allocator) stay out of every timing

    def authors_loop():
        out = work / "a"
        out.mkdir(exist_ok=True)
        pipe = load()
        generator = torch.Generator("cpu").manual_seed(SEEDS[0])  # one generator for the whole run
        for n, (text, _) in enumerate(jobs):
            pipe(text, generator=generator, **kwargs).images[0].save(out / f"{n}.png")
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    def single_calls():
        out = work / "s"
        out.mkdir(exist_ok=True)
        pipe = load()
        for n, (text, seed) in enumerate(jobs):
            pipe(text, generator=torch.Generator("cpu").manual_seed(seed), **kwargs).images[0].save(out / f"{n}.png")

    def stage():
        run_dir = work / "stage"
        shutil.rmtree(run_dir, ignore_errors=True)
        run = open_run(run_dir, "smoke", settings)
        prompts.to_parquet(run.path("prompts.parquet"))
        return generate.run(run, progress=False)

    def bare_batches():
        out = work / "c"
        out.mkdir(exist_ok=True)
        pipe = load()
        for start in range(0, len(jobs), BATCH):
            chunk = jobs[start:start + BATCH]
            images = pipe([t for t, _ in chunk], generator=[torch.Generator("cpu").manual_seed(s) for _, s in chunk], **kwargs).images
            for n, image in enumerate(images):
                image.save(out / f"{start + n}.png")

    results = {}
    for name, fn in [("(a) authors' loop", authors_loop), ("one image per call, no cache emptying", single_calls),
                     ("(b) act2i stage, batch 8", stage), ("(c) bare batches of 8", bare_batches)]:
        seconds, _ = timed(fn, repeats=3)
        results[name] = seconds
    shutil.rmtree(work, ignore_errors=True)
    a, b, c = results["(a) authors' loop"], results["(b) act2i stage, batch 8"], results["(c) bare batches of 8"]
    rows = [{"way": k, "seconds": v, "images_per_s": len(jobs) / v} for k, v in results.items()]
    return report("generate", rows, {
        "jobs": len(jobs), "speedup_b_over_a": a / b, "b_over_c_time": b / c,
        "target_b_over_a": ">= 2", "target_b_over_c": "<= 1.10", "met": a / b >= 2 and b / c <= 1.10,
    })


if __name__ == "__main__":
    main()
