"""The paper profile's judges at paper scale on one GPU: batched against one at a time, and the
evaluate stage's time for one model's 2,000 images.

LLaVA-1.5-7B (the VQA judge), CLIP ViT-L/14 (clipscore and action_clip) and OWLv2 base
(detection), with random weights and their exact architectures (`architectures.py`), saved as
local folders and loaded by the evaluate stage's own judges (`make_judges`, the paper profile's
metrics and batch size), scoring 1024 x 1024 PNG files through `judge_all`, the stage's batched
and cached loop. Measured:
- VQA: answers/s one (image, question) per call against the stage's batches (16 images x 5
  questions per forward pass), and the largest difference between the two ways' P(yes);
- CLIP: images/s one image per call against batches;
- every judge's images/s over as many of the 2,000 images as its share of the time budget holds
  (the rest extrapolated, and said so), its load time, and the PNG decoding it pays per image;
- the evaluate stage's time for one model: the judges one after another, as the stage runs them.
Results: benchmarks/results/gpu_judges.json and .log (and $OUT); --tiny writes gpu_judges_tiny.json.

    python benchmarks/gpu_judges.py                # on a CUDA machine (about 8 minutes)
    python benchmarks/gpu_judges.py --tiny         # the same code on CPU with tiny configs (~30 s)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

T0 = time.perf_counter()
RESULTS: dict = {"benchmark": "gpu_judges", "judges": {}, "log": []}
STATE: dict = {"results_dir": REPO / "benchmarks" / "results", "name": "gpu_judges"}
PAPER_METRICS = ["clipscore", "vqa", "detection", "action_clip"]  # configs/paper.yaml's evaluate.metrics


def elapsed() -> float:
    return time.perf_counter() - T0


def log(message: str) -> None:
    line = f"[{elapsed():6.1f} s] {message}"
    print(line, flush=True)
    RESULTS["log"].append(line)


def save() -> None:
    text = json.dumps(RESULTS, indent=2, default=float) + "\n"
    folder = Path(STATE["results_dir"])
    folder.mkdir(parents=True, exist_ok=True)
    for target in [folder] + ([Path(os.environ["OUT"])] if os.environ.get("OUT") else []):
        (target / f"{STATE['name']}.json").write_text(text)
        if not RESULTS.get("tiny"):
            (target / f"{STATE['name']}.log").write_text("\n".join(RESULTS["log"]) + "\n")


def synchronize(cuda: bool) -> None:
    if cuda:
        import torch

        torch.cuda.synchronize()


def make_images(folder: Path, count: int, size: int) -> list[Path]:
    """Smooth random RGB images saved as PNG (they compress and decode like generated ones, unlike noise)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for n in range(count):
        small = Image.fromarray((rng.random((16, 16, 3)) * 255).astype("uint8"))
        path = folder / f"image{n}.png"
        small.resize((size, size), Image.BICUBIC).save(path)
        paths.append(path)
    return paths


def make_items(paths: list[Path], n: int, prefix: str) -> list[dict]:
    """`n` images as the stage sees them (benchmark row, path, content hash); files repeat, hashes do not."""
    from act2i_utils.benchmark import build_benchmark

    bench = build_benchmark(seed=0)
    items = []
    for k in range(n):
        row, path = bench.iloc[k % len(bench)], paths[k % len(paths)]
        items.append({"model": "bench", "variant": "base", "id": row["id"], "seed": k, "path": path, "relpath": path.name,
                      "image_hash": f"{prefix}-{k}", "base_prompt": row["base_prompt"], "animal1": row["animal1"],
                      "animal2": row["animal2"], "action": row["action"]})
    return items


def batched_rate(judge, items: list[dict], batch: int, seconds: float, cuda: bool) -> dict:
    """Images/s of the stage's loop (`judge_all`) over `items`, stopping once `seconds` are spent."""
    from act2i_utils.cache import JsonlCache
    from act2i_utils.evaluate.stage import judge_all

    cache, done, spent = JsonlCache(None), 0, 0.0
    chunk = batch * 2
    values = []
    while done < len(items) and spent < seconds:
        part = items[done:done + chunk]
        start = time.perf_counter()
        values += judge_all(judge, part, cache, batch_size=batch, progress=False)
        synchronize(cuda)
        spent += time.perf_counter() - start
        done += len(part)
    return {"images": done, "seconds": spent, "images_per_s": done / spent, "values": values,
            "extrapolated": done < len(items)}


