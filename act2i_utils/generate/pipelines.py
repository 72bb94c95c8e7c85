"""Loading a text-to-image pipeline, applying the profile's memory and speed options, and
calling it on a batch with one seeded generator per image.

Speed options (benchmarks/README.md measures each): fused q/k/v projections (with SD-3.5's q/k
norms kept: diffusers' own fused processor drops them), the attention kernel, torch.compile with
a persistent cache, CUDA graphs; opt-in and output-changing, never in the paper profile: fp8
matmuls and the first-block step cache.
"""

from __future__ import annotations

import inspect
import json
import warnings
from pathlib import Path

from ..errors import Act2iError, ConfigError
from ..registry import ModelSpec


def torch_dtype(name: str):
    import torch

    try:
        return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]
    except KeyError:
        raise Act2iError(f"Unknown dtype '{name}'; use float32, float16 or bfloat16.") from None


def dtype_used(spec: ModelSpec, device: str) -> str:
    """The dtype the model really runs in: half precision on a CPU runs as float32 (no fast kernels)."""
    return spec.dtype if device != "cpu" or spec.dtype == "float32" else "float32"


# pipelines whose check_inputs asks for a fixed multiple, whatever their VAE (diffusers' code)
FIXED_MULTIPLE = {"StableDiffusionPipeline": 8, "StableDiffusionXLPipeline": 8, "PixArtAlphaPipeline": 8,
                  "PixArtSigmaPipeline": 8, "SanaPipeline": 32}


def size_multiple(spec: ModelSpec) -> tuple[int, str, str] | None:
    """(the multiple the pipeline needs height and width to be, why, its family), read from the
    model's config files where they are on disk, else from its family's defaults; None when unknown."""
    config = _config_reader(spec)
    family = config("model_index.json").get("_class_name") or spec.family or ""
    if family in FIXED_MULTIPLE:
        return FIXED_MULTIPLE[family], f"{family} checks for multiples of {FIXED_MULTIPLE[family]}", family
    blocks = config("vae/config.json").get("block_out_channels")
    scale = 2 ** (len(blocks) - 1) if blocks else 8
    if family.startswith("Flux"):
        return scale * 2, f"VAE scale {scale} x 2, FLUX's latent packing", family
    if family.startswith("StableDiffusion3"):
        patch = config("transformer/config.json").get("patch_size") or 2
        return scale * patch, f"VAE scale {scale} x patch size {patch}", family
    return None


def _config_reader(spec: ModelSpec):
    """name -> that config file of the model's folder (a local or tiny folder, or the Hub cache), {} where
    absent; the model is resolved once, since resolving a folder hashes its files."""
    from ..models import resolve_model

    source = resolve_model(spec.id)

    def read(name: str) -> dict:
        if source.kind == "hub":
            from huggingface_hub import try_to_load_from_cache

            path = try_to_load_from_cache(spec.id, name)
            if not isinstance(path, str):
                return {}
        else:
            path = Path(source.location) / name
        try:
            return json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    return read


def check_size(spec: ModelSpec, index: int) -> None:
    """One sentence naming `generate.models[index].height` (or width) when the pipeline cannot make that size."""
    found = size_multiple(spec)
    if found is None:
        return
    multiple, why, family = found
    for key in ("height", "width"):
        value = getattr(spec, key)
        if value and value % multiple:
            below, above = value - value % multiple, value - value % multiple + multiple
            options = f"{below} or {above}" if below else f"{above} or {above + multiple}"
            raise ConfigError(f"generate.models[{index}].{key} is {value}, which {spec.label} ({family}) cannot make: it "
                              f"must be a multiple of {multiple} ({why}; e.g. {options}).")


def load_pipeline(spec: ModelSpec, *, device: str, options, run=None):
    """Load `spec` through AutoPipelineForText2Image and the shared loader, ready to call."""
    from diffusers import AutoPipelineForText2Image

    from ..models import load_model

    dtype = dtype_used(spec, device)
    if dtype != spec.dtype:
        warnings.warn(f"{spec.label}: {spec.dtype} on the CPU is slow and partly unsupported; using float32.", stacklevel=2)
    pipe = load_model(spec.id, AutoPipelineForText2Image.from_pretrained, what="text-to-image pipeline",
                      run=run, dtype=torch_dtype(dtype))
    pipe.set_progress_bar_config(disable=True)
    apply_options(pipe, options, device)
    return pipe


