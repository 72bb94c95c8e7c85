"""GPU check at paper scale: SD-3.5 Large with random weights, 1024 x 1024, 40 steps, on one GPU.

Measures, in one run that fits in 8 minutes of GPU time including start-up:
(a) the authors' loop: one image per pipeline call, one shared generator, the cache emptied
    (gc.collect() and torch.cuda.empty_cache()) after every image;
(b) act2i's generate stage at batch 1 and at batch 4;
(c) the stage at batch 4 with torch.compile on the transformer, when the time budget allows;
peak GPU memory; the transformer's achieved TFLOP/s (its FLOPs per step counted from the config,
timed with CUDA events around every transformer call) against the card's bf16 matrix-multiply
peak measured in the same run. Results go to benchmarks/results/gpu_paper_scale.json (and $OUT).

    python benchmarks/gpu_paper_scale.py            # on a CUDA machine
    python benchmarks/gpu_paper_scale.py --tiny     # the same code on CPU with tiny configs (a dry run)
"""

from __future__ import annotations

import argparse
import contextlib
import gc
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
RESULTS: dict = {"phases": {}}


def elapsed() -> float:
    return time.perf_counter() - T0


def save() -> None:
    """Write what is known so far (the run may be cut short)."""
    text = json.dumps(RESULTS, indent=2, default=float)
    name = RESULTS.get("out_name") or ("gpu_paper_scale_tiny" if RESULTS.get("tiny") else "gpu_paper_scale")
    out = REPO / "benchmarks" / "results" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], out.name).write_text(text + "\n")


def log(message: str) -> None:
    print(f"[{elapsed():6.1f} s] {message}", flush=True)


def shrink_for_cpu() -> None:
    """--tiny: the same code path with small configurations, to check the script on a CPU."""
    import architectures as arch

    arch.FLUX1_DEV.update(
        transformer=dict(patch_size=1, in_channels=64, num_layers=1, num_single_layers=1, attention_head_dim=16,
                         num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32, guidance_embeds=True,
                         axes_dims_rope=(4, 6, 6)),
        clip_l={**arch.SD35_LARGE["clip_l"], "hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2,
                "num_attention_heads": 4, "projection_dim": 32},
        t5={**arch.SD35_LARGE["t5"], "d_model": 32, "d_ff": 37, "num_layers": 2, "num_heads": 4, "d_kv": 8},
        vae={**arch.SD35_LARGE["vae"], "block_out_channels": (8, 8, 8, 8), "norm_num_groups": 4, "layers_per_block": 1},
    )
    arch.SD35_LARGE.update(
        transformer=dict(sample_size=32, patch_size=2, in_channels=16, out_channels=16, num_layers=2, attention_head_dim=8,
                         num_attention_heads=4, joint_attention_dim=32, caption_projection_dim=32, pooled_projection_dim=64,
                         pos_embed_max_size=32, qk_norm="rms_norm", dual_attention_layers=()),
        clip_l={**arch.SD35_LARGE["clip_l"], "hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2,
                "num_attention_heads": 4, "projection_dim": 32},
        clip_g={**arch.SD35_LARGE["clip_g"], "hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2,
                "num_attention_heads": 4, "projection_dim": 32},
        t5={**arch.SD35_LARGE["t5"], "d_model": 32, "d_ff": 37, "num_layers": 2, "num_heads": 4, "d_kv": 8},
        vae={**arch.SD35_LARGE["vae"], "block_out_channels": (8, 8, 8, 8), "norm_num_groups": 4, "layers_per_block": 1},
    )


def matmul_peak(device: str, n: int = 8192, repeats: int = 20) -> float:
    """bf16 matrix-multiply TFLOP/s on random data (mean of `repeats` products after warm-ups)."""
    import torch

    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        a @ b
    end.record()
    torch.cuda.synchronize()
    seconds = start.elapsed_time(end) / 1000 / repeats
    del a, b
    return 2 * n ** 3 / seconds / 1e12