def vqa_one_at_a_time(judge, items: list[dict], answers: int, batch: int, cuda: bool) -> dict:
    """One (image, question) per forward pass against the same pairs in the stage's batches."""
    import numpy as np
    from PIL import Image

    pairs = []
    for item in items:
        with Image.open(item["path"]) as img:
            image = img.convert("RGB")
        pairs += [(image, q) for q in judge.questions(item).values()]
        if len(pairs) >= answers:
            break
    pairs = pairs[:answers]
    judge.vqascores([pairs[0][0]], [pairs[0][1]])  # warm-up
    synchronize(cuda)
    start = time.perf_counter()
    single = [judge.vqascores([im], [q])[0] for im, q in pairs]
    synchronize(cuda)
    seconds = time.perf_counter() - start
    per_forward = batch * len(judge.questions(items[0]))  # the stage scores `batch` images, all their questions at once
    batched = []
    for k in range(0, len(pairs), per_forward):
        part = pairs[k:k + per_forward]
        batched += judge.vqascores([im for im, _ in part], [q for _, q in part])
    return {"answers": len(pairs), "seconds": seconds, "answers_per_s": len(pairs) / seconds,
            "max_abs_difference_vs_batched": float(np.max(np.abs(np.array(single) - np.array(batched))))}


def decode_seconds(paths: list[Path], repeats: int = 8) -> float:
    """What `judge_all` pays per image before the model sees it: open, decode, convert to RGB."""
    from PIL import Image

    start = time.perf_counter()
    for k in range(repeats):
        with Image.open(paths[k % len(paths)]) as img:
            img.convert("RGB")
    return (time.perf_counter() - start) / repeats