def denoiser(pipe):
    """The pipeline's denoising network: a transformer (SD3, FLUX, PixArt) or a UNet."""
    return getattr(pipe, "transformer", None) or getattr(pipe, "unet", None)


def _denoiser_attr(pipe) -> str:
    return "transformer" if getattr(pipe, "transformer", None) is not None else "unet"


# diffusers' names for PyTorch's own scaled-dot-product kernels, and the ones that also run on a CPU
NATIVE_SDPA = {"_native_cudnn": "CUDNN_ATTENTION", "_native_flash": "FLASH_ATTENTION",
               "_native_efficient": "EFFICIENT_ATTENTION", "_native_math": "MATH"}
CPU_ATTENTION = ("native", "_native_math", "_native_flash", "flex")
OUTPUT_CHANGING = ("fp8", "step_cache")  # options that change the images; never on in the paper profile


def output_changing(options) -> list[str]:
    """The opt-in options of `options` that change the images (empty for an output-preserving profile)."""
    return [name for name in OUTPUT_CHANGING if getattr(options, name, None)]


def compile_mode(options) -> str | None:
    """The torch.compile mode the options ask for: `compile_mode`, or "default" for the older `compile: true`."""
    return options.compile_mode or ("default" if options.compile else None)


def check_options(options, device: str) -> None:
    """Refuse, in one sentence and before anything is changed, an option this device or install cannot run."""
    cuda = device.startswith("cuda")
    if options.cuda_graphs and not compile_mode(options):
        raise Act2iError("generate.cuda_graphs replays the compiled denoiser, so it needs generate.compile_mode "
                         "(default or max-autotune); set one or unset generate.cuda_graphs.")
    if options.cuda_graphs and not cuda:
        raise Act2iError(f"generate.cuda_graphs needs a CUDA GPU, and the device is {device}; unset generate.cuda_graphs.")
    if options.cuda_graphs and options.cpu_offload:
        raise Act2iError("generate.cuda_graphs cannot replay a denoiser that generate.cpu_offload moves between devices; unset one of them.")
    backend = options.attention_backend
    if backend:
        _check_backend_name(backend)
    if backend and not cuda and backend not in CPU_ATTENTION:
        raise Act2iError(f"Attention backend '{backend}' is not available here (it runs only on a CUDA GPU, and the device "
                         f"is {device}); unset generate.attention_backend or use one of {', '.join(CPU_ATTENTION)}.")
    if options.fp8:
        _check_fp8(device)


def _check_backend_name(name: str) -> None:
    from diffusers.models.attention_dispatch import AttentionBackendName

    known = {b.value for b in AttentionBackendName}
    if name not in known:
        raise Act2iError(f"Attention backend '{name}' is not available here (diffusers knows {', '.join(sorted(known))}); "
                         "unset generate.attention_backend or pick one of those.")


def _check_fp8(device: str) -> None:
    import torch

    if not device.startswith("cuda"):
        raise Act2iError(f"generate.fp8 needs a CUDA GPU of compute capability 8.9 or newer (H100, H200, L40S, RTX 4090), "
                         f"and the device is {device}; unset generate.fp8.")
    major, minor = torch.cuda.get_device_capability(torch.device(device))
    if (major, minor) < (8, 9):
        raise Act2iError(f"generate.fp8 needs a GPU of compute capability 8.9 or newer, and {torch.cuda.get_device_name(torch.device(device))} "
                         f"has {major}.{minor}; unset generate.fp8.")
    try:
        import torchao.quantization  # noqa: F401
    except Exception as err:  # noqa: BLE001 - missing, or built for another torch
        raise Act2iError(f"generate.fp8 needs the torchao package, which cannot be imported here ({type(err).__name__}: "
                         f"{err}); `pip install torchao` (a release built for torch {torch.__version__.split('+')[0]}) "
                         "or unset generate.fp8.") from None