class TransformerTimer:
    """Accumulates the time spent inside the transformer with CUDA events (GPU time, not launch time)."""

    def __init__(self, module, cuda: bool):
        import torch

        self.cuda, self.pairs, self.calls, self.batch = cuda, [], 0, []
        self.handles = [module.register_forward_pre_hook(self._pre), module.register_forward_hook(self._post)]
        self._torch = torch

    def _pre(self, module, args, kwargs=None):
        if self.cuda:
            event = self._torch.cuda.Event(enable_timing=True)
            event.record()
            self.pairs.append([event, None])
        else:
            self.pairs.append([time.perf_counter(), None])

    def _post(self, module, args, output):
        if self.cuda:
            event = self._torch.cuda.Event(enable_timing=True)
            event.record()
            self.pairs[-1][1] = event
        else:
            self.pairs[-1][1] = time.perf_counter()
        sample = args[0] if args else None
        self.batch.append(int(sample.shape[0]) if sample is not None else 0)
        self.calls += 1

    def seconds(self) -> float:
        if self.cuda:
            self._torch.cuda.synchronize()
            return sum(a.elapsed_time(b) for a, b in self.pairs) / 1000
        return sum(b - a for a, b in self.pairs)

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tiny", action="store_true", help="dry run on CPU with tiny configurations")
    parser.add_argument("--budget-s", type=float, default=420, help="skip optional phases past this many seconds")
    parser.add_argument("--phases", default="a,b1,b4,compile",
                        help="comma-separated: a, b1, b4, compile, b4_cudnn (cuDNN attention), b4_fused_cudnn (and fused QKV)")
    parser.add_argument("--out-name", default=None, help="results file name (without .json)")
    parser.add_argument("--model", default="sd35-large", choices=["sd35-large", "flux1-dev"])
    args = parser.parse_args()
    RESULTS["out_name"] = args.out_name
    if args.tiny:
        shrink_for_cpu()

    import pandas as pd
    import torch
    import torch.nn.attention

    from act2i_utils import generate
    from act2i_utils.benchmark import build_benchmark
    from architectures import build_pipeline, flux_flops_per_step, sd3_flops_per_step, transformer_parameters
    from act2i_utils.generate.pipelines import call_kwargs
    from act2i_utils.runs import open_run

    cuda = torch.cuda.is_available() and not args.tiny
    device = "cuda" if cuda else "cpu"
    flux = args.model == "flux1-dev"
    size, steps, dtype = (64, 2, "float32") if args.tiny else (1024, 50 if flux else 40, "bfloat16")
    RESULTS.update(model=args.model, tiny=args.tiny, device=torch.cuda.get_device_name(0) if cuda else "cpu", torch=torch.__version__,
                   cuda=torch.version.cuda, height=size, width=size, steps=steps, dtype=dtype)
    try:
        import diffusers
        import transformers

        RESULTS.update(diffusers=diffusers.__version__, transformers=transformers.__version__)
        if cuda:
            import subprocess

            RESULTS["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                               capture_output=True, text=True).stdout.strip()
    except Exception as err:  # noqa: BLE001 - versions are nice to have
        RESULTS["version_error"] = str(err)
    RESULTS["transformer_parameters"] = transformer_parameters(args.model)
    log(f"device {RESULTS['device']}, transformer parameters {RESULTS['transformer_parameters'] / 1e9:.3f} B")

    if cuda:
        RESULTS["matmul_peak_tflops"] = matmul_peak(device)
        log(f"bf16 matmul peak {RESULTS['matmul_peak_tflops']:.0f} TFLOP/s")
    save()

    start = time.perf_counter()
    pipe = build_pipeline(args.model, device=device, dtype=dtype)
    RESULTS["build_seconds"] = time.perf_counter() - start
    log(f"built {args.model} with random weights in {RESULTS['build_seconds']:.1f} s")
    if cuda:
        torch.cuda.synchronize()
        RESULTS["weights_gib"] = torch.cuda.memory_allocated() / 2 ** 30
    save()

    label = f"{args.model}-random"
    entry = {"model": args.model, "name": label, "steps": steps, "guidance": 3.5, "height": size, "width": size, "dtype": dtype}
    work = Path(tempfile.mkdtemp(prefix="act2i-gpu-"))
    bench = build_benchmark(seed=0)
    spec = generate.resolve_spec(open_run(work / "probe", "smoke", {"generate": {"models": [entry]}}).config.generate.models[0])
    kwargs = call_kwargs(pipe, spec)
    if flux:  # guidance-distilled: one latent per image; the text is T5's alone
        flops_per_image = steps * flux_flops_per_step(size, size, spec.max_sequence_length or 512, batch=1)
    else:  # classifier-free guidance doubles the batch; the text is CLIP's 77 tokens and T5's
        flops_per_image = steps * sd3_flops_per_step(size, size, 77 + (spec.max_sequence_length or 256), batch=2)
    RESULTS["transformer_tflop_per_image"] = flops_per_image / 1e12

    log("warm-up call (2 steps)")
    pipe("warm-up", **{**kwargs, "num_inference_steps": 2})

    def stage(batch: int, n: int, name: str, attention=None) -> None:
        run_dir = work / name
        shutil.rmtree(run_dir, ignore_errors=True)
        run = open_run(run_dir, "smoke", {"generate": {"models": [entry], "variants": ["base"], "seeds": [42], "batch_size": batch}})
        rows = bench.head(n)
        pd.DataFrame({"id": rows["id"], "variant": "base", "sample": 0, "text": rows["base_prompt"]}).to_parquet(run.path("prompts.parquet"))
        timer = TransformerTimer(pipe.transformer, cuda)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        # Prefer `attention`; other kernels stay allowed for calls it cannot serve (T5's biased attention).
        fallbacks = [torch.nn.attention.SDPBackend.FLASH_ATTENTION, torch.nn.attention.SDPBackend.EFFICIENT_ATTENTION,
                     torch.nn.attention.SDPBackend.MATH]
        context = (torch.nn.attention.sdpa_kernel([attention, *fallbacks], set_priority=True)
                   if attention is not None else contextlib.nullcontext())
        t = time.perf_counter()
        with context:
            generate.run(run, progress=False, pipelines={label: pipe})
        seconds = time.perf_counter() - t
        transformer_seconds = timer.seconds()
        timer.remove()
        phase = {"images": n, "seconds": seconds, "images_per_s": n / seconds,
                 "transformer_seconds": transformer_seconds,
                 "transformer_tflops": flops_per_image * n / transformer_seconds / 1e12,
                 "peak_gpu_gib": torch.cuda.max_memory_allocated() / 2 ** 30 if cuda else None}
        if cuda:
            phase["share_of_matmul_peak"] = phase["transformer_tflops"] / RESULTS["matmul_peak_tflops"]
        RESULTS["phases"][name] = phase
        log(f"{name}: {phase['images_per_s']:.4f} images/s, transformer {phase['transformer_tflops']:.0f} TFLOP/s, "
            f"peak {phase['peak_gpu_gib'] or 0:.1f} GiB")
        save()

    def authors_loop(n: int) -> None:
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        generator = torch.Generator("cpu").manual_seed(42)
        t = time.perf_counter()
        for text in bench["base_prompt"].head(n):
            pipe(text, generator=generator, **kwargs)
            gc.collect()
            if cuda:
                torch.cuda.empty_cache()
        seconds = time.perf_counter() - t
        RESULTS["phases"]["a_authors_loop"] = {"images": n, "seconds": seconds, "images_per_s": n / seconds,
                                               "peak_gpu_gib": torch.cuda.max_memory_allocated() / 2 ** 30 if cuda else None}
        log(f"authors' loop: {n / seconds:.4f} images/s")
        save()

    phases = args.phases.split(",")
    if "a" in phases:
        authors_loop(2)
    if "b1" in phases:
        stage(1, 2, "b_stage_batch1")
    if "b4" in phases:
        stage(4, 4, "b_stage_batch4")
    if "b4_cudnn" in phases and cuda:
        stage(4, 4, "b_stage_batch4_cudnn_attention", attention=torch.nn.attention.SDPBackend.CUDNN_ATTENTION)
    if "b4_fused_cudnn" in phases and cuda:
        pipe.transformer.fuse_qkv_projections()
        stage(4, 4, "b_stage_batch4_fused_qkv_cudnn_attention", attention=torch.nn.attention.SDPBackend.CUDNN_ATTENTION)
    if "compile" in phases and elapsed() < args.budget_s - 150:
        log("torch.compile of the transformer (compiling during the first batch)")
        original = pipe.transformer
        pipe.transformer = torch.compile(original)
        t = time.perf_counter()
        pipe(["warm-up"] * 4, **{**kwargs, "num_inference_steps": 2})
        RESULTS["compile_seconds"] = time.perf_counter() - t
        log(f"compiled in {RESULTS['compile_seconds']:.0f} s")
        if elapsed() < args.budget_s - 40:
            stage(4, 4, "c_stage_batch4_compiled")
        pipe.transformer = original
    elif "compile" in phases:
        RESULTS["compile_skipped"] = f"not enough time left ({elapsed():.0f} s used of {args.budget_s:.0f})"
    done = RESULTS["phases"]
    if "a_authors_loop" in done:
        a = done["a_authors_loop"]["images_per_s"]
        batch4 = {k: p["images_per_s"] / a for k, p in done.items() if k.startswith(("b_stage_batch4", "c_"))}
        RESULTS["speedup_over_authors"] = batch4
    RESULTS["total_seconds"] = elapsed()
    save()
    log(json.dumps({k: v for k, v in RESULTS.items() if k != "phases"}, default=float))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
