"""Paper-scale speed on one GPU: every generate option side by side, on the same seeds, in one run.

SD-3.5 Large (and FLUX.1-dev) with random weights and their exact architectures
(`architectures.py`), 1024 x 1024, 40 (FLUX: 50) steps with guidance, batch 4 through the
generate stage. Each row of the matrix builds the pipeline afresh (the same weights: seed 0,
checked by a checksum), applies its options with `act2i_utils.generate.pipelines.apply_options`
(the code the paper profile runs), warms up on the same shapes (compilation happens there), then
times one batch of 4 images through `generate.run`. For every row: images/s, its ratio to the
authors' loop (one image per call, cache emptied after each), the transformer's TFLOP/s and share
of the card's measured bf16 matmul peak (CUDA events around every transformer call), the VAE
decode's time, peak GPU memory, and the largest pixel difference from the reference row on the
same prompts and seeds. Rows run in priority order and are skipped, with the reason recorded,
when the time budget would not hold them:

  SD-3.5 Large   authors' loop, reference (PyTorch picks its attention kernel), fused QKV, + cuDNN
                 attention (FlashAttention-3 is tried: refused for SD3, whose processors call PyTorch directly),
                 + torch.compile max-autotune of the repeated blocks (first compile, then again from
                 the warm cache after torch._dynamo.reset()), + CUDA graphs;
                 opt-in, output-changing: fp8 (torchao), fp8 + compile, first-block step cache;
                 diagnostic: diffusers' own fused processor, which drops SD-3.5's q/k RMS norms
  FLUX.1-dev     authors' loop, reference, fused QKV + cuDNN, + compile max-autotune, step cache

Results: benchmarks/results/gpu_paper_scale_matrix.json and .log (and copies under $OUT);
--tiny writes *_tiny.json (not committed).

    python benchmarks/gpu_paper_scale.py --budget-s 480        # on a CUDA machine (about 8-9 minutes)
    python benchmarks/gpu_paper_scale.py --rows flux           # the FLUX rows alone
    python benchmarks/gpu_paper_scale.py --tiny                # the same code on CPU, tiny configs (~3 min)
    python benchmarks/gpu_paper_scale.py --tiny --no-compile   # without the compile rows (~30 s)
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

T0 = time.perf_counter()
RESULTS: dict = {"benchmark": "gpu_paper_scale_matrix", "models": {}, "skipped": {}, "log": []}
STATE: dict = {"results_dir": REPO / "benchmarks" / "results", "name": "gpu_paper_scale_matrix"}


def elapsed() -> float:
    return time.perf_counter() - T0


def log(message: str) -> None:
    line = f"[{elapsed():6.1f} s] {message}"
    print(line, flush=True)
    RESULTS["log"].append(line)


def save() -> None:
    """Write what is known so far (a run cut short keeps its finished rows)."""
    text = json.dumps(RESULTS, indent=2, default=float) + "\n"
    folder = Path(STATE["results_dir"])
    folder.mkdir(parents=True, exist_ok=True)
    targets = [folder] + ([Path(os.environ["OUT"])] if os.environ.get("OUT") else [])
    for target in targets:
        (target / f"{STATE['name']}.json").write_text(text)
        if not RESULTS.get("tiny"):
            (target / f"{STATE['name']}.log").write_text("\n".join(RESULTS["log"]) + "\n")


# --- the matrix ------------------------------------------------------------------------------


@dataclass
class Row:
    """One way to generate: options over a base ('' none, 'best_eager' or 'best_compiled' measured earlier)."""

    name: str
    model: str
    options: dict = field(default_factory=dict)
    base: str = ""
    kind: str = "preserving"  # preserving | opt-in (changes outputs) | diagnostic | baseline
    compile_cost_s: float = 0.0  # what the budget check expects compilation to cost on a GPU
    note: str = ""
    reset_compiler: bool = False  # torch._dynamo.reset() first: compile again from the on-disk cache


COMPILE = {"compile_mode": "max-autotune", "compile_scope": "blocks"}


def matrix(step_cache: float) -> list[Row]:
    """Every row, in priority order."""
    sd3, flux = "sd35-large", "flux1-dev"
    fused_cudnn = {"fuse_qkv": True, "attention_backend": "_native_cudnn"}
    return [
        Row("authors_loop", sd3, kind="baseline"),
        Row("reference", sd3),
        Row("fused_qkv", sd3, {"fuse_qkv": True}),
        Row("fused_qkv+cudnn_attention", sd3, fused_cudnn),
        Row("fused_qkv+flash3_attention", sd3, {"fuse_qkv": True, "attention_backend": "_flash_3"}),
        Row("compile_max_autotune", sd3, COMPILE, base="best_eager", compile_cost_s=240,
            note="first compile into the cache folder"),
        Row("compile_max_autotune_warm_cache", sd3, COMPILE, base="best_eager", compile_cost_s=60, reset_compiler=True,
            note="compiled again after torch._dynamo.reset(), from the on-disk cache"),
        Row("compile_max_autotune+cuda_graphs", sd3, {**COMPILE, "cuda_graphs": True}, base="best_eager", compile_cost_s=150),
        Row("fp8", sd3, {"fp8": True}, base="best_eager", kind="opt-in"),
        Row("fp8+compile_max_autotune", sd3, {"fp8": True}, base="best_compiled", kind="opt-in", compile_cost_s=240),
        Row(f"step_cache_{step_cache:g}", sd3, {"step_cache": step_cache}, base="best_eager", kind="opt-in"),
        Row("diffusers_fused_processor_without_qk_norm", sd3, {"fuse_qkv": True}, base="best_eager", kind="diagnostic",
            note="diffusers 0.42's FusedJointAttnProcessor2_0, which skips SD-3.5's q/k RMS norms (what the earlier 1.30x measured)"),
        Row("authors_loop", flux, kind="baseline"),
        Row("reference", flux),
        Row("fused_qkv+cudnn_attention", flux, fused_cudnn),
        Row("compile_max_autotune", flux, COMPILE, base="best_eager", compile_cost_s=300),
        Row(f"step_cache_{step_cache:g}", flux, {"step_cache": step_cache}, base="best_eager", kind="opt-in"),
    ]


def select(rows: list[Row], spec: str, no_compile: bool) -> list[Row]:
    """--rows: 'all', 'sd35', 'flux', 'preserving', 'opt-in', or names (model:name or name) separated by commas."""
    chosen = []
    for part in spec.split(","):
        part = part.strip()
        for row in rows:
            if (part == "all" or (part == "sd35" and row.model == "sd35-large") or (part == "flux" and row.model == "flux1-dev")
                    or part == row.kind or part == row.name or part == f"{row.model}:{row.name}"):
                if row not in chosen:
                    chosen.append(row)
    if no_compile:
        chosen = [r for r in chosen if not (r.options.get("compile_mode") or r.base == "best_compiled")]
    return sorted(chosen, key=rows.index)


# --- measuring -------------------------------------------------------------------------------


def matmul_peak(device: str, n: int = 8192, repeats: int = 20, fp8: bool = False) -> float:
    """Matrix-multiply TFLOP/s on random data (bf16, or float8 e4m3 through torch._scaled_mm)."""
    import torch

    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    if fp8:
        a, b = a.to(torch.float8_e4m3fn), b.to(torch.float8_e4m3fn).t()  # the second operand column-major
        one = torch.ones((), device=device)

        def product():
            return torch._scaled_mm(a, b, scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
    else:
        def product():
            return a @ b
    for _ in range(3):
        product()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        product()
    end.record()
    torch.cuda.synchronize()
    return 2 * n ** 3 / (start.elapsed_time(end) / 1000 / repeats) / 1e12


class Timer:
    """Time spent inside a module's calls: CUDA events on a GPU (GPU time), wall time on a CPU."""

    def __init__(self, cuda: bool):
        import torch

        self.cuda, self.pairs, self.handles, self._torch = cuda, [], [], torch

    def mark(self):
        if self.cuda:
            event = self._torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def start(self, *_args, **_kwargs):
        self.pairs.append([self.mark(), None])

    def stop(self, *_args, **_kwargs):
        self.pairs[-1][1] = self.mark()

    def around_module(self, module) -> "Timer":
        self.handles = [module.register_forward_pre_hook(self.start), module.register_forward_hook(self.stop, always_call=True)]
        return self

    def around_method(self, owner, name: str) -> "Timer":
        original = getattr(owner, name)

        def timed(*args, **kwargs):
            self.start()
            try:
                return original(*args, **kwargs)
            finally:
                self.stop()

        setattr(owner, name, timed)
        self.handles = [type("Undo", (), {"remove": staticmethod(lambda: delattr(owner, name))})()]
        return self

    def seconds(self) -> float:
        if self.cuda:
            self._torch.cuda.synchronize()
            return sum(a.elapsed_time(b) for a, b in self.pairs if b is not None) / 1000
        return sum(b - a for a, b in self.pairs if b is not None)

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def pixel_difference(folder_a: Path, folder_b: Path) -> dict:
    """Largest and mean absolute difference (grey levels, 0-255) between same-named PNGs of two runs."""
    import numpy as np
    from PIL import Image

    worst, total, count, changed, pixels = 0, 0.0, 0, 0, 0
    for path in sorted(folder_a.rglob("*.png")):
        other = folder_b / path.relative_to(folder_a)
        if not other.is_file():
            continue
        a = np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)
        b = np.asarray(Image.open(other).convert("RGB"), dtype=np.int16)
        diff = np.abs(a - b)
        worst, total, count = max(worst, int(diff.max())), total + float(diff.mean()), count + 1
        changed, pixels = changed + int((diff.max(axis=-1) > 1).sum()), pixels + diff.shape[0] * diff.shape[1]
    if not count:
        return {"images_compared": 0}
    return {"images_compared": count, "max_pixel_difference": worst, "mean_pixel_difference": total / count,
            "share_of_pixels_off_by_more_than_1": changed / pixels}