def apply_options(pipe, options, device: str) -> None:
    """Memory and speed options from the profile's `generate` section.

    Output-preserving: placement and offload, VAE slicing and tiling, fused q/k/v projections, the
    attention kernel, torch.compile (mode, scope, persistent cache) and CUDA graphs. Opt-in and
    output-changing: fp8 matmuls (torchao) and the first-block step cache. An option this device,
    install or model cannot run is refused in one sentence (device and package checks come before
    the pipeline is touched).
    """
    check_options(options, device)
    if options.cpu_offload and device.startswith("cuda"):
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.to(device)
    if options.vae_slicing:
        pipe.vae.enable_slicing()
    if options.vae_tiling:
        pipe.vae.enable_tiling()
    net = denoiser(pipe)
    if options.fuse_qkv:
        if not hasattr(net, "fuse_qkv_projections"):
            raise Act2iError(f"generate.fuse_qkv is set, but {type(net).__name__} cannot fuse its projections; unset it.")
        net.fuse_qkv_projections()
        _keep_qk_norms(net)
    sdpa_kernel = _attention_backend(net, options.attention_backend) if options.attention_backend else None
    if options.fp8:
        _quantize_fp8(net)
    if options.step_cache:
        _step_cache(net, options.step_cache)
    mode = compile_mode(options)
    if mode:
        net = _compile(pipe, net, mode, options)
    if sdpa_kernel is not None:  # outside the compiled code, so that compilation traces it too
        _prefer_sdpa_kernel(net, sdpa_kernel)


class FusedJointAttnProcessor:
    """SD3's joint attention with fused q/k/v projections that keeps the RMS q/k norms.

    diffusers 0.42's `FusedJointAttnProcessor2_0` leaves `norm_q`, `norm_k`, `norm_added_q` and
    `norm_added_k` out, which changes SD-3.5's images (its blocks use qk_norm="rms_norm"). This is
    `JointAttnProcessor2_0` with one matrix multiply per stream instead of three.
    """

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, *args, **kwargs):
        import torch
        import torch.nn.functional as F

        residual = hidden_states
        batch_size = hidden_states.shape[0]
        query, key, value = attn.to_qkv(hidden_states).chunk(3, dim=-1)
        head_dim = key.shape[-1] // attn.heads

        def heads(x):
            return x.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)

        query, key, value = heads(query), heads(key), heads(value)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        if encoder_hidden_states is not None:
            e_query, e_key, e_value = (heads(x) for x in attn.to_added_qkv(encoder_hidden_states).chunk(3, dim=-1))
            if attn.norm_added_q is not None:
                e_query = attn.norm_added_q(e_query)
            if attn.norm_added_k is not None:
                e_key = attn.norm_added_k(e_key)
            query, key, value = (torch.cat(pair, dim=2) for pair in ((query, e_query), (key, e_key), (value, e_value)))
        hidden_states = F.scaled_dot_product_attention(query, key, value, dropout_p=0.0, is_causal=False)
        hidden_states = hidden_states.transpose(1, 2).reshape(batch_size, -1, attn.heads * head_dim).to(query.dtype)
        if encoder_hidden_states is not None:
            hidden_states, encoder_hidden_states = hidden_states[:, : residual.shape[1]], hidden_states[:, residual.shape[1]:]
            if not attn.context_pre_only:
                encoder_hidden_states = attn.to_add_out(encoder_hidden_states)
        hidden_states = attn.to_out[1](attn.to_out[0](hidden_states))
        return hidden_states if encoder_hidden_states is None else (hidden_states, encoder_hidden_states)


def _keep_qk_norms(net) -> None:
    """Replace diffusers' fused joint-attention processor, which skips the q/k norms, by one that keeps them."""
    for module in net.modules():
        if type(getattr(module, "processor", None)).__name__ == "FusedJointAttnProcessor2_0":
            module.set_processor(FusedJointAttnProcessor())