def environment(cuda: bool) -> dict:
    from gpu_paper_scale import environment as env

    return env(cuda)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="dry run on CPU with tiny configurations")
    parser.add_argument("--images", type=int, default=2000, help="images of one model (the paper: 125 x 4 variants x 4 seeds)")
    parser.add_argument("--batch", type=int, default=16, help="images per batch (the paper profile's evaluate.batch_size)")
    parser.add_argument("--budget-s", type=float, default=360, help="seconds for the batched runs together (then extrapolated)")
    parser.add_argument("--single-answers", type=int, default=40, help="VQA answers timed one at a time")
    parser.add_argument("--single-images", type=int, default=64, help="CLIP images timed one at a time")
    parser.add_argument("--results-dir", default=None)
    args = parser.parse_args(argv)
    RESULTS.update(judges={}, log=[], tiny=args.tiny)
    STATE["name"] = "gpu_judges_tiny" if args.tiny else "gpu_judges"
    if args.results_dir:
        STATE["results_dir"] = Path(args.results_dir)
    if args.tiny:
        import architectures

        architectures.shrink_for_cpu()
        args.images, args.batch = min(args.images, 16), min(args.batch, 8)
        args.single_answers, args.single_images = min(args.single_answers, 5), min(args.single_images, 8)
    import torch

    from act2i_utils.benchmark import build_benchmark
    from act2i_utils.config import EvaluateConfig
    from act2i_utils.evaluate import make_judges
    from act2i_utils.models import model_identity
    from architectures import JUDGES, build_judge_folder, judge_parameters

    cuda = torch.cuda.is_available() and not args.tiny
    device = "cuda" if cuda else "cpu"
    RESULTS["environment"] = environment(cuda)
    RESULTS.update(images=args.images, batch=args.batch, budget_s=args.budget_s)
    log(f"device {RESULTS['environment']['device']}, torch {torch.__version__}")
    if cuda:
        from gpu_paper_scale import matmul_peak

        RESULTS["matmul_peak_tflops"] = matmul_peak("cuda")
        log(f"bf16 matmul peak {RESULTS['matmul_peak_tflops']:.0f} TFLOP/s")
    shm = Path("/dev/shm")  # memory, when it has room for LLaVA's 14 GB: saving and loading take seconds
    in_memory = cuda and shm.is_dir() and shutil.disk_usage(shm).free > 20 * 2 ** 30
    work = Path(tempfile.mkdtemp(prefix="act2i-judges-", dir=shm if in_memory else None))
    RESULTS["model_folder"] = "memory (/dev/shm)" if in_memory else "disk (temporary folder)"
    try:
        folders = {}
        for name in JUDGES:  # random weights, saved where the judges load local models from
            start = time.perf_counter()
            folders[name] = build_judge_folder(name, work / name, device=device)
            synchronize(cuda)
            RESULTS["judges"].setdefault(name, {})["parameters"] = judge_parameters(name)
            RESULTS["judges"][name]["build_and_save_seconds"] = time.perf_counter() - start
            log(f"built {name} ({RESULTS['judges'][name]['parameters'] / 1e6:,.1f} M parameters) in "
                f"{RESULTS['judges'][name]['build_and_save_seconds']:.1f} s")
            if cuda:
                torch.cuda.empty_cache()
        size = 64 if args.tiny else 1024
        paths = make_images(work, 8 if args.tiny else 32, size)
        items = make_items(paths, args.images, "image")
        RESULTS["png_decode_seconds_per_image"] = decode_seconds(paths)
        save()

        cfg = EvaluateConfig(metrics=PAPER_METRICS, clip_model=folders["clip-vit-l14"], vqa_model=folders["llava-1.5-7b"],
                             detector_model=folders["owlv2-base"], batch_size=args.batch)
        actions = list(dict.fromkeys(build_benchmark(seed=0)["action"]))
        start = time.perf_counter()
        judges = make_judges(cfg, device, actions)
        synchronize(cuda)
        RESULTS["load_seconds"] = time.perf_counter() - start
        start = time.perf_counter()
        for judge in judges:
            model_identity(judge.model_ref)  # content hash of a local folder, paid once (hub ids: a revision look-up)
        RESULTS["model_identity_seconds"] = time.perf_counter() - start
        log(f"judges {[j.name for j in judges]} loaded in {RESULTS['load_seconds']:.1f} s; folder hashes "
            f"{RESULTS['model_identity_seconds']:.1f} s")
        by_name = {j.name: j for j in judges}
        warm = make_items(paths, args.batch, "warm-up")

        # One at a time, against batches.
        vqa = by_name.get("vqa")
        if vqa is not None and hasattr(vqa, "vqascores"):
            single = vqa_one_at_a_time(vqa, items, args.single_answers, args.batch, cuda)
            RESULTS["vqa_one_at_a_time"] = single
            log(f"vqa one (image, question) per call: {single['answers_per_s']:.1f} answers/s "
                f"(largest difference from batched P(yes): {single['max_abs_difference_vs_batched']:.1e})")
        clip = by_name.get("clipscore")
        if clip is not None:
            batched_rate(clip, warm, 1, 1e9, cuda)
            one = batched_rate(clip, items[:args.single_images], 1, 1e9, cuda)
            RESULTS["clipscore_one_at_a_time"] = {k: v for k, v in one.items() if k != "values"}
            log(f"clipscore one image per call: {one['images_per_s']:.1f} images/s")
        save()

        # Batched, as the stage runs them, one judge after another.
        order = sorted(judges, key=lambda j: j.name != "vqa")  # the slowest first: it gets the largest share
        for n, judge in enumerate(order):
            share = max(5.0, (args.budget_s - (elapsed() - RESULTS.get("_batched_start", elapsed()))) / (len(order) - n))
            RESULTS.setdefault("_batched_start", elapsed())
            batched_rate(judge, warm, args.batch, 1e9, cuda)  # warm-up: kernels chosen, caches filled
            rate = batched_rate(judge, items, args.batch, share, cuda)
            entry = {k: v for k, v in rate.items() if k != "values"}
            entry["stage_seconds_for_all_images"] = args.images / rate["images_per_s"]
            if judge.name == "vqa":
                per_image = len(judge.questions(items[0])) if hasattr(judge, "questions") else 5
                entry["answers_per_s"] = rate["images_per_s"] * per_image
                if "vqa_one_at_a_time" in RESULTS:
                    entry["speedup_over_one_at_a_time"] = entry["answers_per_s"] / RESULTS["vqa_one_at_a_time"]["answers_per_s"]
            if judge.name == "clipscore" and "clipscore_one_at_a_time" in RESULTS:
                one = RESULTS["clipscore_one_at_a_time"]
                entry["speedup_over_one_at_a_time"] = rate["images_per_s"] / one["images_per_s"]
                entry["max_abs_difference_vs_one_at_a_time"] = _clip_difference(clip, items[:one["images"]], rate["values"])
            RESULTS["judges"].setdefault(judge.name, {}).update(entry, model=judge.model_ref)
            log(f"{judge.name} batch {args.batch}: {rate['images_per_s']:.2f} images/s over {rate['images']} images"
                + (f", {entry['answers_per_s']:.1f} answers/s" if "answers_per_s" in entry else "")
                + (f", {entry['speedup_over_one_at_a_time']:.1f}x one at a time" if "speedup_over_one_at_a_time" in entry else "")
                + (" (extrapolated to all images)" if rate["extrapolated"] else ""))
            save()
        RESULTS.pop("_batched_start", None)
        judged = [RESULTS["judges"][j.name]["stage_seconds_for_all_images"] for j in judges]
        RESULTS["evaluate_stage_seconds_one_model"] = sum(judged) + RESULTS["load_seconds"] + RESULTS["model_identity_seconds"]
        RESULTS["evaluate_stage_note"] = (f"{args.images} images, metrics {', '.join(PAPER_METRICS)}, batch {args.batch}: "
                                          "the judges one after another plus loading; measured images/s, extrapolated where "
                                          "a judge's share of the budget did not cover every image")
        log(f"evaluate stage for one model ({args.images} images): about {RESULTS['evaluate_stage_seconds_one_model'] / 60:.1f} min")
    finally:
        RESULTS.pop("_batched_start", None)
        RESULTS["total_seconds"] = elapsed()
        save()
        shutil.rmtree(work, ignore_errors=True)
    return RESULTS


def _clip_difference(clip_judge, items: list[dict], batched_values: list[dict]) -> float:
    """Largest clipscore difference between one-at-a-time and batched scoring of the same images."""
    from act2i_utils.cache import JsonlCache
    from act2i_utils.evaluate.stage import judge_all

    one = judge_all(clip_judge, items, JsonlCache(None), batch_size=1, progress=False)
    return max(abs(a["clipscore"] - b["clipscore"]) for a, b in zip(one, batched_values[:len(one)]))


if __name__ == "__main__":
    main()