def _second_block_attention(pipe):
    from act2i_utils.generate.pipelines import denoiser

    net = denoiser(pipe)
    net = getattr(net, "_orig_mod", net)
    blocks = getattr(net, "transformer_blocks", None)
    return getattr(blocks[1], "attn", None) if blocks is not None and len(blocks) > 1 else None


def environment(cuda: bool) -> dict:
    import platform

    import torch

    env = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
           "cpu_count": os.cpu_count(), "device": torch.cuda.get_device_name(0) if cuda else "cpu"}
    if cuda:
        env["compute_capability"] = ".".join(map(str, torch.cuda.get_device_capability(0)))
        env["cudnn"] = torch.backends.cudnn.version()
        env["gpu_memory_gib"] = torch.cuda.get_device_properties(0).total_memory / 2 ** 30
        try:
            env["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                           capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError) as err:
            env["driver"] = f"unknown ({err})"
    for package in ("diffusers", "transformers", "triton", "torchao", "accelerate"):
        try:
            module = __import__(package)
            env[package] = getattr(module, "__version__", "?")
        except Exception as err:  # noqa: BLE001 - absent or broken: say which
            env[package] = f"not importable ({type(err).__name__})"
    return env


def weights_checksum(pipe) -> float:
    """A cheap fingerprint of the denoiser's weights: rebuilt pipelines must match the reference's."""
    import torch

    from act2i_utils.generate.pipelines import denoiser

    with torch.no_grad():
        params = list(denoiser(pipe).parameters())
        return float(sum(p.float().sum().item() for p in params[:: max(1, len(params) // 16)]))


# --- the run ---------------------------------------------------------------------------------


class Bench:
    def __init__(self, args):
        import torch

        from act2i_utils.benchmark import build_benchmark

        self.args, self.torch = args, torch
        self.cuda = torch.cuda.is_available() and not args.tiny
        self.device = "cuda" if self.cuda else "cpu"
        self.dtype = "float32" if args.tiny else "bfloat16"
        self.size = 64 if args.tiny else 1024
        self.work = Path(tempfile.mkdtemp(prefix="act2i-gpu-"))
        self.bench = build_benchmark(seed=0)
        self.cache_dir = Path(args.compile_cache or (self.work / "inductor" if args.tiny else REPO / "build" / "inductor-cache"))
        self.pipe = None
        self.measured: dict[str, dict] = {}  # model -> name -> row result

    # pipelines -----------------------------------------------------------------------------

    def release(self) -> None:
        self.pipe = None
        gc.collect()
        if self.cuda:
            self.torch.cuda.synchronize()
            self.torch.cuda.empty_cache()

    def build(self, model: str):
        from architectures import build_pipeline

        self.release()
        start = time.perf_counter()
        self.pipe = build_pipeline(model, device=self.device, dtype=self.dtype)
        return time.perf_counter() - start

    def entry(self, model: str) -> dict:
        steps = (4 if model == "sd35-large" else 3) if self.args.tiny else (40 if model == "sd35-large" else 50)
        return {"model": model, "name": f"{model}-random", "steps": steps, "guidance": 3.5, "height": self.size,
                "width": self.size, "dtype": self.dtype}

    def options_for(self, row: Row) -> dict:
        done = self.measured.get(row.model, {})

        def best(compiled: bool) -> dict:
            ok = [r for r in done.values() if r.get("kind") == "preserving" and "images_per_s" in r
                  and bool(r["options"].get("compile_mode")) == compiled]
            return dict(max(ok, key=lambda r: r["images_per_s"])["options"]) if ok else {}

        base = {}
        if row.base == "best_eager":
            base = best(False) or ({"fuse_qkv": True, "attention_backend": "_native_cudnn"} if self.cuda else {"fuse_qkv": True})
        elif row.base == "best_compiled":
            base = best(True) or {**(best(False) or {"fuse_qkv": True}), **COMPILE}
        options = {**base, **row.options}
        if options.get("compile_mode"):
            options["compile_cache_dir"] = str(self.cache_dir / row.model)
        return options

    # one row -------------------------------------------------------------------------------

    def estimate(self, row: Row, images: int) -> float:
        done = self.measured.get(row.model, {})
        speeds = [r["images_per_s"] for r in done.values() if "images_per_s" in r]
        speed = min(speeds) if speeds else (0.003 if self.args.tiny else 0.1)  # slowest seen; unseen: a guess
        compile_cost = (60 if row.compile_cost_s else 0) if self.args.tiny else row.compile_cost_s
        return images / speed + compile_cost + (2 if self.args.tiny else 12)

    def run_row(self, row: Row) -> None:
        from act2i_utils.config import GenerateConfig, T2IModel
        from act2i_utils.errors import Act2iError
        from act2i_utils.generate.pipelines import apply_options, output_changing

        key = f"{row.model}:{row.name}"
        images = self.args.authors_images if row.kind == "baseline" else self.args.batch
        need = self.estimate(row, images)
        if elapsed() + need > self.args.budget_s:
            RESULTS["skipped"][key] = f"budget: about {need:.0f} s needed, {self.args.budget_s - elapsed():.0f} s left"
            log(f"{key}: skipped ({RESULTS['skipped'][key]})")
            save()
            return
        torch = self.torch
        result: dict = {"kind": row.kind, "note": row.note}
        done = self.measured.setdefault(row.model, {})
        if row.reset_compiler:
            torch._dynamo.reset()
        result["build_seconds"] = self.build(row.model)
        result["weights_checksum"] = weights_checksum(self.pipe)
        if row.kind == "baseline":
            self.authors_loop(row, images, result)
        else:
            options = self.options_for(row)
            result["options"] = options
            result["changes_outputs"] = output_changing(GenerateConfig(models=[T2IModel(model="x")], **options))
            cache = Path(options.get("compile_cache_dir") or self.cache_dir / row.model)
            if options.get("compile_mode"):
                result["compile_cache_files_before"] = sum(1 for p in cache.rglob("*") if p.is_file()) if cache.is_dir() else 0
            try:
                apply_options(self.pipe, GenerateConfig(models=[T2IModel(model="x")], **options), self.device)
            except Act2iError as err:
                result["refused"] = str(err)
                done[row.name] = result
                log(f"{key}: refused: {err}")
                self.release()
                save()
                return
            if row.kind == "diagnostic":
                self.diffusers_fused_processor()
            self.stage(row, images, result)
            if options.get("compile_mode"):
                result["compile_seconds"] = result["warmup_seconds"] - done.get("reference", {}).get("warmup_seconds", 0.0)
                result["compile_cache_mib"] = sum(p.stat().st_size for p in cache.rglob("*") if p.is_file()) / 2 ** 20
        done[row.name] = result
        reference = done.get("reference", {})
        if "weights_checksum" in reference and result["weights_checksum"] != reference["weights_checksum"]:
            result["warning"] = "weights differ from the reference row's (the rebuild was not deterministic)"
        authors = done.get("authors_loop", {}).get("images_per_s")
        if authors and "images_per_s" in result:
            result["vs_authors_loop"] = result["images_per_s"] / authors
        self.release()
        if row.options.get("compile_mode") or row.base == "best_compiled":
            torch._dynamo.reset()  # drop compiled code and CUDA graph pools with the pipeline they belong to
        self.describe(key, result)
        save()

    def diffusers_fused_processor(self) -> None:
        from diffusers.models.attention_processor import FusedJointAttnProcessor2_0

        from act2i_utils.generate.pipelines import FusedJointAttnProcessor, denoiser

        for module in denoiser(self.pipe).modules():
            if isinstance(getattr(module, "processor", None), FusedJointAttnProcessor):
                module.set_processor(FusedJointAttnProcessor2_0())

    def authors_loop(self, row: Row, n: int, result: dict) -> None:
        """The authors' code: one image per call, one shared generator, gc + empty_cache after each image."""
        from act2i_utils.generate import resolve_spec
        from act2i_utils.generate.pipelines import call_kwargs
        from act2i_utils.runs import open_run

        torch = self.torch
        spec = resolve_spec(open_run(self.work / f"probe-{row.model}", "smoke",
                                     {"generate": {"models": [self.entry(row.model)]}}).config.generate.models[0])
        kwargs = call_kwargs(self.pipe, spec)
        self.pipe("warm-up", **{**kwargs, "num_inference_steps": 2})
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
        generator = torch.Generator("cpu").manual_seed(42)
        start = time.perf_counter()
        for text in self.bench["base_prompt"].head(n):
            self.pipe(text, generator=generator, **kwargs)
            gc.collect()
            if self.cuda:
                torch.cuda.empty_cache()
        seconds = time.perf_counter() - start
        result.update(images=n, seconds=seconds, images_per_s=n / seconds,
                      peak_gpu_gib=torch.cuda.max_memory_allocated() / 2 ** 30 if self.cuda else None)

    def stage(self, row: Row, n: int, result: dict) -> None:
        """Warm up on the timed shapes, then time one batch through the generate stage."""
        import pandas as pd

        from act2i_utils import generate
        from act2i_utils.generate.pipelines import call_kwargs, denoiser
        from act2i_utils.runs import open_run
        from act2i_utils.schema import PROMPTS

        torch, model = self.torch, row.model
        entry = self.entry(model)
        run_dir = self.work / model / row.name
        shutil.rmtree(run_dir, ignore_errors=True)
        run = open_run(run_dir, "smoke", {"generate": {"models": [entry], "variants": ["base"], "seeds": [42],
                                                       "batch_size": self.args.batch}})
        rows = self.bench.head(n)
        prompts = pd.DataFrame({"id": rows["id"], "variant": "base", "sample": 0, "text": rows["base_prompt"]})
        PROMPTS.write(run.prompts_path, prompts.reindex(columns=PROMPTS.columns))  # the other columns empty
        kwargs = call_kwargs(self.pipe, generate.resolve_spec(run.config.generate.models[0]))
        from torch._dynamo.utils import counters

        counters = counters["stats"]
        start = time.perf_counter()
        generators = [torch.Generator("cpu").manual_seed(i) for i in range(self.args.batch)]
        with torch.inference_mode():
            self.pipe(["warm-up"] * self.args.batch, generator=generators, **{**kwargs, "num_inference_steps": 2})
        if self.cuda:
            torch.cuda.synchronize()
        result["warmup_seconds"] = time.perf_counter() - start
        graphs_before = counters["unique_graphs"]
        net_timer = Timer(self.cuda).around_module(denoiser(self.pipe))
        computed = []  # calls in which the second block really ran (the step cache skips it)
        probe = None if result["options"].get("compile_mode") else _second_block_attention(self.pipe)  # hooks in compiled code do not fire
        handle = probe.register_forward_hook(lambda *_: computed.append(1)) if probe is not None else None
        vae_timer = Timer(self.cuda).around_method(self.pipe.vae, "decode")
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        generate.run(run, progress=False, pipelines={entry["name"]: self.pipe})
        seconds = time.perf_counter() - start
        net_seconds, vae_seconds = net_timer.seconds(), vae_timer.seconds()
        net_timer.remove()
        vae_timer.remove()
        if handle is not None:
            handle.remove()
            result["share_of_calls_fully_computed"] = len(computed) / max(1, len(net_timer.pairs))
        flops = self.flops_per_image(model, run)
        result.update(images=n, seconds=seconds, images_per_s=n / seconds, transformer_seconds=net_seconds,
                      transformer_calls=len(net_timer.pairs), vae_decode_seconds=vae_seconds,
                      other_seconds=seconds - net_seconds - vae_seconds,
                      transformer_tflops=flops * n / net_seconds / 1e12 if net_seconds else None,
                      graphs_compiled_while_timed=counters["unique_graphs"] - graphs_before,
                      peak_gpu_gib=torch.cuda.max_memory_allocated() / 2 ** 30 if self.cuda else None,
                      run_dir=str(run_dir))
        if self.cuda and result["transformer_tflops"]:
            result["share_of_bf16_matmul_peak"] = result["transformer_tflops"] / RESULTS["matmul_peak_tflops"]
        reference = self.measured.get(model, {}).get("reference")
        if reference and row.name != "reference":
            result.update(pixel_difference(Path(reference["run_dir"]) / "images", run_dir / "images"))

    def flops_per_image(self, model: str, run) -> float:
        from act2i_utils import generate
        from architectures import flux_flops_per_step, sd3_flops_per_step

        spec = generate.resolve_spec(run.config.generate.models[0])
        if model == "flux1-dev":  # guidance-distilled: one latent per image; the text is T5's alone
            return spec.steps * flux_flops_per_step(self.size, self.size, spec.max_sequence_length or 512, batch=1)
        return spec.steps * sd3_flops_per_step(self.size, self.size, 77 + (spec.max_sequence_length or 256), batch=2)

    def describe(self, key: str, r: dict) -> None:
        if "images_per_s" not in r:
            return
        parts = [f"{r['images_per_s']:.4f} images/s"]
        if r.get("vs_authors_loop"):
            parts.append(f"{r['vs_authors_loop']:.2f}x the authors' loop")
        if r.get("transformer_tflops"):
            parts.append(f"transformer {r['transformer_tflops']:.1f} TFLOP/s")
        if r.get("share_of_bf16_matmul_peak"):
            parts.append(f"{100 * r['share_of_bf16_matmul_peak']:.0f} % of peak")
        if r.get("compile_seconds") is not None:
            parts.append(f"compile {r['compile_seconds']:.0f} s")
        if r.get("peak_gpu_gib"):
            parts.append(f"peak {r['peak_gpu_gib']:.1f} GiB")
        if "max_pixel_difference" in r:
            parts.append(f"max pixel difference {r['max_pixel_difference']}")
        log(f"{key}: " + ", ".join(parts))


def summary() -> None:
    """Per model: each measured row's speed-up over the authors' loop; the best output-preserving row; the paper estimate."""
    for model, rows in RESULTS["models"].items():
        timed = {k: r for k, r in rows["rows"].items() if "images_per_s" in r and r["kind"] != "baseline"}
        preserving = {k: r for k, r in timed.items() if r["kind"] == "preserving"}
        rows["speedup_over_authors"] = {k: r.get("vs_authors_loop") for k, r in timed.items()}
        if preserving:
            name, best = max(preserving.items(), key=lambda kv: kv[1]["images_per_s"])
            rows["best_preserving"] = {"row": name, "images_per_s": best["images_per_s"],
                                       "vs_authors_loop": best.get("vs_authors_loop"),
                                       "share_of_bf16_matmul_peak": best.get("share_of_bf16_matmul_peak"),
                                       "hours_for_2000_images": 2000 / best["images_per_s"] / 3600}


def export_compile_cache(cache_dir: Path) -> None:
    """Put the compile cache under $OUT as a .tar.gz, to be unpacked into build/inductor-cache and carried next time."""
    if not os.environ.get("OUT") or not cache_dir.is_dir():
        return
    target = Path(os.environ["OUT"]) / "inductor-cache.tar.gz"
    with tarfile.open(target, "w:gz") as tar:
        tar.add(cache_dir, arcname="inductor-cache")
    RESULTS["compile_cache_export"] = {"file": target.name, "mib": target.stat().st_size / 2 ** 20}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="dry run on CPU with tiny configurations")
    parser.add_argument("--budget-s", type=float, default=480, help="skip rows that would end past this many seconds")
    parser.add_argument("--rows", default="all", help="all, sd35, flux, preserving, opt-in, diagnostic, or row names")
    parser.add_argument("--no-compile", action="store_true", help="leave out the torch.compile rows")
    parser.add_argument("--batch", type=int, default=4, help="images per timed batch (the paper profile's batch)")
    parser.add_argument("--authors-images", type=int, default=2, help="images timed in the authors' loop")
    parser.add_argument("--step-cache", type=float, default=0.1, help="first-block cache threshold of the opt-in row")
    parser.add_argument("--compile-cache", default=None, help="inductor cache folder (default build/inductor-cache; "
                        "--tiny: a temporary one)")
    parser.add_argument("--export-compile-cache", action="store_true", help="write $OUT/inductor-cache.tar.gz at the end")
    parser.add_argument("--results-dir", default=None, help="where the JSON (and log) go (default benchmarks/results)")
    args = parser.parse_args(argv)
    RESULTS.update(models={}, skipped={}, log=[], tiny=args.tiny, budget_s=args.budget_s, rows=args.rows)
    STATE["name"] = "gpu_paper_scale_matrix_tiny" if args.tiny else "gpu_paper_scale_matrix"
    if args.results_dir:
        STATE["results_dir"] = Path(args.results_dir)
    if args.tiny:
        import architectures

        architectures.shrink_for_cpu()
        args.budget_s = max(args.budget_s, 3600)  # tiny rows are quick; the budget is for the GPU
    import torch

    from architectures import transformer_parameters

    bench = Bench(args)
    RESULTS["environment"] = environment(bench.cuda)
    log(f"device {RESULTS['environment']['device']}, torch {torch.__version__}")
    if bench.cuda:
        RESULTS["matmul_peak_tflops"] = matmul_peak("cuda")
        log(f"bf16 matmul peak {RESULTS['matmul_peak_tflops']:.0f} TFLOP/s")
        if torch.cuda.get_device_capability(0) >= (8, 9):
            try:
                RESULTS["fp8_matmul_peak_tflops"] = matmul_peak("cuda", fp8=True)
                log(f"fp8 matmul peak {RESULTS['fp8_matmul_peak_tflops']:.0f} TFLOP/s")
            except Exception as err:  # noqa: BLE001 - nice to have
                RESULTS["fp8_matmul_peak_error"] = str(err)
    RESULTS["compile_cache_dir"] = str(bench.cache_dir)
    rows = select(matrix(args.step_cache), args.rows, args.no_compile)
    RESULTS["planned"] = [f"{r.model}:{r.name}" for r in rows]
    save()
    try:
        for row in rows:
            if row.model not in RESULTS["models"]:
                RESULTS["models"][row.model] = {"transformer_parameters": transformer_parameters(row.model),
                                                "height": bench.size, "width": bench.size, "dtype": bench.dtype,
                                                "batch": args.batch, "steps": bench.entry(row.model)["steps"],
                                                "rows": bench.measured.setdefault(row.model, {})}
            bench.run_row(row)
            summary()
            model = RESULTS["models"][row.model]
            if "transformer_tflop_per_image" not in model and row.kind != "baseline":
                from act2i_utils.runs import open_run

                probe = open_run(bench.work / f"flops-{row.model}", "smoke", {"generate": {"models": [bench.entry(row.model)]}})
                model["transformer_tflop_per_image"] = bench.flops_per_image(row.model, probe) / 1e12
    finally:
        bench.release()
        summary()
        if args.export_compile_cache:
            export_compile_cache(bench.cache_dir)
        RESULTS["total_seconds"] = elapsed()
        log(json.dumps({m: r.get("best_preserving") for m, r in RESULTS["models"].items()}, default=float))
        save()
        shutil.rmtree(bench.work, ignore_errors=True)
    return RESULTS


if __name__ == "__main__":
    main()