def _attention_backend(net, name: str):
    """Set diffusers' attention backend; returns the PyTorch SDPA kernel to prefer around the denoiser
    when its processors call PyTorch directly (SD3 in diffusers 0.42), else None."""
    _check_backend_name(name)
    dispatching = any(hasattr(getattr(m, "processor", None), "_attention_backend") for m in net.modules())
    if not dispatching:
        if name == "native":
            return None
        if name not in NATIVE_SDPA:
            raise Act2iError(
                f"Attention backend '{name}' is not available for {type(net).__name__}, whose attention calls PyTorch's "
                f"kernels directly; use one of {', '.join(NATIVE_SDPA)} or unset generate.attention_backend."
            )
        import torch.nn.attention

        return getattr(torch.nn.attention.SDPBackend, NATIVE_SDPA[name])
    try:
        net.set_attention_backend(name)
    except Exception as err:  # noqa: BLE001 - an unavailable kernel library
        raise Act2iError(
            f"Attention backend '{name}' is not available here ({err}); "
            "unset generate.attention_backend or install the kernel it needs."
        ) from None
    return None


def _prefer_sdpa_kernel(net, kernel) -> None:
    """Run the denoiser with `kernel` first among PyTorch's attention kernels (the others stay as fallbacks)."""
    import contextlib

    import torch.nn.attention

    fallbacks = [k for k in (torch.nn.attention.SDPBackend.FLASH_ATTENTION, torch.nn.attention.SDPBackend.EFFICIENT_ATTENTION,
                             torch.nn.attention.SDPBackend.MATH) if k != kernel]
    stack: list[contextlib.ExitStack] = []

    def enter(module, args):
        scope = contextlib.ExitStack()
        scope.enter_context(torch.nn.attention.sdpa_kernel([kernel, *fallbacks], set_priority=True))
        stack.append(scope)

    def leave(module, args, output):
        if stack:
            stack.pop().close()

    net.register_forward_pre_hook(enter)
    net.register_forward_hook(leave, always_call=True)


def _quantize_fp8(net) -> None:
    """Float8 weights and dynamically scaled float8 activations (per row) in the transformer blocks' linear layers."""
    import torch
    from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, PerRow, quantize_

    def eligible(module, name: str) -> bool:  # the blocks only; embedders and the final layer stay in 16 bits
        return (isinstance(module, torch.nn.Linear) and "transformer_blocks" in name
                and module.in_features % 16 == 0 and module.out_features % 16 == 0)

    quantize_(net, Float8DynamicActivationFloat8WeightConfig(granularity=PerRow()), filter_fn=eligible)


def _step_cache(net, threshold: float) -> None:
    """diffusers' first-block cache: skip the remaining blocks of a step when the first block's output
    changed by less than `threshold` (relative) since the previous step."""
    from diffusers.hooks import FirstBlockCacheConfig, HookRegistry, apply_first_block_cache

    blocks = sum(len(getattr(net, name, ())) for name in ("transformer_blocks", "single_transformer_blocks"))
    if blocks < 2:
        raise Act2iError(f"generate.step_cache needs a transformer with at least two blocks, and {type(net).__name__} has "
                         f"{blocks}; unset generate.step_cache.")
    config = FirstBlockCacheConfig(threshold=threshold)
    if hasattr(net, "enable_cache"):  # FLUX and others: the pipeline names each denoising call itself
        net.enable_cache(config)
        return
    # SD3: its pipeline names no denoising call, and its last block returns no text stream (diffusers'
    # tail hook needs one), so the cache covers the blocks before it and the last block always runs.
    import torch

    blocks = list(getattr(net, "transformer_blocks", ()))
    while blocks and getattr(blocks[-1], "context_pre_only", False):
        blocks.pop()
    if len(blocks) < 2:
        raise Act2iError(f"generate.step_cache needs at least two full transformer blocks, and {type(net).__name__} has "
                         f"{len(blocks)}; unset generate.step_cache.")
    cached = torch.nn.Module()  # a view of the cached blocks (not registered in the denoiser)
    cached.transformer_blocks = torch.nn.ModuleList(blocks)
    try:
        from diffusers.hooks.hooks import CacheContext, _set_cache_context

        apply_first_block_cache(cached, config)
    except Exception as err:  # noqa: BLE001 - diffusers changed its hook internals
        raise Act2iError(f"generate.step_cache could not be applied to {type(net).__name__} with diffusers' first-block "
                         f"cache ({type(err).__name__}: {err}); unset generate.step_cache.") from None

    def restart() -> None:  # forget the previous step; one context serves every (batched, guided) call
        HookRegistry.check_if_exists_or_initialize(cached).reset_stateful_hooks(recurse=True)
        _set_cache_context(cached, CacheContext("cond"))

    restart()
    last: dict = {}

    def new_image_restarts(module, args, kwargs):
        # A new generation starts when the timestep stops falling or the batch changes.
        sample = kwargs.get("hidden_states", args[0] if args else None)
        step = kwargs.get("timestep")
        shape = tuple(sample.shape) if sample is not None else None
        value = float(step.flatten()[0]) if step is not None else float("inf")
        if last and (shape != last["shape"] or value >= last["step"]):
            restart()
        last.update(shape=shape, step=value)

    net.register_forward_pre_hook(new_image_restarts, with_kwargs=True)


def compile_cache_dir(options) -> str:
    """Where inductor keeps compiled graphs, kernels and autotuning results, reused by every later run."""
    import os

    from ..cache import cache_dir

    folder = options.compile_cache_dir or os.environ.get("TORCHINDUCTOR_CACHE_DIR") or str(cache_dir() / "inductor")
    return os.path.abspath(os.path.expanduser(folder))


def _compile(pipe, net, mode: str, options):
    """torch.compile the denoiser (or each of its repeated blocks) for fixed shapes; returns the denoiser."""
    import os

    import torch

    os.environ["TORCHINDUCTOR_CACHE_DIR"] = compile_cache_dir(options)  # read by inductor when it compiles
    settings = {**torch._inductor.list_mode_options(mode), "triton.cudagraphs": bool(options.cuda_graphs)}
    if options.compile_scope == "blocks":
        blocks = _repeated_blocks(net)
        if not blocks:
            raise Act2iError(f"generate.compile_scope 'blocks' needs a transformer with repeated blocks, and "
                             f"{type(net).__name__} has none; use compile_scope: model.")
        for block in blocks:
            block.compile(dynamic=False, options=settings)
        return net
    compiled = torch.compile(net, dynamic=False, options=settings)
    setattr(pipe, _denoiser_attr(pipe), compiled)
    return compiled


def _repeated_blocks(net) -> list:
    """The transformer's repeated blocks: diffusers' `_repeated_blocks` classes, else its block lists."""
    names = set(getattr(net, "_repeated_blocks", None) or ())
    if names:
        return [m for m in net.modules() if type(m).__name__ in names]
    return [b for name in ("transformer_blocks", "single_transformer_blocks") for b in getattr(net, name, ())]


def call_kwargs(pipe, spec: ModelSpec) -> dict:
    """Arguments every call shares: steps, guidance, size and, where taken, the T5 length."""
    kwargs = {"num_inference_steps": spec.steps}
    if spec.guidance is not None:
        kwargs["guidance_scale"] = spec.guidance
    if spec.height and spec.width:
        kwargs.update(height=spec.height, width=spec.width)
    accepted = inspect.signature(pipe.__call__).parameters
    if spec.max_sequence_length and "max_sequence_length" in accepted:
        kwargs["max_sequence_length"] = spec.max_sequence_length
    return kwargs


def generate_images(pipe, prompts: list[str], seeds: list[int], kwargs: dict):
    """One image per (prompt, seed); each image's noise comes from its own CPU generator,
    so it depends on its seed alone, not on the batch it shares or the device."""
    import torch

    generators = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]
    with torch.inference_mode():
        return pipe(prompt=list(prompts), generator=generators, **kwargs).images


def is_out_of_memory(err: BaseException) -> bool:
    import torch

    return isinstance(err, torch.OutOfMemoryError) or "out of memory" in str(err).lower()
